"""`phonenet`: a small phone recogniser learnt from the synthetic kit's own speech.

pocketsphinx (`phones_lw2`) decodes a fifth of the kit's spoken windows as silence and names
the phone right 38% of the time (RESULTS, Thirteenth session), and the demo model learnt those
dropouts. espeak-ng says which phoneme it speaks when, so the kit can label its own speech
exactly: `edidub train phonenet` (`engine.train.phonenet`) draws lines in the kit's voices,
maps each espeak phoneme onto the same 40 units as the `phones` extractors (silence + the 39
CMU phones, `engine.speech.phones.PHONES`) and fits this network to them. The units keep
their meaning, so an LSD trained on phones can be fine-tuned onto these.

On the benchmark's 24 lines (sentences it never heard) it names 81% of the spoken windows'
phones (94% by mouth class) and calls 0.8% of them silence, against `phones_lw2`'s 33%, 66% and
15%. A demo LSD fine-tuned on its units dubbed the held-out faces no better (RESULTS,
Fourteenth session): the embedded model keeps `phones_lw2`.

Input: 40 log-mel bands of 16 kHz audio at 100 Hz (frame j: a 25 ms Hann window centred on
sample 160 j + 80), the level set by the loud windows so that gain does not matter, then the
training set's mean and spread. Network: a 1-D convolution stack with dilations (about
±0.35 s of context), the 100 Hz frames averaged in pairs onto the 50 Hz unit grid (unit n:
samples [320 n, 320 n + 320)), one class per unit. Quiet windows are silence whatever the
network says, as for every extractor.

It was learnt from espeak-ng voices only: on other speech it is untested. Models for real
footage should use `hubert` units.

Weights file (safetensors, the model directory's `units.codebook`): the network's tensors
(float16) and `feature_mean`/`feature_std`; metadata `channels` and `dilations`.
`codebook_hash`: SHA-256 of the tensors' bytes and the metadata.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.speech.phones import PHONE_ID, PHONES, SILENCE
from engine.speech.units import silent_windows, unit_count

N_MELS = 40
WINDOW = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms
N_FFT = 512
CHANNELS = 96
DILATIONS = (1, 2, 4, 8, 16, 1)
LOUD_PERCENTILE = 95  # the level the input is scaled to: its loud windows, not its peak


class PhoneNetError(ValueError):
    pass


# espeak-ng IPA (stress marks removed) -> CMU phones; a symbol of two sounds splits its span
_KIT_TO_CMU: dict[str, tuple[str, ...]] = {
    "_": ("SIL",),
    "p": ("P",), "b": ("B",), "m": ("M",), "f": ("F",), "v": ("V",), "θ": ("TH",),
    "ð": ("DH",), "t": ("T",), "t̪": ("T",), "d": ("D",), "n": ("N",), "n̩": ("N",),
    "l": ("L",), "s": ("S",), "z": ("Z",), "ɾ": ("D",), "ʔ": ("T",), "ʃ": ("SH",),
    "ʒ": ("ZH",), "tʃ": ("CH",), "dʒ": ("JH",), "ɹ": ("R",), "r": ("R",), "j": ("Y",),
    "ʲ": ("Y",), "w": ("W",), "ʍ": ("W",), "k": ("K",), "g": ("G",), "ɡ": ("G",),
    "ŋ": ("NG",), "h": ("HH",), "x": ("HH",),
    "i": ("IY",), "iː": ("IY",), "ɪ": ("IH",), "ᵻ": ("IH",), "e": ("EY",), "eː": ("EY",),
    "eɪ": ("EY",), "ɛ": ("EH",), "eə": ("EH",), "ɛə": ("EH",), "æ": ("AE",), "a": ("AE",),
    "aː": ("AA",), "a:": ("AA",), "aa": ("AA",), "ɑ": ("AA",), "ɑː": ("AA",), "ɑə": ("AA",),
    "ɒ": ("AA",), "ʌ": ("AH",), "ɐ": ("AH",), "ə": ("AH",), "ɚ": ("ER",), "əɹ": ("ER",),
    "ɜ": ("ER",), "ɜː": ("ER",), "ɔ": ("AO",), "ɔː": ("AO",), "ɔə": ("AO",), "o": ("OW",),
    "oː": ("OW",), "oʊ": ("OW",), "əʊ": ("OW",), "oə": ("OW",), "ʌʉ": ("OW",), "ʊ": ("UH",),
    "ʊə": ("UH",), "u": ("UW",), "uː": ("UW",), "ʉ": ("UW",), "ʉː": ("UW",), "aɪ": ("AY",),
    "aɪə": ("AY",), "əɪ": ("AY",), "aʊ": ("AW",), "ɔɪ": ("OY",),
    "əl": ("AH", "L"), "iə": ("IY", "AH"), "ɪə": ("IH", "AH"), "ɔːɹ": ("AO", "R"),
    "ɑːɹ": ("AA", "R"), "ʌɹ": ("AH", "R"), "ɪɹ": ("IH", "R"), "ʉɹ": ("UW", "R"),
    "ɛɹ": ("EH", "R"), "aɪɚ": ("AY", "ER"),
}


_MARKS = "ˈˌːˑ̩̯̃ʲʰ"  # stress, length and diacritics: they change no phone


def kit_phones(symbol: str) -> tuple[int, ...]:
    """The unit ids an espeak-ng phoneme symbol is spoken as: one, or one per sound of a
    glide (a symbol missing from the table is read as its longest known pieces)."""
    s = symbol.replace("ˈ", "").replace("ˌ", "")
    cmu = _KIT_TO_CMU.get(s) or _KIT_TO_CMU.get(s.replace("ː", ""))
    if cmu is None:
        bare, out, i = "".join(c for c in s if c not in _MARKS), [], 0
        while i < len(bare):
            for k in (3, 2, 1):
                if bare[i : i + k] in _KIT_TO_CMU:
                    out += _KIT_TO_CMU[bare[i : i + k]]
                    i += k
                    break
            else:
                raise PhoneNetError(f"espeak phoneme {symbol!r} has no CMU phone in "
                                    "phonenet's table")
        cmu = tuple(out) or ("SIL",)
    return tuple(PHONE_ID[p] for p in cmu)


def kit_labels(phonemes: list[tuple[float, str]], duration: float, n: int) -> np.ndarray:
    """(n,) unit ids at 50 Hz from a kit phoneme timeline: each unit takes the phone spoken
    at its middle; a two-sound symbol gives each half of its span one sound."""
    marks: list[tuple[float, int]] = []
    for (start, symbol), nxt in zip(phonemes, phonemes[1:] + [(duration, "_")], strict=True):
        ids = kit_phones(symbol)
        step = (nxt[0] - start) / len(ids)
        marks += [(start + k * step, i) for k, i in enumerate(ids)]
    starts = np.array([m[0] for m in marks] or [0.0])
    ids = np.array([m[1] for m in marks] or [SILENCE], np.int64)
    mid = (np.arange(n) * 320 + 160) / 16000
    pick = np.searchsorted(starts, mid, side="right") - 1
    out = np.where(pick >= 0, ids[np.clip(pick, 0, None)], SILENCE)
    out[mid >= duration] = SILENCE
    return out


def _mel_filters() -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(20.0), mel(7600.0), N_MELS + 2) / 2595.0) - 1)
    bins = np.fft.rfftfreq(N_FFT, 1 / 16000)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None] - lo) / (mid - lo)
    down = (hi - bins[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


_MEL = _mel_filters()
_HANN = np.hanning(WINDOW).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(2 N, 40) float32 log-mel frames at 100 Hz of 16 kHz mono audio, N = unit_count."""
    audio = np.asarray(audio, np.float32)
    n = unit_count(len(audio))
    m = 2 * n
    if m == 0:
        return np.zeros((0, N_MELS), np.float32)
    loud = _loud_level(audio)
    pad = (WINDOW - HOP) // 2
    padded = np.zeros(m * HOP + WINDOW, np.float32)
    padded[pad : pad + len(audio)] = audio / loud
    frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][:m] * _HANN
    power = np.abs(np.fft.rfft(frames, N_FFT)) ** 2
    return np.log(power @ _MEL.T + 1e-8).astype(np.float32)


