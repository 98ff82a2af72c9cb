"""Adapting the LSD to one shot's face before dubbing it (test-time fine-tuning).

A model trained on a few hundred faces dubs the faces it saw better than new ones
(`docs/RESULTS.md`). A shot brings its own training data: its frames, spoken to its original
audio. `adapt_lsd` trains a copy of the LSD for a few steps on exactly that, through the
training loop itself (`engine.train.loop.train`: the same loss, masks, references, mouth
weighting and augmentations as the model's recipe in `model.json`), and returns the copy's EMA.
The loaded model is never changed, so other jobs are not affected. The new line's units then
drive a model that knows this face's mouth.

An artist dubs the same shot many times (another take of the line, another preset). The
adaptation depends only on the shot, never on the new line, so `adapt_lsd(cache=DIR)` keeps each
result under a key of everything it depends on (the init's weights, the training config, the
shot's arrays and units, torch and the device) and the next job on that shot loads it instead of
training again: the same weights, so the same dub, bit for bit. Two jobs on one shot at once
(two GPUs of a server, two farm nodes sharing the folder) train it once: the second waits on
the entry's lock file, then loads what the first stored.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from engine.shot_cache import prune, touch
from engine.train.data import ClipEntry, Manifest, write_manifest, write_shard
from engine.train.ddp import DistInfo
from engine.train.loop import TrainConfig, train

log = logging.getLogger(__name__)

# bump when the adaptation itself changes, so that older cached results are not reused
CACHE_VERSION = 1
# the cache keeps the most recently used results within this many bytes
CACHE_BYTES = 2 * 2**30
# a job waits at most this long for another job training the same shot's fine-tune
LOCK_WAIT_S = 1800.0

# the shard arrays an LSD's training reads (`engine.train.loop.make_batch`). The SRD-sized
# crops ("hi", "mask_hi") go into the shard too but cannot change the fine-tune, so they are
# left out of its cache key: a shot adapted for a preset without the SRD serves one with it.
LSD_ARRAYS = ("lo", "mask_lo", "landmarks", "units", "ref")
# the recipe keys a model's training config may pass on to its adaptation
_RECIPE_KEYS = ("frames", "batch_size", "weight_decay", "hflip", "mouth_weight", "shape_jitter",
                "colour_jitter")


def adapt_config(lsd, lsd_cfg, recipe: dict | None, reference: str, *, steps: int, lr: float,
                 seed: int, init: Path) -> TrainConfig:
    """The training config of an adaptation: the model's own architecture and prediction, the
    recipe's batch and augmentations (`model.json` meta.training.lsd.config, when recorded),
    and a constant learning rate `lr` for `steps` steps from the weights at `init`."""
    unet = {f.name: getattr(lsd.cfg, f.name) for f in dataclasses.fields(lsd.cfg)
            if f.name != "kind"}
    kept = {k: (recipe or {})[k] for k in _RECIPE_KEYS if k in (recipe or {})}
    kept.setdefault("batch_size", 4)
    return TrainConfig(
        kind="lsd", unet_overrides=unet, steps=steps, lr=lr, min_lr=lr, warmup=min(10, steps),
        ema_decay=0.9, reference=reference, prediction=lsd_cfg.diffusion.prediction,
        init=str(init), seed=seed, ckpt_every=steps, keep_states=1, log_every=steps,
        sample_every=steps + 1, **kept)


def adapt_lsd(lsd, lsd_cfg, init: Path,
              clips: list[dict[str, np.ndarray]] | Callable[[], list[dict[str, np.ndarray]]],
              extractor, *, recipe: dict | None, reference: str, exclusion: int, steps: int,
              lr: float, seed: int, device: str = "cpu", cache: Path | None = None,
              inputs: str | None = None, on_step: Callable[[int, int], None] | None = None):
    """A copy of `lsd` (the checkpoint at `init`) trained `steps` steps on `clips`: each the
    shard arrays of one run of the shot (`engine.train.prep.face_arrays` plus "units", the
    original audio's), or a function that makes them. Returns (the EMA of the adapted weights,
    in eval mode on `device`; whether it came from `cache`, a folder of earlier results, or
    None for no cache).

    `inputs`, a digest of everything the clips are made from (the caller vouches for it), lets
    a shot seen before find its entry without making the clips: the cache maps it to the
    entry's key (`inputs/` in the cache folder), and `clips` is then never called."""
    cfg = adapt_config(lsd, lsd_cfg, recipe, reference, steps=steps, lr=lr, seed=seed,
                       init=init)
    key = entry = alias = None
    lock: contextlib.AbstractContextManager = contextlib.nullcontext()

    def hit():
        cached = _load_cached(entry, key, lsd, device) if entry is not None else None
        if cached is not None and on_step:
            on_step(steps, steps)
        return cached

    if cache is not None and inputs is not None:
        head = _key_head(cfg, init, extractor, device, exclusion)
        head.update(f"|inputs|{inputs}".encode())
        alias = Path(cache) / "inputs" / f"{head.hexdigest()[:40]}.key"
        with contextlib.suppress(OSError, UnicodeDecodeError):
            key = alias.read_text().strip()
            entry = Path(cache) / f"{key[:40]}.safetensors"
            if (cached := hit()) is not None:
                touch(alias)
                return cached, True
    if callable(clips):
        clips = clips()
    if cache is not None:
        key = adapt_key(cfg, init, clips, extractor, device, exclusion)
        entry = Path(cache) / f"{key[:40]}.safetensors"
        if (cached := hit()) is not None:
            _remember(alias, key)
            return cached, True
        # the progress callback is how a job is cancelled, so it is called while waiting too
        lock = _exclusive(entry.with_suffix(".lock"),
                          (lambda: on_step(0, steps)) if on_step else None)
    with lock:
        # another job may have trained this shot while this one waited
        if (cached := hit()) is not None:
            return cached, True
        adapted = _train(cfg, clips, extractor, exclusion, device, on_step)
        if entry is not None:
            try:
                _store(entry, key, adapted)
                entry.with_suffix(".lock").unlink(missing_ok=True)
            except OSError as exc:  # a full or read-only disk costs the next job time, no more
                log.warning("adaptation not cached (%s): %s", entry, exc)
            _remember(alias, key)
    return adapted, False


