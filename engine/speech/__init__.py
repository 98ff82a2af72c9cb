"""Speech units: audio in any format -> unit ids on the 50 Hz grid -> 2 units per video frame.

`load_audio` (audio.py) reads WAV/FLAC/AIFF (soundfile) or any container (PyAV) and resamples
to 16 kHz mono with soxr. Extractors are chosen by name (`make_extractor`, registry
`EXTRACTORS`): `phones` and its settings (pocketsphinx, offline default), `phonenet` (a small
recogniser learnt from the synthetic kit's speech) and `hubert` (a local HubertModel + a
k-means codebook, EdiDub §3.1). `frame_units` (timing.py) samples units at each frame's own
time, exactly, at any frame rate.
"""

from engine.speech.audio import SAMPLE_RATE, load_audio
from engine.speech.timing import UNIT_RATE, frame_units, unit_indices
from engine.speech.units import EXTRACTORS, UnitExtractor, make_extractor

__all__ = [
    "EXTRACTORS",
    "SAMPLE_RATE",
    "UNIT_RATE",
    "UnitExtractor",
    "frame_units",
    "load_audio",
    "make_extractor",
    "unit_indices",
]
