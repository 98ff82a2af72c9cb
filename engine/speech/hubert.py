"""HuBERT units (EdiDub §3.1): features from a local `HubertModel` at 50 Hz, each mapped to its
nearest k-means centroid of a codebook fitted on one speaker (`edidub codebook build`).

Codebook file (safetensors): tensor `centroids` (K, D) float32; metadata `layer` (hidden
state index, "-1" = last), `silence_id` (the cluster that digital silence falls in: quiet
windows are forced to it), `normalize` ("1" = zero-mean/unit-variance input, as the model's
feature extractor asks). `codebook_hash` is a SHA-256 of the centroids' bytes and metadata.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.speech.units import silent_windows, unit_count


class CodebookError(ValueError):
    pass


def hubert_features(model, audio: np.ndarray, *, layer: int = -1, normalize: bool = False,
                    chunk_seconds: float = 30.0) -> np.ndarray:
    """(ceil(len/320), D) float32 features, feature n centred on [n/50, (n+1)/50)."""
    import torch

    audio = np.asarray(audio, np.float32)
    n = unit_count(len(audio))
    if n == 0:
        return np.zeros((0, model.config.hidden_size), np.float32)
    # the conv front-end has a 400-sample receptive field and a 320 hop: 40 samples of
    # padding on the left centres feature n on sample 320 n + 160
    padded = np.zeros(n * 320 + 80, np.float32)
    padded[40 : 40 + len(audio)] = audio
    if normalize:
        padded = (padded - padded.mean()) / np.sqrt(padded.var() + 1e-7)
    hop = int(chunk_seconds * 50)
    feats = []
    with torch.inference_mode():
        for start in range(0, n, hop):
            stop = min(n, start + hop)
            x = torch.from_numpy(padded[start * 320 : stop * 320 + 80])[None]
            out = model(x, output_hidden_states=layer != -1)
            h = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
            feats.append(h[0, : stop - start].float().numpy())
    return np.concatenate(feats)


def load_hubert(model_dir: Path | str):
    from transformers import HubertModel

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise CodebookError(f"{model_dir}: not a HuBERT model directory (no config.json)")
    return HubertModel.from_pretrained(str(model_dir)).eval()


def wants_normalize(model_dir: Path | str) -> bool:
    pre = Path(model_dir) / "preprocessor_config.json"
    return bool(pre.is_file() and json.loads(pre.read_text()).get("do_normalize", False))


@dataclass(frozen=True)
class Codebook:
    centroids: np.ndarray  # (K, D)
    layer: int
    silence_id: int
    normalize: bool

    @property
    def metadata(self) -> dict[str, str]:
        return {"layer": str(self.layer), "silence_id": str(self.silence_id),
                "normalize": "1" if self.normalize else "0"}

    @property
    def hash(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.centroids, np.float32).tobytes())
        h.update(json.dumps(self.metadata, sort_keys=True).encode())
        return h.hexdigest()[:16]

    def save(self, path: Path | str) -> None:
        from safetensors.numpy import save_file

        save_file({"centroids": np.ascontiguousarray(self.centroids, np.float32)}, str(path),
                  metadata=self.metadata)

    @classmethod
    def load(cls, path: Path | str) -> Codebook:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                centroids = f.get_tensor("centroids")
            return cls(centroids.astype(np.float32), int(meta["layer"]), int(meta["silence_id"]),
                       meta.get("normalize") == "1")
        except (OSError, KeyError, ValueError) as exc:
            raise CodebookError(f"{path}: not a HuBERT codebook ({exc})") from exc


@dataclass
class HubertExtractor:
    model: object
    codebook: Codebook
    name: str = "hubert"

    @classmethod
    def load(cls, model_dir: Path | str, codebook: Path | str | Codebook) -> HubertExtractor:
        cb = codebook if isinstance(codebook, Codebook) else Codebook.load(codebook)
        model = load_hubert(model_dir)
        if model.config.hidden_size != cb.centroids.shape[1]:
            raise CodebookError(
                f"codebook vectors are {cb.centroids.shape[1]}-d but {model_dir} gives "
                f"{model.config.hidden_size}-d features: the codebook was built for another model"
            )
        return cls(model=model, codebook=cb)

    @property
    def vocab_size(self) -> int:
        return len(self.codebook.centroids)

    @property
    def codebook_hash(self) -> str:
        return self.codebook.hash

    @property
    def silence_id(self) -> int:
        return self.codebook.silence_id

    def units(self, audio: np.ndarray) -> np.ndarray:
        import torch

        from engine.speech.kmeans import nearest

        feats = hubert_features(self.model, audio, layer=self.codebook.layer,
                                normalize=self.codebook.normalize)
        ids = nearest(torch.from_numpy(feats), torch.from_numpy(self.codebook.centroids))
        out = ids.numpy().astype(np.int64)
        out[silent_windows(np.asarray(audio, np.float32))] = self.silence_id
        return out


def build_codebook(
    audio_files: list[Path], model_dir: Path | str, clusters: int, *, layer: int = -1,
    max_vectors: int = 1_000_000, seed: int = 0, progress=None,
) -> Codebook:
    """Fit the k-means codebook on HuBERT features of a (single-speaker) corpus."""
    from engine.speech.audio import load_audio
    from engine.speech.kmeans import kmeans, nearest

    if not audio_files:
        raise CodebookError("no audio files to build a codebook from")
    model = load_hubert(model_dir)
    normalize = wants_normalize(model_dir)
    feats = []
    for i, path in enumerate(audio_files):
        audio = load_audio(path)
        keep = ~silent_windows(audio)
        f = hubert_features(model, audio, layer=layer, normalize=normalize)
        feats.append(f[keep[: len(f)]])
        if progress:
            progress(i + 1, len(audio_files))
    x = np.concatenate(feats)
    if len(x) > max_vectors:
        x = x[np.random.default_rng(seed).choice(len(x), max_vectors, replace=False)]
    centroids = kmeans(x, clusters, seed=seed)
    import torch

    silence = hubert_features(model, np.zeros(16000, np.float32), layer=layer, normalize=normalize)
    sil_ids = nearest(torch.from_numpy(silence), torch.from_numpy(centroids)).numpy()
    silence_id = int(np.bincount(sil_ids, minlength=clusters).argmax())
    return Codebook(centroids=centroids, layer=layer, silence_id=silence_id, normalize=normalize)