def _loud_level(audio: np.ndarray) -> float:
    n = len(audio) // 320
    if n == 0:
        return 1.0
    rms = np.sqrt((audio[: n * 320].reshape(n, 320).astype(np.float64) ** 2).mean(axis=1))
    level = float(np.percentile(rms, LOUD_PERCENTILE))
    return level if level > 1e-5 else 1.0


def build_network(channels: int = CHANNELS, dilations: tuple[int, ...] = DILATIONS):
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, dilation: int) -> None:
            super().__init__()
            self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation)
            self.mix = nn.Conv1d(channels, channels, 1)

        def forward(self, x):
            return x + self.mix(torch.nn.functional.gelu(self.conv(x)))

    class PhoneNet(nn.Module):
        """(B, 40, 2N) normalised log-mel -> (B, classes, N) logits."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv1d(N_MELS, channels, 5, padding=2)
            self.blocks = nn.Sequential(*(Block(d) for d in dilations))
            self.head = nn.Conv1d(channels, len(PHONES), 1)

        def forward(self, x):
            h = self.blocks(torch.nn.functional.gelu(self.stem(x)))
            return self.head(torch.nn.functional.avg_pool1d(h, 2))

    return PhoneNet()


def save_weights(net, mean: np.ndarray, std: np.ndarray, path: Path, *,
                 channels: int = CHANNELS, dilations: tuple[int, ...] = DILATIONS,
                 meta: dict | None = None) -> str:
    """Write the weights file; returns its hash."""
    import torch
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    tensors["feature_mean"] = torch.from_numpy(np.asarray(mean, np.float32))
    tensors["feature_std"] = torch.from_numpy(np.asarray(std, np.float32))
    metadata = {"channels": str(channels), "dilations": json.dumps(list(dilations)),
                "phones": " ".join(PHONES), "trained": json.dumps(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return PhoneNetExtractor.load(path).codebook_hash


@dataclass
class PhoneNetExtractor:
    net: object
    mean: np.ndarray
    std: np.ndarray
    codebook_hash: str
    name: str = "phonenet"
    vocab_size: int = len(PHONES)
    silence_id: int = SILENCE
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, weights: Path | str) -> PhoneNetExtractor:
        from safetensors import SafetensorError, safe_open

        weights = Path(weights)
        if not weights.is_file():
            raise PhoneNetError(f"phonenet weights {weights} not found")
        try:
            with safe_open(str(weights), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as exc:
            raise PhoneNetError(f"{weights} is not a readable safetensors file: {exc}") from None
        if meta.get("phones") != " ".join(PHONES):
            raise PhoneNetError(f"{weights}: not a phonenet weights file for this phone set")
        try:
            channels = int(meta["channels"])
            dilations = tuple(int(d) for d in json.loads(meta["dilations"]))
            mean = tensors.pop("feature_mean").numpy()
            std = tensors.pop("feature_std").numpy()
        except (KeyError, ValueError) as exc:
            raise PhoneNetError(f"{weights}: incomplete phonenet weights ({exc})") from None
        digest = hashlib.sha256()
        for key in sorted(tensors):
            digest.update(key.encode() + tensors[key].numpy().tobytes())
        digest.update(mean.tobytes() + std.tobytes())
        digest.update(json.dumps({k: meta[k] for k in ("channels", "dilations", "phones")},
                                 sort_keys=True).encode())
        net = build_network(channels, dilations)
        try:
            net.load_state_dict({k: v.float() for k, v in tensors.items()})
        except RuntimeError as exc:
            raise PhoneNetError(f"{weights}: weights do not fit the network: {exc}") from None
        net.eval()
        return cls(net=net, mean=mean, std=std, codebook_hash=digest.hexdigest()[:16])

    def logits(self, audio: np.ndarray) -> np.ndarray:
        """(N, 40) float32 class scores per 50 Hz unit window."""
        import torch

        feats = (log_mel(audio) - self.mean) / self.std
        if len(feats) == 0:
            return np.zeros((0, len(PHONES)), np.float32)
        with self._lock, torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(feats.T))[None])
        return out[0].T.numpy()

    def units(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, np.float32)
        out = self.logits(audio).argmax(axis=1).astype(np.int64)
        out[silent_windows(audio)] = SILENCE
        return out
