"""`edidub doctor`: check what this installation can do, and print a table."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

# (what, how to check it, needed by). A check returns a short detail or raises.
Check = tuple[str, Callable[[], str], str]


def _import(module: str) -> Callable[[], str]:
    def check() -> str:
        mod = importlib.import_module(module)
        return str(getattr(mod, "__version__", "") or "ok")

    return check


def _dlib_models() -> str:
    from engine.face import dlib_models

    names = (dlib_models.LANDMARKS_68, dlib_models.LANDMARKS_5, dlib_models.CNN_DETECTOR,
             dlib_models.IDENTITY_RESNET)
    for name in names:
        dlib_models.model_path(name)
    return f"{len(names)} models in {dlib_models.models_dir()}"


def _ocio() -> str:
    import PyOpenColorIO as ocio

    config = ocio.Config.CreateFromBuiltinConfig("studio-config-latest")
    from engine.job import DEFAULT_COLORSPACE

    if config.getColorSpace(DEFAULT_COLORSPACE) is None:
        raise RuntimeError(f"built-in config lacks {DEFAULT_COLORSPACE!r}")
    return f"built-in studio config, {len(list(config.getColorSpaceNames()))} colour spaces"


def _pocketsphinx() -> str:
    from pocketsphinx import get_model_path

    model = Path(get_model_path()) / "en-us"
    needed = [model / "en-us" / "mdef", model / "en-us-phone.lm.bin"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}")
    return f"en-us phone model in {model}"


def _espeak() -> str:
    import ctypes

    import espeakng_loader

    ctypes.CDLL(espeakng_loader.get_library_path())
    data = Path(espeakng_loader.get_data_path())
    if not data.is_dir():
        raise FileNotFoundError(f"no espeak-ng data at {data}")
    return f"library and data at {data.parent}"


def _default_model() -> str:
    from engine.pipeline import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model.json").is_file():
        raise FileNotFoundError(f"no embedded model at {DEFAULT_MODEL_DIR}")
    return str(DEFAULT_MODEL_DIR)


def _proto() -> str:
    from bridge._proto import bridge_pb2

    return bridge_pb2.DESCRIPTOR.package


def _cuda() -> str:
    import torch

    if not torch.cuda.is_available():
        return "not available (CPU only)"
    return f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}"


CHECKS: list[Check] = [
    ("grpc", _import("grpc"), "bridge"),
    ("grpc health", _import("grpc_health.v1.health"), "bridge"),
    ("wire stubs (edidub.bridge.v1)", _proto, "bridge"),
    ("OpenImageIO", _import("OpenImageIO"), "bridge"),
    ("numpy", _import("numpy"), "bridge"),
    ("tqdm", _import("tqdm"), "bridge"),
    ("torch", _import("torch"), "engine"),
    ("CUDA", _cuda, "engine (optional)"),
    ("kornia", _import("kornia"), "engine"),
    ("safetensors", _import("safetensors"), "engine"),
    ("OpenColorIO config", _ocio, "engine"),
    ("dlib", _import("dlib"), "engine"),
    ("dlib models", _dlib_models, "engine"),
    ("pocketsphinx model", _pocketsphinx, "engine"),
    ("espeak-ng", _espeak, "engine (synthetic data)"),
    ("soundfile", _import("soundfile"), "engine"),
    ("soxr", _import("soxr"), "engine"),
    ("PyAV", _import("av"), "engine"),
    ("embedded default model", _default_model, "engine"),
]


def run_checks() -> list[dict]:
    rows = []
    for what, check, needed_by in CHECKS:
        try:
            rows.append({"check": what, "ok": True, "detail": check(), "needed_by": needed_by})
        except Exception as exc:  # a doctor reports every failure, whatever its type
            detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
            rows.append({"check": what, "ok": False, "detail": detail, "needed_by": needed_by})
    return rows


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check the installation",
                              description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = run_checks()
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        width = max(len(r["check"]) for r in rows)
        need = max(len(r["needed_by"]) for r in rows)
        for r in rows:
            mark = "ok  " if r["ok"] else "FAIL"
            print(f"{mark}  {r['check']:<{width}}  {r['needed_by']:<{need}}  {r['detail']}")
    required_failed = [r for r in rows if not r["ok"] and r["needed_by"] == "bridge"]
    engine_failed = [r for r in rows if not r["ok"] and r["needed_by"] == "engine"]
    if required_failed:
        print(f"\nthe bridge cannot run: {len(required_failed)} required check(s) failed",
              file=sys.stderr)
        return 1
    if engine_failed:
        print(f"\n{len(engine_failed)} engine check(s) failed: this installation can relay "
              "jobs but not dub", file=sys.stderr)
        return 1
    return 0
