"""`edidub demo [--out DIR] [--quick]`: the whole product once, on the embedded default model.

1. synth   — a sample shot (the synthetic kit): a line the demo model never trained on, as an
             EXR sequence with its audio, and its dub pair speaking a new line (the exact answer);
2. server  — a loopback bridge server (in-process gRPC, ephemeral port) with the default model;
3. dub     — the job through the real client (`BridgeClient.dub`): upload, watch, download;
4. preview — `DIR/preview.mp4`: the dubbed frames with the new line's audio (H.264/AAC);
5. eval    — the evaluation suite's metrics against the undubbed clip and the true dub, and
             its contact sheet `DIR/compare.png` (before / after / ground truth).

`DIR/report.json` holds each stage's wall time, the engine's own per-stage timings and the
metrics. `--quick` makes a one-second clip and few diffusion steps (the test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

# The demo's lines: benchmark lines (bench/synth-v1), which the training data never contains.
DEMO_TEXT = "The harbour lights flickered as the ferry came home."
DEMO_PAIR = "Nobody expected the parade to start so early."
QUICK_TEXT = "Open the gate."
QUICK_PAIR = "Bob may pay."
DEMO_COLORSPACE = "sRGB Encoded Rec.709 (sRGB)"  # what the synthetic kit's EXRs hold


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="dub a sample clip end to end with the default model")
    p.add_argument("--out", type=Path, default=Path("edidub-demo"), help="output folder")
    p.add_argument("--quick", action="store_true", help="a one-second clip, few steps")
    p.add_argument("--model-dir", type=Path, help="a model directory (default: embedded)")
    p.add_argument("--identity", help="synthetic identity (default: the model's demo choice)")
    p.add_argument("--text", help="the sample clip's line")
    p.add_argument("--pair-text", help="the new line of dialogue")
    p.add_argument("--preset", help="inference preset of the model (default: demo, else draft)")
    p.add_argument("--steps", type=int, help="diffusion steps (overrides the preset)")
    p.add_argument("--seed", type=int, default=7, help="shot and sampling seed")
    p.add_argument("--size", default=None, help="frame size WxH (default 256x256; quick 160)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bench", type=Path, metavar="MANIFEST",
                   help="instead: score the model on a benchmark manifest's clips "
                        "(bench/synth-v1/manifest.json) with the ablations")
    p.add_argument("--ids", help="--bench: comma-separated clip ids (default: all)")
    p.add_argument("--sampling-seed-offset", type=int, default=0, metavar="N",
                   help="--bench: add N to each clip's sampling seed (the clip itself is "
                        "unchanged): scores under other noise draws measure the metrics' spread")
    p.add_argument("--ablations", default="full,no_inversion",
                   help=f"--bench: comma-separated, of {', '.join(ABLATIONS)}")
    p.add_argument("--adapt-cache", type=Path, default=None, metavar="DIR",
                   help="keep each shot's fine-tune and its frames' faces here and reuse them "
                        "when the same shot is dubbed again, as `edidub serve` does (default: "
                        "OUT/adapt-cache)")
    p.add_argument("--tabulate", type=Path, nargs="+", metavar="BENCH_JSON",
                   help="instead: print the ablation table (means per split, one row per "
                        "model and ablation) of --bench results (DIR/bench.json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.pipeline import ModelDirError

    if args.tabulate:
        try:
            print(ablation_table([json.loads(Path(f).read_text()) for f in args.tabulate]))
        except (OSError, ValueError, KeyError) as exc:
            print(f"edidub demo --tabulate: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.bench is not None:
        try:
            result = run_bench(args.out, args.bench, args.ids.split(",") if args.ids else None,
                               model_dir=args.model_dir, preset=args.preset or "demo",
                               ablations=tuple(args.ablations.split(",")),
                               size=args.size or "256x256", device=args.device,
                               sampling_seed_offset=args.sampling_seed_offset,
                               adapt_cache=args.adapt_cache)
        except (ModelDirError, ValueError) as exc:
            print(f"edidub demo --bench: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result["rows"], indent=1, default=str))
        return 0
    try:
        report = run_demo(args.out, quick=args.quick, model_dir=args.model_dir,
                          identity=args.identity, text=args.text, pair_text=args.pair_text,
                          preset=args.preset, steps=args.steps, seed=args.seed,
                          size=args.size, device=args.device, adapt_cache=args.adapt_cache)
    except (ModelDirError, ValueError) as exc:
        print(f"edidub demo: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    m = report["metrics"]
    print(f"\nDone in {report['timings']['total']:.0f}s. Look at:\n"
          f"  {out / 'preview.mp4'}   the dubbed shot with the new line\n"
          f"  {out / 'compare.png'}   before / after / ground truth\n"
          f"  {out / 'frames'}/       the dubbed EXR frames\n"
          f"  {out / 'report.json'}   timings and metrics\n"
          f"lip sync with the new line: {_fmt(m.get('dub', {}).get('sync_corr'))} "
          f"(undubbed original: {_fmt(m.get('original', {}).get('sync_corr'))}, "
          f"true dub: {_fmt(m.get('truth', {}).get('sync_corr'))})")
    return 0


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _model_choice(model_dir: Path | None) -> dict:
    """The model directory's `meta.demo` (identity the model handles best, preset)."""
    from engine.pipeline import DEFAULT_MODEL_DIR, read_model_json

    meta = read_model_json(model_dir or DEFAULT_MODEL_DIR).get("meta") or {}
    return meta.get("demo") or {}


