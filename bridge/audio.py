"""Checking that an uploaded file is audio the engine can read, without the engine's packages.

soundfile (libsndfile) is used when it is importable (the engine role has it); the bridge role
installs without it, so WAV files are then checked by their RIFF header. Any sample rate is
accepted (44.1k, 48k, 96k ...): the engine resamples.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

try:  # optional: the bridge role does not install soundfile
    import soundfile as _soundfile
except ImportError:  # pragma: no cover - depends on the installation
    _soundfile = None


class AudioError(ValueError):
    """A file that is not usable audio; the message names the file and the problem."""

    def __init__(self, path: os.PathLike | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    samples: int  # per channel

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


# WAVE format tags: PCM, IEEE float, A-law, mu-law, extensible.
_WAV_FORMATS = {1: "PCM", 3: "float", 6: "A-law", 7: "mu-law", 0xFFFE: "extensible"}


def wav_info(path: os.PathLike | str) -> AudioInfo:
    """Sample rate, channels and length from a RIFF/WAVE header (no decoding)."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise AudioError(path, "not a WAV file (no RIFF/WAVE header)")
        fmt = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                break
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(csize)
                if len(body) < 16:
                    raise AudioError(path, "WAV 'fmt ' chunk is truncated")
                tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", body[:16])
                if tag not in _WAV_FORMATS:
                    raise AudioError(path, f"unsupported WAV sample format tag {tag:#x}")
                if channels < 1 or rate < 1 or block < 1:
                    raise AudioError(
                        path, f"invalid WAV format ({channels} channels, {rate} Hz, {bits} bits)"
                    )
                fmt = (channels, rate, block)
                if csize % 2:
                    f.seek(1, os.SEEK_CUR)
            elif cid == b"data":
                if fmt is None:
                    raise AudioError(path, "WAV 'data' chunk comes before its 'fmt ' chunk")
                channels, rate, block = fmt
                available = size - f.tell()
                if csize == 0xFFFFFFFF or head[:4] == b"RF64":  # streamed/RF64: to end of file
                    csize = available
                if csize > available:
                    raise AudioError(
                        path, f"WAV data is truncated ({available} of {csize} bytes present)"
                    )
                samples = csize // block
                if samples == 0:
                    raise AudioError(path, "WAV file holds no audio samples")
                return AudioInfo(sample_rate=rate, channels=channels, samples=samples)
            else:
                f.seek(csize + (csize % 2), os.SEEK_CUR)
        raise AudioError(path, "WAV file has no 'data' chunk" if fmt else "WAV file has no format")


def audio_info(path: os.PathLike | str, use_soundfile: bool | None = None) -> AudioInfo:
    """Check `path` is non-empty, readable audio and describe it.

    `use_soundfile`: None uses soundfile when importable, else the WAV header; False forces
    the header check (what a bridge-only installation does).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "no such file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")
    if use_soundfile is None:
        use_soundfile = _soundfile is not None
    if not use_soundfile:
        return wav_info(path)
    if _soundfile is None:
        raise AudioError(path, "soundfile is not installed")
    try:
        info = _soundfile.info(str(path))
    except Exception as exc:  # libsndfile's errors carry no stable type
        raise AudioError(path, f"not audio soundfile can read ({exc})") from exc
    if info.frames <= 0:
        raise AudioError(path, "file holds no audio samples")
    return AudioInfo(sample_rate=info.samplerate, channels=info.channels, samples=info.frames)
