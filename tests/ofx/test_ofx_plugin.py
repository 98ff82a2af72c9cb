"""The OFX plugin, loaded as a real binary by a Python OFX host, against a real relay and bridge.

DESIGN §5: render never blocks on a job and passes the source through until a dub fills the
cache; "Dub range" fetches the range with temporal clip access, streams it under the host's
progress monitor (a "no" cancels the job on the server) and a missing relay is a clear message.
"""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from ofx_host import OK, OfxHost

sys.path.insert(0, str(Path(__file__).parents[1] / "bridge"))
from bridge_testengine import RECT  # noqa: E402

from bridge.client import BridgeClient  # noqa: E402

FILTER = "OfxImageEffectContextFilter"
FIRST, LAST = 10, 13
HEIGHT, WIDTH = 24, 32


def source_frames() -> dict[int, np.ndarray]:
    """Distinct float RGBA frames in OFX layout (rows bottom-up); values need all 32 bits."""
    rng = np.random.default_rng(7)
    return {f: rng.uniform(-0.5, 2.0, (HEIGHT, WIDTH, 4)).astype(np.float32)
            for f in range(FIRST - 2, LAST + 3)}


def rect_changed(pixels: np.ndarray) -> np.ndarray:
    """What the rect engine returns: RGB = 0.5 in RECT, counted in top-down EXR rows."""
    top_down = pixels[::-1].copy()
    y0, x0, y1, x1 = RECT
    top_down[y0:y1, x0:x1, :3] = 0.5
    return top_down[::-1]