def make_sample(out: Path, identity: str, text: str, pair_text: str, *, seed: int,
                size: str, fps: Fraction = Fraction(25), occluder: str = "none") -> Path:
    """The synthetic kit's clip + dub pair (`out/clip`, `out/pair`), rendered once."""
    from engine.synth.clip import make_clip

    if not (out / "pair" / "truth.json").is_file():
        make_clip(identity, text, out, pair_text=pair_text, fps=fps, seed=seed, size=size,
                  fmt="exr", occluder=occluder)
    return out


def dub_sample(sample: Path, engine, out_dir: Path, spec, *, device: str = "cpu",
               invert: bool = True, log=None, clip: Path | None = None):
    """Dub `sample/clip` (or `clip`, a folder laid out like it) with `sample/pair`'s audio
    through a loopback bridge server."""
    # invert=False is the paper's "w/o DDIM inversion" ablation (§4.5): an engine setting,
    # restored afterwards, never a job option.
    clip = clip or sample / "clip"
    server = _start_server(out_dir.parent / "spool", engine, device)
    engine.invert = invert
    try:
        return _dub(server.port, spec, _frames(clip), sample / "pair" / "audio.wav",
                    clip / "audio.wav", out_dir, log or (lambda line: None))
    finally:
        engine.invert = True
        server.stop(0.5)


def _frames(folder: Path) -> dict:
    from engine.eval.clip import list_frames

    return list_frames(folder)


