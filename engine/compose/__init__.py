"""Compositing: OCIO colour to and from the model's working space, and paste-back of the
edited mouth (inverse warp, feathered mask, RGB inside the mask only)."""

from engine.compose.colour import (
    WORKING_SPACE,
    ColorSpaceError,
    check_colorspace,
    from_working,
    to_working,
)
from engine.compose.paste import crop_region, dissolve, dissolve_frames, feather, paste_back

__all__ = [
    "WORKING_SPACE",
    "ColorSpaceError",
    "check_colorspace",
    "crop_region",
    "dissolve",
    "dissolve_frames",
    "feather",
    "from_working",
    "paste_back",
    "to_working",
]
