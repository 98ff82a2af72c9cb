"""LSE-D / LSE-C with SyncNet (Chung & Zisserman 2016, "Out of time"), weights from a local file.

The network is the standard two-stream SyncNet as published with `syncnet_python`
(`SyncNetModel.S`): a 2-D conv audio stream over 13×20 MFCC blocks (0.2 s) and a 3-D conv lip
stream over 5 frames of 224×224 face crops (BGR, 0-255, not normalised), each followed by
fully-connected layers to a 1024-d embedding. Layer names match that release, so its
`syncnet_v2.model` state dict loads as is (`torch.load(weights_only=True)`, never unpickling
code) and so does a `.safetensors` file. No weights ship with the project (DESIGN §7).

Scores, as Prajwal et al. 2020 (Wav2Lip) define them on top of SyncNet and EdiDub §4.1 reports:
for each video window i and audio offset k ∈ [−15, 15] frames,
    D_k = mean_i ‖v_i − a_{i+k}‖₂   (audio features zero-padded past the ends)
    LSE-D = min_k D_k               (lower is better)
    LSE-C = median_k D_k − min_k D_k  (higher is better)
    offset = −argmin_k (the AV offset in frames, syncnet_python's sign convention).
Audio is 16 kHz mono; MFCCs follow python_speech_features' defaults (25 ms / 10 ms, 26 mel
filters, 13 cepstra, lifter 22, log energy in c0), 4 MFCC steps per frame at 25 fps; other frame
rates place each window at the frame's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

VSHIFT = 15
AUDIO_RATE = 16000
CROP = 224
CROP_SCALE = 0.4  # syncnet_python's crop_scale: the face box grown downwards to take the chin
PAD_VALUE = 110  # syncnet_python pads crops that leave the frame with this grey


@dataclass(frozen=True)
class SyncNetConfig:
    """Channel widths of the two streams; `final` is the published SyncNet."""

    audio_channels: tuple[int, int, int, int, int, int] = (64, 192, 384, 256, 256, 512)
    lip_channels: tuple[int, int, int, int, int, int] = (96, 256, 256, 256, 256, 512)
    fc_hidden: int = 512
    embed: int = 1024


PRESETS = {
    "final": SyncNetConfig(),
    "tiny": SyncNetConfig((4, 8, 8, 8, 8, 16), (4, 8, 8, 8, 8, 16), 16, 8),
}

_CONV_INDICES = (0, 4, 8, 11, 14, 18)  # positions of the convs inside each nn.Sequential


class SyncNet(nn.Module):
    """The two streams (`netcnnaud`+`netfcaud`, `netcnnlip`+`netfclip`) of syncnet_python."""

    def __init__(self, config: SyncNetConfig = PRESETS["final"]) -> None:
        super().__init__()
        self.config = config
        a, v = config.audio_channels, config.lip_channels
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, a[0], 3, 1, 1), nn.BatchNorm2d(a[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(1, 1),
            nn.Conv2d(a[0], a[1], 3, 1, 1), nn.BatchNorm2d(a[1]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, (1, 2)),
            nn.Conv2d(a[1], a[2], 3, padding=1), nn.BatchNorm2d(a[2]), nn.ReLU(inplace=True),
            nn.Conv2d(a[2], a[3], 3, padding=1), nn.BatchNorm2d(a[3]), nn.ReLU(inplace=True),
            nn.Conv2d(a[3], a[4], 3, padding=1), nn.BatchNorm2d(a[4]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(a[4], a[5], (5, 4)), nn.BatchNorm2d(a[5]), nn.ReLU(),
        )  # fmt: skip
        self.netfcaud = nn.Sequential(
            nn.Linear(a[5], config.fc_hidden), nn.BatchNorm1d(config.fc_hidden), nn.ReLU(),
            nn.Linear(config.fc_hidden, config.embed),
        )  # fmt: skip
        self.netfclip = nn.Sequential(
            nn.Linear(v[5], config.fc_hidden), nn.BatchNorm1d(config.fc_hidden), nn.ReLU(),
            nn.Linear(config.fc_hidden, config.embed),
        )  # fmt: skip
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, v[0], (5, 7, 7), (1, 2, 2), 0), nn.BatchNorm3d(v[0]),
            nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(v[0], v[1], (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.BatchNorm3d(v[1]),
            nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            nn.Conv3d(v[1], v[2], (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(v[2]),
            nn.ReLU(inplace=True),
            nn.Conv3d(v[2], v[3], (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(v[3]),
            nn.ReLU(inplace=True),
            nn.Conv3d(v[3], v[4], (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(v[4]),
            nn.ReLU(inplace=True), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(v[4], v[5], (1, 6, 6), padding=0), nn.BatchNorm3d(v[5]),
            nn.ReLU(inplace=True),
        )  # fmt: skip

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC blocks -> (N, embed)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 crops -> (N, embed)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def build_syncnet(config: SyncNetConfig = PRESETS["final"]) -> SyncNet:
    return SyncNet(config)


def config_from_state(state: dict) -> SyncNetConfig:
    """Read the channel widths off a state dict's weight shapes."""
    try:
        aud = tuple(int(state[f"netcnnaud.{i}.weight"].shape[0]) for i in _CONV_INDICES)
        lip = tuple(int(state[f"netcnnlip.{i}.weight"].shape[0]) for i in _CONV_INDICES)
        hidden = int(state["netfcaud.0.weight"].shape[0])
        embed = int(state["netfcaud.3.weight"].shape[0])
    except KeyError as exc:
        raise ValueError(f"not a SyncNet state dict: no {exc.args[0]!r}") from None
    return SyncNetConfig(aud, lip, hidden, embed)  # type: ignore[arg-type]