def _remember(alias: Path | None, key: str) -> None:
    """Point the shot's inputs digest at its entry's key (no alias: nothing to do)."""
    from engine.checkpoint import _atomic_write

    if alias is None:
        return
    try:
        _atomic_write(alias, lambda tmp: Path(tmp).write_text(key))
        prune(alias.parent, "*.key")
    except OSError as exc:
        log.warning("adaptation's inputs not mapped (%s): %s", alias, exc)


def _train(cfg: TrainConfig, clips: list[dict[str, np.ndarray]], extractor, exclusion: int,
           device: str, on_step):
    """The adaptation itself: `clips` as a one-job training set, through the training loop."""
    with tempfile.TemporaryDirectory(prefix="edidub-adapt-") as raw:
        data, out = Path(raw) / "data", Path(raw) / "run"
        manifest = Manifest(lo_size=int(clips[0]["lo"].shape[-2]),
                            hi_size=int(clips[0]["hi"].shape[-2]), extractor=extractor.name,
                            vocab=int(extractor.vocab_size),
                            codebook_hash=extractor.codebook_hash, exclusion=exclusion)
        for i, arrays in enumerate(clips):
            shard = f"shards/run{i:03d}.safetensors"
            write_shard(data / shard, arrays, {"clip": f"run{i}"})
            manifest.clips.append(ClipEntry(id=f"run{i}", shard=shard,
                                            frames=int(arrays["lo"].shape[0]), source=f"run{i}"))
        write_manifest(data, manifest)
        # a world of one, whatever torchrun's environment says: this is one job's fine-tune
        alone = DistInfo(rank=0, world=1, local_rank=0, device=device)
        result = train(cfg, data, out, info=alone, quiet=True, on_step=on_step)
    return result["ema"].shadow.eval()


@contextlib.contextmanager
def _exclusive(path: Path, wait: Callable[[], None] | None,
               limit: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on `path` across processes and machines (flock, which NFSv4
    honours), calling `wait` while another holder has it. Where there is no flock (Windows), the
    folder is read-only or the wait passes `limit` seconds, go on without it: two jobs may then
    train the same fine-tune, and each writes the same result atomically."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+b")  # noqa: SIM115 (held for the whole block)
    except OSError as exc:
        log.warning("no lock for the adaptation (%s): %s", path, exc)
        yield
        return
    with handle:
        give_up = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    log.warning("%s still held after %.0f s: training without it", path, limit)
                    yield
                    return
                if wait:
                    wait()
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def adapt_key(cfg: TrainConfig, init: Path, clips: list[dict[str, np.ndarray]], extractor,
              device: str, exclusion: int) -> str:
    """sha256 of everything an adaptation's result depends on: the init's weights (their
    bytes, wherever the model directory lies), the training config, each run's arrays that the
    LSD's training reads (`LSD_ARRAYS`), the reference exclusion window (the loop picks
    upper-face references with it), the units' extractor, torch's version and the device type."""
    h = _key_head(cfg, init, extractor, device, exclusion)
    for arrays in clips:
        for name in sorted(set(arrays) & set(LSD_ARRAYS)):
            a = np.ascontiguousarray(arrays[name])
            h.update(f"|{name}|{a.dtype.str}|{a.shape}|".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _key_head(cfg: TrainConfig, init: Path, extractor, device: str, exclusion: int):
    """The sha256 of an adaptation's key fed with everything but the shot's arrays."""
    import torch

    h = hashlib.sha256()
    setting = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "init"}
    head = {"version": CACHE_VERSION, "torch": torch.__version__,
            "device": torch.device(device).type, "config": setting, "exclusion": exclusion,
            "extractor": [extractor.name, int(extractor.vocab_size), extractor.codebook_hash]}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    weights = Path(f"{init}.safetensors")
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def _load_cached(entry: Path, key: str, lsd, device: str):
    """The cached adaptation at `entry` as a copy of `lsd`, or None (absent, or unreadable:
    then it is trained again and written over)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    if not entry.is_file():
        return None
    try:
        with safe_open(str(entry), framework="pt") as f:
            if (f.metadata() or {}).get("key") != key:
                raise ValueError("written for another key")
        tensors = load_file(entry)
        model = copy.deepcopy(lsd)
        model.load_state_dict(tensors)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        log.warning("cached adaptation %s not used (%s): training again", entry, exc)
        return None
    touch(entry)  # recently used: kept the longest
    return model.to(device).eval()


def _store(entry: Path, key: str, model, budget: int = CACHE_BYTES) -> None:
    """Write `model`'s weights to `entry` atomically, then drop the least recently used
    entries beyond `budget` bytes."""
    from safetensors.torch import save_file

    from engine.checkpoint import _atomic_write

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(entry, lambda tmp: save_file(tensors, tmp, metadata={"key": key}))
    prune(entry.parent, "*.safetensors", keep=None, max_bytes=budget, spare=entry)
