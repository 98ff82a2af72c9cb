"""The EdiDub networks: one 3D U-Net (`unet.UNet3D`) configured by `config.UNetConfig`.

LSD and SRD are presets of the same module (`config.preset("lsd"|"srd", "final"|"small"|"tiny")`).
This package never knows about sampling; that lives in `engine.diffusion`.
"""

from engine.models.config import UNITS_PER_FRAME, UNetConfig, preset, preset_names
from engine.models.unet import UNet3D, count_parameters

__all__ = ["UNITS_PER_FRAME", "UNetConfig", "UNet3D", "count_parameters", "preset", "preset_names"]
