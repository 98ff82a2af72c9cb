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
    # The filter context has one input (OFX): no Holdout clip, no toggle (general context only).
    assert set(host.context_clips) == {"Source", "Output"}
    assert "useHoldout" not in host.context_params
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


GENERAL = "OfxImageEffectContextGeneral"


@pytest.fixture
def general_host(ofx_build, host_shim, tmp_path, monkeypatch):
    monkeypatch.setenv("EDIDUB_OFX_CACHE", str(tmp_path / "cache"))
    h = OfxHost(ofx_build, host_shim)
    assert (h.load(), h.describe(), h.describe_in_context(GENERAL)) == (OK, OK, OK)
    yield h
    assert h.unload() == OK
    assert not h.memory, "host memory the plugin never freed"


def holdout_mattes() -> dict[int, np.ndarray]:
    """Alpha mattes in OFX layout: 1 over the left part of the rect, 0.25 over one column of it,
    0 elsewhere; one frame's matte comes as RGBA (the alpha counts, RGB is junk)."""
    mattes = {}
    y0, x0, y1, x1 = RECT
    for f in range(FIRST, LAST + 1):
        top_down = np.zeros((HEIGHT, WIDTH, 1), np.float32)
        top_down[y0:y1, x0:x0 + 2 + f % 2] = 1.0
        top_down[y0:y1, x1 - 1] = 0.25
        mattes[f] = top_down[::-1].copy()
    rgba = np.full((HEIGHT, WIDTH, 4), 7.0, np.float32)
    rgba[..., 3] = mattes[LAST][..., 0]
    mattes[LAST] = rgba
    return mattes


def held_back(source: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The rect engine's dub with the matte held back: mark·(1−k) + source·k inside the rect."""
    keep = matte[..., -1:]
    dubbed = rect_changed(source)
    out = dubbed.copy()
    out[..., :3] = dubbed[..., :3] * (1 - keep) + source[..., :3] * keep
    rect = rect_changed(np.zeros_like(source))[..., 0] == 0.5
    out[~rect] = source[~rect]
    return out


def holdout_instance(host, address, relay_socket, tmp_path, mattes):
    """A general-context instance set to dub FIRST..LAST with "Use holdout matte" on; `mattes`
    feed its Holdout input (None: nothing connected)."""
    inst = host.create_instance(GENERAL, source_frames(),
                                inputs={"Holdout": mattes} if mattes is not None else None)
    inst.set_param("audioPath", str(wav(tmp_path / "line.wav")))
    inst.set_param("rangeFirst", FIRST)
    inst.set_param("rangeLast", LAST)
    inst.set_param("bridgeAddress", address)
    inst.set_param("relaySocket", str(relay_socket))
    inst.set_param("useHoldout", 1)
    return inst


def test_general_context_adds_an_optional_holdout_mask_gated_by_a_toggle(general_host):
    clip = general_host.context_clips["Holdout"]
    assert clip["OfxImageClipPropOptional"] == [1] and clip["OfxImageClipPropIsMask"] == [1]
    assert set(clip["OfxImageEffectPropSupportedComponents"]) == {
        "OfxImageComponentAlpha", "OfxImageComponentRGBA"}
    assert clip["OfxImageEffectPropTemporalClipAccess"] == [1]
    toggle = general_host.context_params["useHoldout"]
    assert toggle.kind == "OfxParamTypeBoolean" and toggle.props["OfxParamPropDefault"] == [0]
    inst = general_host.create_instance(GENERAL, source_frames(), inputs={
        "Holdout": holdout_mattes()})
    assert inst.render(FIRST + 1, row_pad=12).tobytes() == inst.frames[FIRST + 1].tobytes()
    out = general_host.new_props()
    args = general_host.new_props(OfxPropTime=[12.0], OfxImageEffectPropRenderScale=[1.0, 1.0])
    assert general_host.call("OfxImageEffectActionGetFramesNeeded", inst, args, out) == OK
    assert general_host.objects[out]["OfxImageClipPropFrameRange_Holdout"] == [12.0, 12.0]
    inst.destroy()
    assert general_host.violations == []


def test_a_holdout_matte_keeps_the_source_where_it_is_one_through_relay_and_bridge(
        general_host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    mattes = holdout_mattes()
    inst = holdout_instance(general_host, address, relay_socket, tmp_path, mattes)

    assert inst.press("dubRange") == OK
    assert general_host.messages == [], general_host.messages
    with BridgeClient(address) as client:
        (job,) = client.list_jobs()
    assert job["state"] == "done" and job["spec"]["holdout"] == "holdout"
    for frame in range(FIRST, LAST + 1):
        out = inst.render(frame)
        source, keep = inst.frames[frame], mattes[frame][..., -1]
        assert out.tobytes() == held_back(source, mattes[frame]).tobytes(), f"frame {frame}"
        assert out[keep == 1].tobytes() == source[keep == 1].tobytes(), "held pixels: bit-exact"
        assert not np.array_equal(out, source), "the unheld part of the rect is dubbed"
    # A re-drawn matte is a changed frame: render passes the source through, never a stale dub.
    inst.inputs["Holdout"][FIRST] = np.zeros_like(mattes[FIRST])
    assert inst.render(FIRST).tobytes() == inst.frames[FIRST].tobytes()
    # With the toggle off the Holdout input is ignored: a different cache entry (none yet).
    inst.set_param("useHoldout", 0)
    assert inst.render(FIRST + 1).tobytes() == inst.frames[FIRST + 1].tobytes()
    inst.destroy()
    assert general_host.violations == []


def test_an_empty_holdout_is_warned_and_a_nan_matte_is_refused_by_frame(
        general_host, rect_server, relay_socket, tmp_path):
    engine, address = rect_server
    inst = holdout_instance(general_host, address, relay_socket, tmp_path, None)  # no matte

    assert inst.press("dubRange") == OK
    warnings = [text for kind, _, text in general_host.messages if kind == "OfxMessageWarning"]
    assert len(warnings) == 1 and "Holdout input was empty" in warnings[0], general_host.messages
    assert inst.render(FIRST).tobytes() == rect_changed(inst.frames[FIRST]).tobytes()

    general_host.messages.clear()
    mattes = holdout_mattes()
    mattes[FIRST + 2][3, 4] = np.nan
    inst.inputs["Holdout"] = mattes
    inst.set_param("faceIndex", 1)  # a new job, so nothing cached can answer
    assert inst.press("dubRange") == OK
    errors = [text for kind, _, text in general_host.messages if kind == "OfxMessageError"]
    assert len(errors) == 1 and f"frame {FIRST + 2}" in errors[0] and "NaN" in errors[0]
    assert inst.render(FIRST).tobytes() == inst.frames[FIRST].tobytes(), "nothing cached"
    with BridgeClient(address) as client:
        states = sorted(j["state"] for j in client.list_jobs())
    assert states in (["done"], ["cancelled", "done"]), states
    inst.destroy()
    assert general_host.violations == []
