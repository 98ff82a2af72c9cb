"""Audio in any common rate, channel count and format, out as 16 kHz mono float32."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # what HuBERT and pocketsphinx's en-us model expect


class AudioError(ValueError):
    """An audio file that cannot be read; the message names the file and why."""


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise AudioError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=None, rate=rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        return np.zeros((0, 1), np.float32), rate
    return np.concatenate(chunks, axis=1).T.astype(np.float32), int(rate)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 `audio` from `rate` to `target` Hz (soxr, high quality)."""
    import soxr

    audio = np.asarray(audio, np.float32)
    if rate == target or len(audio) == 0:
        return audio
    return soxr.resample(audio, rate, target, quality="HQ").astype(np.float32)


def load_audio(path: os.PathLike | str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples at `rate` Hz. Channels are averaged."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    try:
        data, source_rate = _read_soundfile(path)
    except Exception:  # soundfile knows WAV/FLAC/AIFF/OGG; anything else goes through FFmpeg
        try:
            data, source_rate = _read_av(path)
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError(f"{path}: not a readable audio file ({exc})") from exc
    return resample(data.mean(axis=1), source_rate, rate)
