"""`edidub train phonenet`: fit the `phonenet` unit extractor to the kit's own speech.

Each utterance is a training sentence (never a benchmark line) spoken by a seeded kit voice
(`engine.synth.tracks.voice_draw`); a third of them are spoken faster (up to 380 words a
minute, as `fit_line` speeds up a dub line) and half get white noise 25-60 dB under the
speech. Labels come from espeak-ng's own phoneme timeline (`kit_labels`); quiet windows are
silence. The sentences start at `FIRST_SENTENCE`, past those that `edidub prep --synth`
draws for the LSD (the first N for N clips), so that an LSD's training units are decoded
from lines the recogniser never heard, as at inference. The last 5% of utterances are held
out and scored: unit accuracy on the windows that carry speech, and the share of them
called silence.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.speech.phonenet import (
    CHANNELS,
    DILATIONS,
    build_network,
    kit_labels,
    log_mel,
    save_weights,
)
from engine.speech.phones import PHONES, SILENCE
from engine.speech.units import silent_windows, unit_count

CROP_UNITS = 128  # 2.56 s per training crop
FIRST_SENTENCE = 1000  # the first training sentence spoken (see the module text)


@dataclasses.dataclass
class Utterance:
    features: np.ndarray  # (2N, 40)
    labels: np.ndarray  # (N,)


def kit_utterance(text: str, seed: int) -> Utterance:
    """One kit line, its features (with the seeded speed-up and noise) and its labels."""
    from engine.speech.audio import resample
    from engine.synth.clip import speak
    from engine.synth.tracks import voice_draw

    rng = np.random.default_rng([9311, seed])
    settings = voice_draw(seed)
    if rng.random() < 1 / 3:
        settings = dataclasses.replace(settings, rate=int(rng.integers(200, 381)))
    speech = speak(text, seed, settings)
    audio = resample(speech.audio, speech.sample_rate)
    n = unit_count(len(audio))
    labels = kit_labels(speech.phonemes, len(audio) / 16000, n)
    labels[silent_windows(audio)] = SILENCE
    if rng.random() < 0.5:
        level = np.sqrt(np.mean(audio[np.abs(audio) > 1e-4] ** 2)) if np.any(audio) else 0.0
        noise = rng.standard_normal(len(audio)).astype(np.float32)
        audio = audio + noise * level * 10 ** (-rng.uniform(25, 60) / 20)
    return Utterance(log_mel(audio), labels)


def score(net, mean: np.ndarray, std: np.ndarray, data: list[Utterance]) -> dict[str, float]:
    """Unit accuracy on the windows that carry speech, and the share of them called silence."""
    import torch

    right = silent = speech = 0
    with torch.inference_mode():
        for u in data:
            x = torch.from_numpy(np.ascontiguousarray(((u.features - mean) / std).T))[None]
            pred = net(x)[0].argmax(0).numpy()
            spoken = u.labels != SILENCE
            speech += int(spoken.sum())
            right += int((pred[spoken] == u.labels[spoken]).sum())
            silent += int((pred[spoken] == SILENCE).sum())
    return {"speech_accuracy": right / max(speech, 1), "speech_as_silence": silent / max(speech, 1)}


def train_phonenet(out: Path, *, utterances: int = 3000, steps: int = 3000, seed: int = 0,
                   batch: int = 32, lr: float = 2e-3, channels: int = CHANNELS,
                   dilations: tuple[int, ...] = DILATIONS,
                   log: Callable[[str], None] = print) -> dict:
    """Train and write the weights file `out`; returns the summary (also `out`.json)."""
    import torch

    from engine.synth.sentences import training_sentences

    if utterances < 2 or steps < 1:
        raise ValueError("phonenet training needs at least 2 utterances and 1 step")
    t0 = time.perf_counter()
    texts = training_sentences(FIRST_SENTENCE + utterances)[FIRST_SENTENCE:]
    data = [kit_utterance(t, seed * 1_000_003 + i) for i, t in enumerate(texts)]
    held = max(1, len(data) // 20)
    train, val = data[:-held], data[-held:]
    frames = np.concatenate([u.features for u in train])
    mean, std = frames.mean(axis=0), frames.std(axis=0) + 1e-3
    log(f"phonenet: {len(train)} training and {len(val)} held-out utterances, "
        f"{sum(len(u.labels) for u in train)} units ({time.perf_counter() - t0:.0f} s)")

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network(channels, dilations)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, then a cosine to zero
        opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (1 + np.cos(np.pi * k / steps)))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    for step in range(1, steps + 1):
        xs, ys = [], []
        for i in rng.integers(len(train), size=batch):
            u = train[i]
            n = len(u.labels)
            start = int(rng.integers(max(1, n - CROP_UNITS + 1)))
            x = np.zeros((2 * CROP_UNITS, frames.shape[1]), np.float32)
            y = np.full(CROP_UNITS, -100, np.int64)  # padding is not scored
            k = min(CROP_UNITS, n - start)
            x[: 2 * k] = (u.features[2 * start : 2 * (start + k)] - mean) / std
            y[:k] = u.labels[start : start + k]
            xs.append(x.T)
            ys.append(y)
        net.train()
        loss = loss_fn(net(torch.from_numpy(np.stack(xs))), torch.from_numpy(np.stack(ys)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps:
            net.eval()
            s = score(net, mean, std, val)
            log(f"step {step}: loss {loss.item():.3f}, held-out speech accuracy "
                f"{s['speech_accuracy']:.3f}, speech called silence {s['speech_as_silence']:.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
    net.eval()
    summary = {"utterances": utterances, "steps": steps, "seed": seed, "batch": batch,
               "lr": lr, "channels": channels, "dilations": list(dilations),
               "held_out": score(net, mean, std, val), "seconds": time.perf_counter() - t0,
               "classes": len(PHONES)}
    summary["hash"] = save_weights(net, mean, std, out, channels=channels, dilations=dilations,
                                   meta={k: summary[k] for k in ("utterances", "steps", "seed")})
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
