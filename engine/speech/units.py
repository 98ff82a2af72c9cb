"""The speech-unit extractor interface and its registry (DESIGN §3; OpenTimelineIO-style
plugins by name). A checkpoint records the extractor's `name`, `vocab_size` and
`codebook_hash`; loading refuses a model trained on other units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

SILENCE_DBFS = -50.0  # a 20 ms window quieter than this is silence whatever the model says


class UnitExtractor(Protocol):
    name: str
    vocab_size: int
    codebook_hash: str | None
    silence_id: int

    def units(self, audio: np.ndarray) -> np.ndarray:
        """(N,) int64 unit ids at 50 Hz for 16 kHz mono float32 audio, N = ceil(len / 320)."""
        ...


def unit_count(samples: int) -> int:
    return -(-samples // 320)


def silent_windows(audio: np.ndarray, threshold_dbfs: float = SILENCE_DBFS) -> np.ndarray:
    """(N,) bool: which 20 ms windows of 16 kHz audio are below `threshold_dbfs` RMS."""
    n = unit_count(len(audio))
    padded = np.zeros(n * 320, np.float32)
    padded[: len(audio)] = audio
    rms = np.sqrt((padded.reshape(n, 320) ** 2).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-12)) < threshold_dbfs


def _phones(**options) -> UnitExtractor:
    from engine.speech.phones import PhoneExtractor

    return PhoneExtractor(**options)


def _phones_lw2(**options) -> UnitExtractor:
    from engine.speech.phones import phones_lw2

    if options:
        raise TypeError(f"phones_lw2 takes no options, got {sorted(options)}")
    return phones_lw2()


def _phones_lw2_fill(**options) -> UnitExtractor:
    from engine.speech.phones import phones_lw2_fill

    if options:
        raise TypeError(f"phones_lw2_fill takes no options, got {sorted(options)}")
    return phones_lw2_fill()


def _phonenet(**options) -> UnitExtractor:
    from engine.speech.phonenet import PhoneNetExtractor

    weights = options.pop("weights", None)
    if weights is None or options:
        raise ValueError("the phonenet extractor takes one option, weights=FILE (written by "
                         "`edidub train phonenet`)")
    return PhoneNetExtractor.load(weights)


def _hubert(**options) -> UnitExtractor:
    from engine.speech.hubert import HubertExtractor

    return HubertExtractor.load(**options)


EXTRACTORS: dict[str, Callable[..., UnitExtractor]] = {
    "phones": _phones, "phones_lw2": _phones_lw2, "phones_lw2_fill": _phones_lw2_fill,
    "phonenet": _phonenet, "hubert": _hubert}


def make_extractor(name: str, **options) -> UnitExtractor:
    """Build the named extractor (`hubert` needs `model_dir=` and `codebook=`, `phonenet`
    its `weights=` file)."""
    try:
        factory = EXTRACTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown speech-unit extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
    return factory(**options)