def load_syncnet(path: str | Path) -> SyncNet:
    """SyncNet from a local state dict (`.safetensors`, or a torch file read with
    weights_only=True); the architecture's widths come from the weights. Eval mode."""

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SyncNet weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle/zip errors of many kinds
            raise ValueError(f"{path}: not a tensors-only torch file ({exc})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    model = build_syncnet(config_from_state(state))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit SyncNet ({exc})") from exc
    return model.eval()


def mfcc(signal: np.ndarray, rate: int = AUDIO_RATE) -> np.ndarray:
    """(T, 13) MFCCs at 100 Hz, python_speech_features' defaults (SyncNet's training input)."""
    from scipy.fft import dct

    winlen, winstep, nfft, nfilt, numcep, lifter, preemph = 0.025, 0.01, 512, 26, 13, 22, 0.97
    x = np.asarray(signal, dtype=np.float64)
    x = np.append(x[0], x[1:] - preemph * x[:-1]) if x.size else x
    flen, fstep = int(round(winlen * rate)), int(round(winstep * rate))
    n = 1 if x.size <= flen else 1 + int(np.ceil((x.size - flen) / fstep))
    x = np.concatenate([x, np.zeros((n - 1) * fstep + flen - x.size)])
    idx = np.arange(flen)[None, :] + fstep * np.arange(n)[:, None]
    frames = x[idx]
    pspec = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = pspec.sum(axis=1)
    energy[energy == 0] = np.finfo(float).eps

    def hz2mel(h):
        return 2595 * np.log10(1 + h / 700.0)

    def mel2hz(m):
        return 700 * (10 ** (m / 2595.0) - 1)

    mels = np.linspace(hz2mel(0), hz2mel(rate / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * mel2hz(mels) / rate).astype(int)
    fbank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(bins[j], bins[j + 1]):
            fbank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(bins[j + 1], bins[j + 2]):
            fbank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    feat = pspec @ fbank.T
    feat[feat == 0] = np.finfo(float).eps
    feat = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :numcep]
    feat *= 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(numcep) / lifter)
    feat[:, 0] = np.log(energy)
    return feat