def run_demo(out: Path, *, quick: bool = False, model_dir: Path | None = None,
             identity: str | None = None, text: str | None = None,
             pair_text: str | None = None, preset: str | None = None,
             steps: int | None = None, seed: int = 7, size: str | None = None,
             device: str = "cpu", adapt_cache: Path | None = None, log=None) -> dict:
    """Run the demo into `out`; returns the report (also written to `out/report.json`)."""
    from engine.job import DubSpec
    from engine.pipeline import load_engine

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    choice = _model_choice(model_dir)
    identity = identity or choice.get("identity", "astronaut")
    text = text or (QUICK_TEXT if quick else DEMO_TEXT)
    pair_text = pair_text or (QUICK_PAIR if quick else DEMO_PAIR)
    size = size or ("160x160" if quick else "256x256")

    t = time.perf_counter()
    log(f"[1/5] synth: {identity} says {text!r}; the new line is {pair_text!r}")
    sample = make_sample(out / "sample", identity, text, pair_text, seed=seed, size=size)
    clip_dir, pair_dir = sample / "clip", sample / "pair"
    frames = _frames(clip_dir)
    timings["synth"] = time.perf_counter() - t

    t = time.perf_counter()
    log("[2/5] server: loading the model and starting a loopback bridge")
    engine = load_engine(model_dir, device)
    engine.adapt_cache = Path(adapt_cache or out / "adapt-cache")
    presets = engine.presets
    if preset is None:
        preset = "quick" if quick and "quick" in presets else (
            "demo" if "demo" in presets else "draft")
    if quick and steps is None and preset not in ("quick",):
        steps = 4
    server = _start_server(out / "spool", engine, device)
    timings["server"] = time.perf_counter() - t
    try:
        t = time.perf_counter()
        spec = DubSpec(fps=Fraction(25), first_frame=min(frames), last_frame=max(frames),
                       colorspace=DEMO_COLORSPACE, preset=preset, steps=steps, seed=seed)
        log(f"[3/5] dub: {len(frames)} frames through the bridge (preset {preset}"
            f"{f', {steps} steps' if steps else ''})")
        result = _dub(server.port, spec, frames, pair_dir / "audio.wav", clip_dir / "audio.wav",
                      out / "frames", log)
        timings["dub"] = time.perf_counter() - t
    finally:
        server.stop(0.5)

    t = time.perf_counter()
    log("[4/5] preview: encoding preview.mp4")
    write_preview(out / "frames", pair_dir / "audio.wav", out / "preview.mp4", Fraction(25))
    timings["preview"] = time.perf_counter() - t

    t = time.perf_counter()
    log("[5/5] eval: metrics and the contact sheet")
    metrics = evaluate(clip_dir, out / "frames", pair_dir, out / "compare.png",
                       references=not quick)
    timings["eval"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    report = {
        "schema_version": 1,
        "timings": timings,
        "engine": {"report": result.report, "warnings": result.warnings,
                   "info": engine.info() if hasattr(engine, "info") else {}},
        "sample": {"identity": identity, "text": text, "pair_text": pair_text, "size": size,
                   "frames": len(frames), "seed": seed, "preset": preset, "steps": steps},
        "metrics": metrics,
        "outputs": {"frames": str(out / "frames"), "preview": str(out / "preview.mp4"),
                    "compare": str(out / "compare.png")},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def _start_server(spool: Path, engine, device: str):
    from bridge.server import ServerConfig, make_server

    return make_server(ServerConfig(spool=spool, listen="127.0.0.1:0", device=device), engine)


def _dub(port: int, spec, frames: dict, audio: Path, original: Path, out_dir: Path, log):
    from bridge.client import BridgeClient

    last = {"stage": None}

    def on_event(ev) -> None:
        if ev.stage != last["stage"] or ev.state in ("done", "failed"):
            last["stage"] = ev.stage
            log(f"      {ev.state} {ev.stage} {ev.done}/{ev.total}")

    with BridgeClient(f"127.0.0.1:{port}") as client:
        return client.dub(spec, frames, audio, out_dir, original_audio=original,
                          on_event=on_event)


def write_preview(frames_dir: Path, audio: Path, path: Path, fps: Fraction) -> Path:
    """H.264 (mpeg4 where libx264 is missing) + AAC preview of a folder of frames."""
    import av
    import numpy as np

    from engine.eval.clip import read_clip
    from engine.speech.audio import load_audio

    clip = read_clip(frames_dir)
    images = clip.rgb if hasattr(clip, "rgb") else clip.frames
    images = [np.asarray(im) for im in images]
    if images[0].dtype != np.uint8:
        images = [np.clip(np.round(im * 255), 0, 255).astype(np.uint8) for im in images]
    h, w = images[0].shape[:2]
    images = [im[: h - h % 2, : w - w % 2] for im in images]  # yuv420p wants even sides
    rate = 48000
    sound = load_audio(audio, rate)
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        v = container.add_stream(codec, rate=fps)
        v.width, v.height = images[0].shape[1], images[0].shape[0]
        v.pix_fmt = "yuv420p"
        if codec == "libx264":
            v.options = {"crf": "18", "preset": "veryfast"}
        a = container.add_stream("aac", rate=rate)
        a.layout = "mono"
        for im in images:
            for packet in v.encode(av.VideoFrame.from_ndarray(im, format="rgb24")):
                container.mux(packet)
        for packet in v.encode():
            container.mux(packet)
        pcm = (np.clip(sound, -1, 1) * 32767).astype(np.int16)
        for i in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 1024], format="s16",
                                               layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            for packet in a.encode(frame):
                container.mux(packet)
        for packet in a.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def evaluate(clip_dir: Path, dub_dir: Path, pair_dir: Path, sheet: Path,
             references: bool = True) -> dict:
    """The evaluation suite on the dub (and on its two reference points: the undubbed clip and
    the true dub), plus the contact sheet."""
    from engine.eval.report import evaluate_dub
    from engine.eval.sheet import contact_sheet

    audio = pair_dir / "audio.wav"
    cache: dict = {}
    dub = evaluate_dub(clip_dir, dub_dir, audio, truth=pair_dir, cache=cache)
    contact_sheet(sheet, clip_dir, dub_dir, dub, truth=pair_dir)
    if not references:
        return {"dub": _headline(dub), "dub_full": dub}
    original = evaluate_dub(clip_dir, clip_dir, audio, truth=pair_dir, cache=cache)
    truth = evaluate_dub(clip_dir, pair_dir, audio, truth=pair_dir, cache=cache)
    return {"dub": _headline(dub), "original": _headline(original), "truth": _headline(truth),
            "dub_full": dub}


def _headline(report: dict) -> dict:
    """The few numbers a person reads first, from the suite's report (`engine.eval.report`)."""
    def get(*path):
        v = report
        for k in path:
            if not isinstance(v, dict) or k not in v:
                return None
            v = v[k]
        return v

    occlusion = get("occlusion")
    return {
        "sync_corr": get("sync_truth", "corr"),
        # the frames that correlation used: the new line's spoken span less those where the
        # truth says an occluder hides the lips (a hand over the mouth hides part of the line)
        "sync_frames": get("sync_truth", "frames_used"),
        "sync_span": get("sync_truth", "span"),
        "sync_audio_corr": get("sync_audio", "corr"),
        "mouth_psnr": get("mouth_psnr"),
        "mouth_ssim": get("mouth_ssim"),
        "mouth_sharpness": get("mouth_sharpness"),
        "id_p": get("id_p"),
        "id_tc": get("id_tc"),
        "outside_mask_changed": get("outside_mask", "changed_pixels"),
        "occlusion": occlusion,
        # the mouth's jump where the dub switches between an untouched frame and an edited
        # one, over its jump elsewhere (>> 1: a pop at a pause or at the line's ends)
        "edit_jump_ratio": get("seam", "edit", "dub", "photometric", "ratio"),
        "edit_boundaries": len(get("seam", "edit", "dub", "photometric", "seams") or []),
    }


# --- the benchmark and its ablations --------------------------------------------------------

# name -> (DDIM inversion on, the kit's occluder masks given to the engine as a holdout matte)
ABLATIONS = {"full": (True, False), "no_inversion": (False, False), "holdout": (True, True)}


def holdout_clip(sample: Path) -> Path | None:
    """`sample/clip` with each frame's occluder coverage (the kit's soft mask: the roto an
    artist would draw) added as the channel HOLDOUT_CHANNEL, in `sample/clip_holdout`, beside
    the clip's audio and truth; None when no frame of the clip has an occluder."""
    import numpy as np
    import OpenImageIO as oiio

    from engine.eval.truth import TRUTH_FILE, coverage
    from engine.frames import Frame, Part, read_frame, write_frame
    from engine.job import HOLDOUT_CHANNEL

    clip, out = sample / "clip", sample / "clip_holdout"
    records = json.loads((clip / TRUTH_FILE).read_text())["frames"]
    masks = {int(r["frame"]): r.get("occluder") for r in records}
    if not any(masks.values()):
        return None
    if (out / TRUTH_FILE).exists():  # linked last: the folder is complete
        return out
    out.mkdir(parents=True, exist_ok=True)
    for number, path in _frames(clip).items():
        part = read_frame(path).parts[0]
        height, width = part.pixels.shape[:2]
        cover = coverage(masks.get(number), clip)
        if cover is None:
            cover = np.zeros((height, width), np.float32)
        if cover.shape != (height, width):
            raise ValueError(f"{clip}: frame {number}'s occluder mask is {cover.shape[::-1]}, "
                             f"the frame {(width, height)}")
        pixels = np.concatenate([part.pixels, cover[..., None].astype(part.pixels.dtype)], 2)
        spec = oiio.ImageSpec(part.spec)  # the header (colour space, windows) stays
        spec.nchannels = pixels.shape[2]
        spec.channelnames = (*part.channel_names, HOLDOUT_CHANNEL)
        write_frame(out / path.name, Frame(parts=[Part(spec=spec, pixels=pixels)]))
    for name in ("audio.wav", "occluder", TRUTH_FILE):
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to((clip / name).resolve())
    return out


def run_bench(out: Path, manifest: Path, ids: list[str] | None, *, model_dir: Path | None,
              ablations: tuple[str, ...] = ("full", "no_inversion"), preset: str = "demo",
              size: str = "256x256", device: str = "cpu", sampling_seed_offset: int = 0,
              adapt_cache: Path | None = None, log=None) -> dict:
    """The default model on `bench/synth-v1` clips: each clip dubbed with its pair line, per
    ablation, through the bridge, scored by the evaluation suite against the undubbed clip
    and the true dub (the two reference points).

    A clip is rendered from its manifest seed and dubbed with that seed plus
    `sampling_seed_offset`, so a non-zero offset scores the same clips under other noise.
    A clip's fine-tune to the shot (a preset's `adapt_steps`) is kept in `adapt_cache`
    (default `out/adapt-cache`), so its other ablations, and later runs given the same folder,
    reuse it (`engine.train.adapt`)."""
    from engine.job import HOLDOUT_CHANNEL, DubSpec
    from engine.pipeline import load_engine

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    bad = sorted(set(ablations) - set(ABLATIONS))
    if bad:
        raise ValueError(f"unknown ablations {bad}; known: {', '.join(ABLATIONS)}")
    clips = json.loads(Path(manifest).read_text())["clips"]
    if ids:
        unknown = sorted(set(ids) - {c["id"] for c in clips})
        if unknown:
            raise ValueError(f"{manifest}: no clips {unknown}")
        clips = [c for c in clips if c["id"] in ids]
    engine = load_engine(model_dir, device)
    engine.adapt_cache = Path(adapt_cache or Path(out) / "adapt-cache")
    rows: list[dict] = []
    result = {"model": engine.info(), "preset": preset, "size": size,
              "sampling_seed_offset": sampling_seed_offset, "rows": rows}
    for c in clips:
        fps = Fraction(c["fps"])
        sample = make_sample(Path(out) / c["id"] / "sample", c["identity"], c["text"],
                             c["pair_text"], seed=int(c["seed"]), size=size, fps=fps,
                             occluder=c.get("occluder", "none"))
        frames = _frames(sample / "clip")
        cache: dict = {}
        refs = None
        for name in ablations:
            invert, holdout = ABLATIONS[name]
            source = holdout_clip(sample) if holdout else sample / "clip"
            if source is None:
                log(f"{c['id']}: no occluder, so no {name} row")
                continue
            t = time.perf_counter()
            spec = DubSpec(fps=fps, first_frame=min(frames), last_frame=max(frames),
                           colorspace=DEMO_COLORSPACE, preset=preset,
                           seed=int(c["seed"]) + sampling_seed_offset,
                           holdout=HOLDOUT_CHANNEL if holdout else "")
            dub_dir = Path(out) / c["id"] / name / "frames"
            log(f"{c['id']} ({c['identity']}, {c['split']}, {c['fps']} fps): {name}")
            dub_sample(sample, engine, dub_dir, spec, device=device, invert=invert, clip=source)
            seconds = time.perf_counter() - t
            metrics = evaluate_pair(sample, dub_dir, cache, with_references=refs is None,
                                    sheet=Path(out) / c["id"] / name / "compare.png",
                                    clip=source)
            refs = refs or metrics.pop("references")
            metrics.pop("references", None)
            rows.append({"id": c["id"], "identity": c["identity"], "split": c["split"],
                         "fps": c["fps"], "occluder": c.get("occluder", "none"),
                         "ablation": name, "dub_seconds": seconds, "frames": len(frames),
                         **metrics["dub"], "original": refs["original"], "truth": refs["truth"]})
            # written after every dub: a long run cut short keeps what it measured
            (Path(out) / "bench.json").write_text(json.dumps(result, indent=1, default=str))
    return result


TABLE_COLUMNS = (  # (header, row key, digits); means over the clips of a split
    ("sync ↑", "sync_corr", 2),
    ("mouth PSNR dB ↑", "mouth_psnr", 1),
    ("mouth SSIM ↑", "mouth_ssim", 3),
    ("mouth sharpness (truth 1)", "mouth_sharpness", 2),
    ("ID-P ↓", "id_p", 4),
    ("ID-TC ↓", "id_tc", 4),
    ("occluder PSNR dB ↑", ("occlusion", "psnr"), 1),
    ("outside mask changed", "outside_mask_changed", 0),
)


def _value(row: dict, key) -> float | None:
    if isinstance(key, tuple):
        for k in key:
            row = row.get(k) if isinstance(row, dict) else None
        return row
    return row.get(key)


def ablation_table(results: list[dict]) -> str:
    """Markdown: per split (seen / held-out), the undubbed and true-dub reference points, then
    each (model, ablation) of the `run_bench` results, as means over the split's clips.
    Infinite PSNRs (an untouched region) are left out of a mean and counted as ∞ when all are."""
    import math

    def mean(values: list, digits: int) -> str:
        vals = [v for v in values if v is not None]
        if not vals:
            return "—"
        finite = [v for v in vals if math.isfinite(v)]
        return "∞" if not finite else f"{sum(finite) / len(finite):.{digits}f}"

    lines = []
    for split in ("seen", "held-out"):
        head = ["method", "clips"] + [c[0] for c in TABLE_COLUMNS]
        lines += [f"**{split}**", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        refs: dict[str, dict] = {}
        body = []
        for result in results:
            name = result["model"]["model"]
            groups: dict[str, list[dict]] = {}
            for row in result["rows"]:
                if row["split"] == split:
                    groups.setdefault(row["ablation"], []).append(row)
                    refs.setdefault(row["id"], row)
            for ablation, rows in groups.items():
                cells = [f"{name} · {ablation}", str(len(rows))]
                for _, key, digits in TABLE_COLUMNS:
                    cells.append(mean([_value(r, key) for r in rows], digits))
                body.append("| " + " | ".join(cells) + " |")
        for label, which in (("undubbed original", "original"), ("ground-truth dub", "truth")):
            cells = [label, str(len(refs))]
            for _, key, digits in TABLE_COLUMNS:
                cells.append(mean([_value(r[which], key) for r in refs.values()], digits))
            lines.append("| " + " | ".join(cells) + " |")
        lines += body + [""]
    return "\n".join(lines)


def evaluate_pair(sample: Path, dub_dir: Path, cache: dict, *, with_references: bool,
                  sheet: Path | None = None, clip: Path | None = None) -> dict:
    """The suite on a dub of `sample/clip` (or of `clip`, the folder the dub was made from:
    bit-integrity is checked against what was sent)."""
    from engine.eval.report import evaluate_dub
    from engine.eval.sheet import contact_sheet

    clip_dir, pair_dir = clip or sample / "clip", sample / "pair"
    audio = pair_dir / "audio.wav"
    dub = evaluate_dub(clip_dir, dub_dir, audio, truth=pair_dir, cache=cache)
    if sheet is not None:
        contact_sheet(sheet, clip_dir, dub_dir, dub, truth=pair_dir)
    out = {"dub": _headline(dub)}
    if with_references:
        out["references"] = {
            "original": _headline(evaluate_dub(clip_dir, clip_dir, audio, truth=pair_dir,
                                               cache=cache)),
            "truth": _headline(evaluate_dub(clip_dir, pair_dir, audio, truth=pair_dir,
                                            cache=cache)),
        }
    return out