def wav(path: Path) -> Path:
    t = np.arange(9600) / 48000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes((np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes())
    return path


@pytest.fixture
def host(ofx_build, host_shim, tmp_path, monkeypatch):
    monkeypatch.setenv("EDIDUB_OFX_CACHE", str(tmp_path / "cache"))
    h = OfxHost(ofx_build, host_shim)
    assert h.load() == OK
    assert h.describe() == OK
    assert h.describe_in_context(FILTER) == OK
    yield h
    assert h.unload() == OK
    assert not h.memory, "host memory the plugin never freed"


@pytest.fixture
def instance(host, tmp_path):
    inst = host.create_instance(FILTER, source_frames(), fps=24000 / 1001,
                                source_path="/media/shot_A001.mov")
    inst.set_param("audioPath", str(wav(tmp_path / "line.wav")))
    inst.set_param("rangeFirst", FIRST)
    inst.set_param("rangeLast", LAST)
    yield inst
    inst.destroy()


def cache_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_only_the_two_ofx_entry_points_are_exported(ofx_build):
    listing = subprocess.run(["nm", "-D", "--defined-only", str(ofx_build)],
                             capture_output=True, text=True, check=True).stdout
    exported = sorted(line.split()[-1] for line in listing.splitlines() if line.strip())
    assert exported == ["OfxGetNumberOfPlugins", "OfxGetPlugin"]
    needed = subprocess.run(["readelf", "-d", str(ofx_build)], capture_output=True, text=True,
                            check=True).stdout
    assert "libstdc++" not in needed, "libstdc++ should be linked statically"
    assert ofx_build.parent.name == "Linux-x86-64"
    assert ofx_build.parents[2].name == "EdiDub.ofx.bundle"


def test_describe_declares_contexts_temporal_access_and_parameters(host):
    d = host.descriptor
    assert host.plugin.pluginApi == b"OfxImageEffectPluginAPI" and host.plugin.apiVersion == 1
    assert set(d["OfxImageEffectPropSupportedContexts"]) == {
        "OfxImageEffectContextFilter", "OfxImageEffectContextGeneral"}
    assert d["OfxImageEffectPropTemporalClipAccess"] == [1]
    assert d["OfxImageEffectPropSupportsTiles"] == [0]
    assert host.context_clips["Source"]["OfxImageEffectPropTemporalClipAccess"] == [1]
    kinds = {name: p.kind for name, p in host.context_params.items()}
    assert kinds["dubRange"] == "OfxParamTypePushButton"
    assert kinds["audioPath"] == kinds["bridgeAddress"] == kinds["preset"] == "OfxParamTypeString"
    assert kinds["faceIndex"] == kinds["rangeFirst"] == kinds["rangeLast"] == (
        "OfxParamTypeInteger")
    fetched = {name for name, _ in host.fetched}
    assert {"OfxPropertySuite", "OfxImageEffectSuite", "OfxParameterSuite", "OfxMemorySuite",
            "OfxMessageSuite", "OfxProgressSuite"} <= fetched


@pytest.mark.parametrize("row_pad,top_down", [(0, False), (40, False), (8, True)])
def test_render_before_any_dub_passes_the_source_through_bit_exactly(instance, host, row_pad,
                                                                     top_down):
    for frame in (FIRST, LAST):
        out = instance.render(frame, row_pad=row_pad, top_down=top_down)
        assert out.tobytes() == instance.frames[frame].tobytes()
    assert host.violations == []


def test_dub_range_fills_the_cache_and_render_returns_the_dubbed_frames(
        instance, host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    instance.set_param("bridgeAddress", address)
    instance.set_param("relaySocket", str(relay_socket))
    instance.set_param("preset", "fast")
    instance.set_param("faceIndex", 2)
    generation = instance.param("dubGeneration").value

    assert instance.press("dubRange") == OK
    assert [m for m in host.messages if m[0] == "OfxMessageError"] == []
    assert host.violations == []
    assert host.progress.starts and host.progress.ends == 1
    assert host.progress.updates == sorted(host.progress.updates)
    assert host.progress.updates[-1] == 1.0
    assert sorted(engine.computed) == list(range(FIRST, LAST + 1))
    assert len(cache_files(tmp_path)) == LAST - FIRST + 1
    assert instance.param("dubGeneration").value == generation + 1
    with BridgeClient(address) as client:
        (job,) = client.list_jobs()
    assert job["state"] == "done" and job["has_audio"]
    assert job["spec"]["fps"] == "24000/1001"  # the clip's 23.976... frame rate, exactly
    assert (job["spec"]["first_frame"], job["spec"]["last_frame"]) == (FIRST, LAST)
    assert job["spec"]["preset"] == "fast" and job["spec"]["face"]["index"] == 2
    assert job["spec"]["colorspace"] == "Gamma 2.4 Encoded Rec.709"

    for frame in range(FIRST, LAST + 1):
        out = instance.render(frame, row_pad=16, top_down=frame % 2 == 0)
        expected = rect_changed(instance.frames[frame])
        assert out.tobytes() == expected.tobytes(), f"frame {frame}"
        assert not np.array_equal(out, instance.frames[frame])
    # The cache is shared: another instance on the same source and parameters (Resolve keeps
    # several per clip) renders the dubbed frame too.
    other = host.create_instance(FILTER, instance.frames, fps=24000 / 1001,
                                 source_path="/media/shot_A001.mov")
    for name in ("audioPath", "rangeFirst", "rangeLast", "preset", "faceIndex"):
        other.set_param(name, instance.param(name).value)
    assert other.render(LAST).tobytes() == rect_changed(instance.frames[LAST]).tobytes()
    other.destroy()
    # Outside the range, and for other parameters, render still passes the source through.
    assert instance.render(FIRST - 1).tobytes() == instance.frames[FIRST - 1].tobytes()
    instance.set_param("faceIndex", 1)
    assert instance.render(FIRST).tobytes() == instance.frames[FIRST].tobytes()
    instance.set_param("faceIndex", 2)
    # A changed source (an upstream grade) never gets a stale dub.
    instance.frames[FIRST] = instance.frames[FIRST] * 0.5
    assert instance.render(FIRST).tobytes() == instance.frames[FIRST].tobytes()
    assert host.violations == []


def test_progress_cancel_cancels_the_job_on_the_server_and_leaves_the_cache_empty(
        instance, host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    engine.delay = 0.25
    instance.set_param("bridgeAddress", address)
    instance.set_param("relaySocket", str(relay_socket))
    # Progress 0.3..0.9 follows the job; past 0.45 the engine has dubbed at least one frame.
    host.progress.cancel_when = lambda fraction: fraction > 0.45

    assert instance.press("dubRange") == OK
    assert host.progress.ends == 1
    assert any("cancelled" in text for _, _, text in host.messages), host.messages
    assert host.timeline[-2:] == ["progressEnd", "message:OfxMessageMessage"], host.timeline
    with BridgeClient(address) as client:
        jobs = client.list_jobs()
    assert len(jobs) == 1 and jobs[0]["state"] == "cancelled", jobs
    assert 1 <= len(engine.computed) < LAST - FIRST + 1, "cancelled while running"
    assert cache_files(tmp_path) == []
    assert instance.render(FIRST).tobytes() == instance.frames[FIRST].tobytes()
    assert host.violations == []


def test_relay_down_is_a_clear_message_and_render_still_passes_through(instance, host,
                                                                        tmp_path):
    gone = tmp_path / "no-relay.sock"
    instance.set_param("relaySocket", str(gone))
    instance.set_param("bridgeAddress", "127.0.0.1:9")

    assert instance.press("dubRange") == OK
    errors = [text for kind, _, text in host.messages if kind == "OfxMessageError"]
    assert len(errors) == 1
    assert "relay is not running" in errors[0] and str(gone) in errors[0]
    assert "edidub ofx relay" in errors[0]
    assert host.progress.starts == [], "no progress monitor when nothing can run"
    assert cache_files(tmp_path) == []
    assert instance.render(FIRST).tobytes() == instance.frames[FIRST].tobytes()
    assert host.violations == []


def test_bad_parameters_are_named_and_change_nothing(instance, host, tmp_path):
    instance.set_param("rangeLast", FIRST - 1)
    instance.press("dubRange")
    instance.set_param("rangeLast", LAST)
    instance.set_param("audioPath", str(tmp_path / "missing.wav"))
    instance.press("dubRange")
    errors = [text for kind, _, text in host.messages if kind == "OfxMessageError"]
    assert "ends" in errors[0] and "before it starts" in errors[0]
    assert "audio file not found" in errors[1] and "missing.wav" in errors[1]
    assert cache_files(tmp_path) == [] and host.progress.starts == []


def test_frames_needed_for_render_is_the_current_frame_only(instance, host):
    out = host.new_props()
    args = host.new_props(OfxPropTime=[12.0], OfxImageEffectPropRenderScale=[1.0, 1.0])
    assert host.call("OfxImageEffectActionGetFramesNeeded", instance, args, out) == OK
    assert host.objects[out]["OfxImageClipPropFrameRange_Source"] == [12.0, 12.0]


def test_frames_the_engine_passes_through_come_back_unchanged_with_a_warning(
        instance, host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    engine.passthrough_every = 2  # even frames: "no face"
    instance.set_param("bridgeAddress", address)
    instance.set_param("relaySocket", str(relay_socket))

    assert instance.press("dubRange") == OK
    warnings = [text for kind, _, text in host.messages if kind == "OfxMessageWarning"]
    assert len(warnings) == 1 and "no face" in warnings[0], host.messages
    assert host.timeline[-2:] == ["progressEnd", "message:OfxMessageWarning"]
    for frame in range(FIRST, LAST + 1):
        expected = instance.frames[frame] if frame % 2 == 0 else rect_changed(
            instance.frames[frame])
        assert instance.render(frame).tobytes() == expected.tobytes(), f"frame {frame}"
    assert len(cache_files(tmp_path)) == LAST - FIRST + 1


def test_dubbed_frames_stay_in_process_memory_until_the_host_purges_caches(
        instance, host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    instance.set_param("bridgeAddress", address)
    instance.set_param("relaySocket", str(relay_socket))
    assert instance.press("dubRange") == OK
    dubbed = rect_changed(instance.frames[FIRST]).tobytes()
    assert instance.render(FIRST).tobytes() == dubbed
    for path in cache_files(tmp_path):
        path.unlink()  # from here on only the process-global memory copy can answer
    assert instance.render(FIRST).tobytes() == dubbed
    assert host.call("OfxActionPurgeCaches", instance, None) == OK
    assert instance.render(FIRST).tobytes() == instance.frames[FIRST].tobytes()
    assert host.violations == []


def test_instances_come_and_go_on_other_threads_while_a_dub_runs(
        instance, host, rect_server, relay_socket):
    """Resolve creates and destroys instances on edits; a running dub must not block that."""
    import threading

    engine, address = rect_server
    engine.delay = 0.1
    instance.set_param("bridgeAddress", address)
    instance.set_param("relaySocket", str(relay_socket))
    finished = []

    def churn() -> None:
        other = host.create_instance(FILTER, instance.frames)
        other.destroy()
        finished.append(True)

    def during_job(fraction: float) -> bool:
        if fraction > 0.3 and not finished:
            worker = threading.Thread(target=churn)
            worker.start()
            worker.join(timeout=5)
            assert finished, "CreateInstance/DestroyInstance blocked behind the dub"
        return False

    host.progress.cancel_when = during_job
    assert instance.press("dubRange") == OK
    assert finished and host.violations == []
    assert [m for m in host.messages if m[0] == "OfxMessageError"] == []
    assert instance.render(FIRST).tobytes() == rect_changed(instance.frames[FIRST]).tobytes()


def test_general_context_defines_the_same_clips_and_passes_through(ofx_build, host_shim,
                                                                   tmp_path, monkeypatch):
    monkeypatch.setenv("EDIDUB_OFX_CACHE", str(tmp_path / "cache"))
    general = "OfxImageEffectContextGeneral"
    h = OfxHost(ofx_build, host_shim)
    assert (h.load(), h.describe(), h.describe_in_context(general)) == (OK, OK, OK)
    assert set(h.context_clips) == {"Source", "Output"}
    inst = h.create_instance(general, source_frames())
    assert inst.render(FIRST + 1, row_pad=12).tobytes() == inst.frames[FIRST + 1].tobytes()
    inst.destroy()
    assert h.unload() == OK and h.violations == []
