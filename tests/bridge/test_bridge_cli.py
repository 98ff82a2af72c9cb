"""The `edidub dub / jobs / serve / doctor / bench` commands, against real servers."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from bridge_fixtures import make_frames, make_wav, spec_for

from bridge.cli import main
from bridge.cli.dub import find_frames, parse_fps


@pytest.mark.parametrize(("text", "fps"), [
    ("24000/1001", Fraction(24000, 1001)), ("23.976", Fraction(24000, 1001)),
    ("29.97", Fraction(30000, 1001)), ("59.94", Fraction(60000, 1001)), ("25", Fraction(25)),
    ("24", Fraction(24)), ("30/1", Fraction(30)), ("12.5", Fraction(25, 2)),
])
def test_fps_parses_to_exact_rationals(text, fps):
    assert parse_fps(text) == fps


@pytest.mark.parametrize("text", ["0", "-24", "abc", "24/0"])
def test_bad_fps_is_refused(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_fps(text)


def test_frames_found_by_pattern_range_or_folder(tmp_path):
    frames = make_frames(tmp_path / "shot", 998, 1002)
    pattern = str(tmp_path / "shot" / "shot.%04d.exr")
    assert find_frames(pattern, (999, 1001)) == {f: frames[f] for f in (999, 1000, 1001)}
    assert find_frames(pattern, None) == frames
    assert find_frames(str(tmp_path / "shot"), None) == frames
    with pytest.raises(ValueError, match="missing frames 1003"):
        find_frames(pattern, (1001, 1003))
    frames[1000].unlink()
    with pytest.raises(ValueError, match="gaps"):
        find_frames(str(tmp_path / "shot"), None)


def test_dub_command_writes_frames_named_like_the_input(start_server, tmp_path, capsys):
    _, address = start_server()
    make_frames(tmp_path / "shot", 1, 3, ext="dpx", pixel_type="uint16",
                channels=("R", "G", "B", "A"))
    wav = make_wav(tmp_path / "line.wav", rate=44100)
    out = tmp_path / "out"
    code = main(["dub", "--server", address, "--frames", str(tmp_path / "shot"), "--fps", "25",
                 "--audio", str(wav), "--face-point", "20,18@2", "--steps", "3",
                 "--holdout", "A", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [f"shot.{f:04d}.dpx" for f in (1, 2, 3)]
    captured = capsys.readouterr()
    assert "3 frames written" in captured.out
    assert "dub" in captured.err  # the progress bar goes to stderr
    assert main(["jobs", "--server", address, "--json", "list"]) == 0
    jobs = json.loads(capsys.readouterr().out)
    assert jobs[0]["spec"]["fps"] == "25/1" and jobs[0]["spec"]["steps"] == 3
    assert jobs[0]["spec"]["face"]["point"] == [20.0, 18.0] and jobs[0]["state"] == "done"
    assert jobs[0]["spec"]["holdout"] == "A"
    job_id = jobs[0]["job_id"]
    assert main(["jobs", "--server", address, "show", job_id]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["jobs", "--server", address, "delete", job_id]) == 0
    assert main(["jobs", "--server", address, "show", job_id]) == 1
    assert "no job" in capsys.readouterr().err


def test_dub_command_fails_clearly(start_server, tmp_path, capsys):
    wav = make_wav(tmp_path / "line.wav")
    make_frames(tmp_path / "shot", 1, 2)
    args = ["--frames", str(tmp_path / "shot"), "--fps", "24", "--audio", str(wav),
            "--out", str(tmp_path / "out"), "--quiet"]
    assert main(["dub", "--server", "127.0.0.1:9", *args]) == 1
    assert "127.0.0.1:9 is not reachable" in capsys.readouterr().err
    assert main(["dub", "--server", "127.0.0.1:9", *args[:4], "--range", "1-5", *args[4:]]) == 2
    assert "missing frames 3, 4, 5" in capsys.readouterr().err
    _, address = start_server(token="abc")
    assert main(["dub", "--server", address, *args]) == 1
    assert "token" in capsys.readouterr().err
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    assert main(["dub", "--server", address, "--token-file", str(token_file), *args]) == 0


def test_jobs_cancel_command(start_server, tmp_path, capsys):
    server, address = start_server()
    job_id = server.store.create(spec_for(1, 2))
    assert main(["jobs", "--server", address, "cancel", job_id]) == 0
    assert "cancelled" in capsys.readouterr().out


def test_serve_with_a_missing_model_dir_exits_with_a_clear_message(tmp_path, capsys):
    code = main(["serve", "--spool", str(tmp_path / "spool"), "--listen", "127.0.0.1:0",
                 "--model-dir", str(tmp_path / "no-model")])
    assert code == 2
    assert "no-model" in capsys.readouterr().err


@pytest.mark.timeout(120)  # were the preset not checked at start-up, serve would listen on
def test_serve_with_a_bad_preset_in_model_json_stops_before_listening(tmp_path, capsys):
    # a farm node learns of a broken model.json when it starts, not on the first job
    import json
    import shutil

    pytest.importorskip("torch")
    from engine.pipeline import DEFAULT_MODEL_DIR

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    meta = json.loads((model / "model.json").read_text())
    meta["presets"]["final"]["renoise"] = "most"
    (model / "model.json").write_text(json.dumps(meta))
    code = main(["serve", "--spool", str(tmp_path / "spool"), "--listen", "127.0.0.1:0",
                 "--model-dir", str(model)])
    err = capsys.readouterr().err
    assert code == 2 and "listening" not in err
    assert "model.json: preset 'final' has renoise 'most'; it must be in [0, 1]" in err


@pytest.mark.timeout(180)
def test_serve_keeps_the_shot_fine_tunes_in_the_spool_unless_told_otherwise(tmp_path):
    # `edidub serve` gives the engine an adaptation cache (a shot dubbed again skips its
    # fine-tune): SPOOL/adapt-cache by default, --adapt-cache DIR, none with --no-adapt-cache.
    # The engine's info, as a client reads it, says which.
    import subprocess
    import sys
    import time

    pytest.importorskip("torch")
    from bridge.client import BridgeClient

    def cache_of(name: str, *flags: str):
        port = tmp_path / f"{name}.port"
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--listen", "127.0.0.1:0", "--spool",
             str(tmp_path / name), "--port-file", str(port), *flags],
            stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 150
            while not port.exists():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.1)
            client = BridgeClient(f"127.0.0.1:{port.read_text().strip()}")
            return client.server_info()["engine"]["adapt_cache"]
        finally:
            proc.terminate()
            proc.wait(30)

    assert cache_of("default") == str(tmp_path / "default" / "adapt-cache")
    assert cache_of("own", "--adapt-cache", str(tmp_path / "mine")) == str(tmp_path / "mine")
    assert cache_of("none", "--no-adapt-cache") is None


def test_serve_with_a_bad_engine_plugin_exits_with_a_clear_message(tmp_path, capsys):
    code = main(["serve", "--spool", str(tmp_path / "spool"), "--listen", "127.0.0.1:0",
                 "--engine", "no_such_module_xyz:factory"])
    assert code == 2
    assert "cannot import no_such_module_xyz" in capsys.readouterr().err


def test_doctor_prints_a_table_with_the_bridge_checks(capsys):
    main(["doctor"])
    out = capsys.readouterr().out
    for check in ("grpc", "OpenImageIO", "dlib models", "OpenColorIO config",
                  "pocketsphinx model", "espeak-ng"):
        assert check in out
    assert "ok    grpc " in out


def test_bench_engine_loads_the_engine_benchmark_only_when_used():
    import subprocess
    import sys

    probe = ("import sys; from bridge.cli import build_parser; build_parser(); "
             "print('engine.bench' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["False"]
    from bridge.cli import build_parser
    from bridge.cli.bench import run_engine

    args = build_parser().parse_args(["bench", "engine", "--quick", "--steps", "3"])
    assert args.func is run_engine and args.steps == 3 and args.quick
