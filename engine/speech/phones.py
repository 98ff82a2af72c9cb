"""The offline default extractor: pocketsphinx phone decoding (DESIGN §3, §8).

pocketsphinx's shipped en-us acoustic model decodes phones with its phone language model
(`allphone`); segments come at 100 Hz and are mapped onto the 50 Hz unit grid (a 20 ms unit
takes the phone of its two 10 ms frames, speech over silence). Unit 0 is silence; filler
sounds (+NSN+, +SPN+, ...) count as silence. Vocabulary: silence + the 39 CMU phones.
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


def _model_dir() -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us")


@dataclass
class PhoneExtractor:
    name: str = "phones"
    vocab_size: int = len(PHONES)
    codebook_hash: str | None = PHONE_SET_HASH
    silence_id: int = SILENCE
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _decoder: object = field(default=None, repr=False)

    def _get_decoder(self):
        if self._decoder is None:
            from pocketsphinx import Decoder

            model = _model_dir()
            self._decoder = Decoder(
                hmm=os.path.join(model, "en-us"),
                allphone=os.path.join(model, "en-us-phone.lm.bin"),
                lm=None,
                samprate=16000,
                loglevel="FATAL",
            )
        return self._decoder

    def phone_frames(self, audio: np.ndarray) -> np.ndarray:
        """(M,) phone ids at 100 Hz (M = ceil(len / 160))."""
        m = -(-len(audio) // 160)
        labels = np.full(m, SILENCE, np.int64)
        if len(audio) == 0:
            return labels
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        with self._lock:  # a decoder is not re-entrant
            dec = self._get_decoder()
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
            segs = [(s.word, s.start_frame, s.end_frame) for s in dec.seg()]
        for word, start, end in segs:
            labels[max(0, start) : min(m, end + 1)] = PHONE_ID.get(word, SILENCE)
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
