"""The offline default extractor: pocketsphinx phone decoding (DESIGN §3, §8).

pocketsphinx's shipped en-us acoustic model decodes phones with its phone language model
(`allphone`); segments come at 100 Hz and are mapped onto the 50 Hz unit grid (a 20 ms unit
takes the phone of its two 10 ms frames, speech over silence). Unit 0 is silence; filler
sounds (+NSN+, +SPN+, ...) count as silence. Vocabulary: silence + the 39 CMU phones.

Three registered settings (`engine.speech.units.EXTRACTORS`), which a model cannot mix:
- `phones`: pocketsphinx's own phone language-model weight. On the synthetic kit's voices it
  labels 13-54% of the windows that carry speech as silence (h05's line: all but 0.25 s).
- `phones_lw2`: language weight 2.0, so the acoustics outweigh the phone LM: 1-13% of the
  speech windows labelled silence on the same lines, and a linear read-out of the mouth
  opening from the units reaches r = 0.69 instead of 0.50 on held-out voices (`docs/RESULTS.md`).
  Some voices still lose much of their speech: on the benchmark's new lines, 21% of the 50 Hz
  windows inside the spoken span decode as silence (h05's 55%, h06's and b04's 50%; RESULTS,
  Thirteenth session). Trained models learnt the units as decoded, dropouts included.
- `phones_lw2_fill`: `phones_lw2`, then the windows it calls silence take the phone of three
  more decodes of the same audio where one hears speech (weight 2 with dither, weight 1 with
  and without): 8% of those windows stay silence instead of 21%, and loudness still makes
  silence. The filled phones are less often right than the first decode's (coarse mouth class
  55% against 71%). A model must be trained on it: one trained on `phones_lw2` dubs worse
  with it (RESULTS, Thirteenth session), so it is a setting of its own with its own hash.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from engine.speech.units import silent_windows, unit_count

PHONES = ("SIL",) + tuple(
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW "
    "V W Y Z ZH".split()
)
PHONE_ID = {p: i for i, p in enumerate(PHONES)}
SILENCE = 0
PHONE_SET_HASH = hashlib.sha256(" ".join(PHONES).encode()).hexdigest()[:16]


Pass = tuple[float | None, bool]  # one decode: (language weight or None, dither)


def _settings_hash(language_weight: float | None, fill_from: tuple[Pass, ...] = ()) -> str:
    """The vocabulary's hash, plus the decoder settings when they are not pocketsphinx's own."""
    if language_weight is None and not fill_from:
        return PHONE_SET_HASH
    weight = "default" if language_weight is None else f"{language_weight:g}"
    text = " ".join(PHONES) + f" lw={weight}"
    for weight, dither in fill_from:
        text += f" fill(lw={'default' if weight is None else f'{weight:g}'},dither={int(dither)})"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")


@dataclass
class PhoneExtractor:
    name: str = "phones"
    vocab_size: int = len(PHONES)
    codebook_hash: str | None = PHONE_SET_HASH
    silence_id: int = SILENCE
    language_weight: float | None = None  # None: pocketsphinx's default
    # decodes whose phones fill the windows the first decode calls silence, in order
    fill_from: tuple[Pass, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _decoders: dict = field(default_factory=dict, repr=False)

    def _get_decoder(self, language_weight: float | None):
        if language_weight not in self._decoders:
            from pocketsphinx import Decoder

            model = _model_dir()
            extra = {} if language_weight is None else {"lw": language_weight}
            self._decoders[language_weight] = Decoder(
                hmm=os.path.join(model, "en-us"),
                allphone=os.path.join(model, "en-us-phone.lm.bin"),
                lm=None,
                samprate=16000,
                loglevel="FATAL",
                **extra,
            )
        return self._decoders[language_weight]

    def _decode(self, pcm: np.ndarray, m: int, language_weight: float | None) -> np.ndarray:
        labels = np.full(m, SILENCE, np.int64)
        with self._lock:  # a decoder is not re-entrant
            dec = self._get_decoder(language_weight)
            dec.start_utt()
            dec.process_raw(pcm.tobytes(), full_utt=True)
            dec.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg()]
        for word, start, end in segs:
            labels[max(0, start) : min(m, end + 1)] = PHONE_ID.get(word, SILENCE)
        return labels

    def phone_frames(self, audio: np.ndarray) -> np.ndarray:
        """(M,) phone ids at 100 Hz (M = ceil(len / 160))."""
        m = -(-len(audio) // 160)
        if len(audio) == 0:
            return np.full(m, SILENCE, np.int64)
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
        labels = self._decode(pcm, m, self.language_weight)
        for weight, dither in self.fill_from:
            if not (labels == SILENCE).any():
                break
            if dither:
                # ±1 LSB of seeded noise (pocketsphinx's own dither draws from a stream that
                # runs on across calls, so the same audio would not decode the same twice)
                noise = np.random.default_rng(0).integers(-1, 2, len(pcm), dtype=np.int32)
                heard = np.clip(pcm.astype(np.int32) + noise, -32768, 32767).astype("<i2")
            else:
                heard = pcm
            other = self._decode(heard, m, weight)
            gap = (labels == SILENCE) & (other != SILENCE)
            labels[gap] = other[gap]
        return labels

    def units(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, np.float32)
        n = unit_count(len(audio))
        frames = self.phone_frames(audio)
        frames = np.concatenate([frames, np.full(2 * n - len(frames), SILENCE, np.int64)])
        a, b = frames[0::2][:n], frames[1::2][:n]
        out = np.where(a == SILENCE, b, a)
        out[silent_windows(audio)] = SILENCE
        return out


def phones_lw2() -> PhoneExtractor:
    """The `phones_lw2` setting: phone language-model weight 2.0 (see the module text)."""
    return PhoneExtractor(name="phones_lw2", codebook_hash=_settings_hash(2.0),
                          language_weight=2.0)


FILL_PASSES: tuple[Pass, ...] = ((2.0, True), (1.0, False), (1.0, True))


def phones_lw2_fill() -> PhoneExtractor:
    """The `phones_lw2_fill` setting: `phones_lw2` with its silence filled from
    `FILL_PASSES` where they hear speech (see the module text)."""
    return PhoneExtractor(name="phones_lw2_fill",
                          codebook_hash=_settings_hash(2.0, FILL_PASSES),
                          language_weight=2.0, fill_from=FILL_PASSES)
