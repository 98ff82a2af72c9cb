"""`edidub train lsd|srd --config FILE.json --data DIR --out DIR [--resume]` (paper §4.2, B.2).

Single process: `edidub train lsd ...`. Several GPUs or nodes: the same arguments under torchrun,
e.g. `torchrun --nproc-per-node 8 -m bridge.cli train lsd ...` (DDP; NCCL on CUDA, gloo on CPU).
`edidub train export --lsd RUN [--srd RUN] --out MODEL_DIR` turns runs' EMA checkpoints into a
model directory (the format of `edidub model init`). `edidub train leaks --data DIR` measures
whether the LSD's training inputs give the target's mouth away (`engine.train.leaks`);
`edidub train probe --model STEM --data DIR` whether a trained LSD uses its speech units
(`engine.train.probe`). `edidub train openings --data DIR --out MODEL_DIR` measures how far each
unit opens the mouth and has the model match its inference references to the new line
(`engine.train.openings`). `edidub train phonenet --out FILE` fits the `phonenet` unit extractor
to the synthetic kit's speech (`engine.train.phonenet`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the LSD or SRD model on prepared shards")
    p.add_argument("kind", choices=["lsd", "srd", "phonenet", "export", "leaks", "probe",
                                    "openings"],
                   help="which model to train (`phonenet`: the speech-unit recogniser learnt "
                        "from the kit's speech, --out FILE), `export` to assemble a model "
                        "directory, "
                        "`leaks` to check the training inputs for shortcuts to the mouth, or "
                        "`probe` to measure how much a trained LSD uses its speech units, or "
                        "`openings` to match a model dir's (--out) inference references to the "
                        "new line's mouth openings, measured on --data")
    p.add_argument("--config", type=Path, help="training config (JSON; keys of TrainConfig)")
    p.add_argument("--data", type=Path, help="a data directory written by `edidub prep`")
    p.add_argument("--out", type=Path, help="run directory (or model dir: export)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--steps", type=int, help="override the config's step count")
    p.add_argument("--stop-after", type=int, help="stop (with a saved state) at this step")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (e.g. 2 on a 2-core machine)")
    p.add_argument("--utterances", type=int,
                   help="phonenet: kit lines spoken for training (default 3000, the last 5%% "
                        "held out)")
    p.add_argument("--seed", type=int,
                   help="phonenet: voices, noise and init (default 0; lsd and srd take theirs "
                        "from --config)")
    p.add_argument("--model", type=Path,
                   help="probe: an LSD checkpoint stem (RUN/ema, MODEL_DIR/lsd)")
    p.add_argument("--lsd", type=Path, help="export: the LSD run directory")
    p.add_argument("--srd", type=Path, help="export: the SRD run directory")
    p.add_argument("--presets", type=Path,
                   help="export: JSON file of inference presets ({name: {steps, guidance, "
                        "srd_steps}}) for model.json (default: the pipeline's)")
    p.add_argument("--meta", type=Path,
                   help="export: JSON object merged into model.json's meta (e.g. demo choices)")
    p.add_argument("--name", help="export: the model's name")
    p.add_argument("--inference-reference", choices=["frame", "upper_face", "non_lip", "random"],
                   default="frame",
                   help="export: each frame's LSD reference at inference: the frame itself (the "
                        "paper), or another frame of the run matched as in training on these "
                        "landmarks, or a random one (the §4.5 ablation), outside a ±5 frame "
                        "window")
    p.add_argument("--unit-weights", type=Path,
                   help="export: the file the LSD's learnt units come from (phonenet's "
                        "weights, a HuBERT codebook), copied into the model dir")
    p.add_argument("--srd-off", action="store_true",
                   help="export: keep the SRD checkpoint as srd_trained.* but do not use it "
                        "(the pipeline upscales the LSD crop bicubically)")
    p.add_argument("--pose", type=float,
                   help="openings: weight of the upper-face pose term (default 0.2)")
    p.add_argument("--start", choices=["none", "typical"],
                   help="openings: start the inversion from the reference on the run's typical "
                        "frames (default typical) or on none")
    p.add_argument("--lower-face", type=float,
                   help="openings: weight of the cheeks-and-chin term that keeps a hand or "
                        "microphone in the references of the frames it covers (default 1.0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kind == "leaks":
        return _leaks(args)
    if args.kind == "probe":
        return _probe(args)
    if args.out is None:
        print(f"edidub train {args.kind}: --out is required", file=sys.stderr)
        return 2
    if args.kind == "export":
        return _export(args)
    if args.kind == "openings":
        return _openings(args)
    if args.unit_weights is not None:
        print(f"edidub train {args.kind}: --unit-weights is export's; the units of the data "
              f"are already in its shards", file=sys.stderr)
        return 2
    if args.kind == "phonenet":
        return _phonenet(args)
    if args.seed is not None or args.utterances is not None:
        print(f"edidub train {args.kind}: --seed and --utterances are phonenet's; {args.kind} "
              f"takes its seed from --config", file=sys.stderr)
        return 2
    from engine.train import ddp
    from engine.train.data import DataError
    from engine.train.loop import load_config, train

    if args.config is None or args.data is None:
        print("edidub train: --config and --data are required", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, kind=args.kind, steps=args.steps, threads=args.threads)
    except ValueError as exc:
        print(f"edidub train: {exc}", file=sys.stderr)
        return 2
    info = ddp.setup(args.device)
    try:
        result = train(cfg, args.data, args.out, resume=args.resume,
                       stop_after=args.stop_after, info=info)
    except (DataError, FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"edidub train: {exc}", file=sys.stderr)
        return 2
    finally:
        ddp.teardown()
    if info.is_main:
        summary = {k: v for k, v in result.items() if k not in ("model", "ema")}
        print(json.dumps(summary))
    return 0


def _phonenet(args: argparse.Namespace) -> int:
    import torch

    from engine.train.phonenet import train_phonenet

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        summary = train_phonenet(args.out, utterances=args.utterances or 3000,
                                 steps=args.steps or 3000, seed=args.seed or 0,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as exc:
        print(f"edidub train phonenet: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _export(args: argparse.Namespace) -> int:
    from engine.train.export import export_model_dir

    if args.lsd is None:
        print("edidub train export: --lsd run directory is required (--srd optional: "
              "without it the pipeline upscales the LSD crop bicubically)", file=sys.stderr)
        return 2
    from engine.face.references import reference_setting

    try:
        presets = json.loads(args.presets.read_text()) if args.presets else None
        meta = json.loads(args.meta.read_text()) if args.meta else None
        path = export_model_dir(args.lsd, args.srd, args.out, presets=presets, meta=meta,
                                name=args.name, srd_enabled=not args.srd_off,
                                inference_reference=reference_setting(args.inference_reference),
                                unit_weights=args.unit_weights)
    except (FileNotFoundError, ValueError) as exc:
        print(f"edidub train export: {exc}", file=sys.stderr)
        return 2
    print(f"model directory written: {path}")
    return 0


def _openings(args: argparse.Namespace) -> int:
    from engine.pipeline import ModelDirError
    from engine.train.data import DataError
    from engine.train.openings import LOWER_FACE, POSE, START, add_to_model_dir

    if args.data is None:
        print("edidub train openings: --data is required (the model's training data)",
              file=sys.stderr)
        return 2
    try:
        reference = add_to_model_dir(
            args.out, args.data, pose=POSE if args.pose is None else args.pose,
            lower_face=LOWER_FACE if args.lower_face is None else args.lower_face,
            start=args.start or START)
    except (DataError, ModelDirError, ValueError) as exc:
        print(f"edidub train openings: {exc}", file=sys.stderr)
        return 2
    opening = reference["opening"]
    print(json.dumps({"model_dir": str(args.out), "mouth_box": opening["mouth_box"],
                      "pose": opening["pose"], "lower_face": opening["lower_face"],
                      "start": opening["start"],
                      "data": {k: v for k, v in opening["data"].items()
                               if k != "frames_per_id"}}))
    return 0


def _leaks(args: argparse.Namespace) -> int:
    from engine.train.data import DataError
    from engine.train.leaks import measure

    if args.data is None:
        print("edidub train leaks: --data is required", file=sys.stderr)
        return 2
    try:
        print(json.dumps(measure(args.data), indent=1))
    except DataError as exc:
        print(f"edidub train leaks: {exc}", file=sys.stderr)
        return 2
    return 0


def _probe(args: argparse.Namespace) -> int:
    from engine.checkpoint import CheckpointMismatch
    from engine.train.data import DataError
    from engine.train.probe import probe

    if args.model is None or args.data is None:
        print("edidub train probe: --model and --data are required", file=sys.stderr)
        return 2
    try:
        print(json.dumps(probe(args.model, args.data), indent=1))
    except (CheckpointMismatch, DataError, FileNotFoundError, ValueError) as exc:
        print(f"edidub train probe: {exc}", file=sys.stderr)
        return 2
    return 0