def face_crop(image_rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """syncnet_python's crop: the box's square grown by CROP_SCALE (more below, for the chin),
    padded with grey where it leaves the frame, resized to 224×224, returned BGR float32."""
    import cv2

    x0, y0, x1, y1 = box
    bs = max(y1 - y0, x1 - x0) / 2
    my, mx = (y0 + y1) / 2, (x0 + x1) / 2
    pad = int(bs * (1 + 2 * CROP_SCALE))
    padded = np.pad(image_rgb, ((pad, pad), (pad, pad), (0, 0)), constant_values=PAD_VALUE)
    my, mx = my + pad, mx + pad
    crop = padded[
        int(my - bs) : int(my + bs * (1 + 2 * CROP_SCALE)),
        int(mx - bs * (1 + CROP_SCALE)) : int(mx + bs * (1 + CROP_SCALE)),
    ]
    crop = cv2.resize(crop, (CROP, CROP), interpolation=cv2.INTER_LINEAR)
    return crop[..., ::-1].astype(np.float32)


def lse_scores(lip_feats: np.ndarray, aud_feats: np.ndarray, vshift: int = VSHIFT) -> dict:
    """LSE-D, LSE-C and the offset from per-window lip and audio embeddings (N, D) each."""
    v = np.asarray(lip_feats, np.float64)
    a = np.asarray(aud_feats, np.float64)
    if v.shape != a.shape or v.ndim != 2 or len(v) == 0:
        raise ValueError(
            f"lse_scores: need matching non-empty (N, D) features, got {v.shape}, {a.shape}"
        )
    ap = np.pad(a, ((vshift, vshift), (0, 0)))
    win = 2 * vshift + 1
    # torch's pairwise_distance adds eps=1e-6 to the difference; kept for parity with SyncNet.
    dists = np.stack([np.linalg.norm(v[i] - ap[i : i + win] + 1e-6, axis=1) for i in range(len(v))])
    mdist = dists.mean(axis=0)
    k = int(np.argmin(mdist))
    return {
        "lse_d": float(mdist[k]),
        "lse_c": float(np.median(mdist) - mdist[k]),
        "offset": int(vshift - k),
        "windows": len(v),
    }


def syncnet_scores(
    model,
    frames_rgb: list[np.ndarray],
    boxes: list[tuple[float, float, float, float]],
    audio: np.ndarray,
    audio_rate: int,
    fps: float = 25.0,
    vshift: int = VSHIFT,
    batch: int = 20,
) -> dict:
    """LSE-D/LSE-C of a clip (uint8 RGB frames, a face box per frame) against its audio."""

    if audio_rate != AUDIO_RATE:
        import soxr

        audio = soxr.resample(np.asarray(audio, np.float64), audio_rate, AUDIO_RATE)
    # python_speech_features is fed int16-scaled samples in syncnet_python (wavfile.read).
    cc = mfcc(np.asarray(audio, np.float64) * 32768.0).T  # (13, T) at 100 Hz
    crops = np.stack([face_crop(f, b) for f, b in zip(frames_rgb, boxes, strict=True)])
    steps = 100.0 / fps
    # syncnet_python: windows start at frames 0 .. min(video, audio frames) - 6
    audio_frames = int(np.floor(len(audio) * fps / AUDIO_RATE))
    n = min(len(crops), audio_frames) - 5
    while n > 0 and int(round((n - 1) * steps)) + 20 > cc.shape[1]:
        n -= 1
    if n < 1:
        raise ValueError(
            f"clip too short for SyncNet: {len(crops)} frames, {cc.shape[1] / 100:.2f} s audio"
        )
    lip, aud = [], []
    with torch.no_grad():
        for i in range(0, n, batch):
            idx = range(i, min(n, i + batch))
            v = torch.from_numpy(np.stack([crops[j : j + 5] for j in idx])).permute(0, 4, 1, 2, 3)
            starts = [int(round(j * steps)) for j in idx]
            a = torch.from_numpy(np.stack([cc[:, s : s + 20] for s in starts])[:, None]).float()
            lip.append(model.forward_lip(v.float()).numpy())
            aud.append(model.forward_aud(a).numpy())
    return lse_scores(np.concatenate(lip), np.concatenate(aud), vshift)
