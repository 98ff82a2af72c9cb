"""Weights-free sync measures: the speech envelope at frame times, openings with missing faces."""

import numpy as np
import pytest

from engine.eval.sync import mouth_openings, speech_envelope, sync_with_truth


def test_speech_envelope_is_rms_over_one_frame_period_at_each_frame_time():
    rate, fps = 1000, 10.0
    x = np.zeros(1000)
    x[300:400] = 2.0  # loud from 0.3 s to 0.4 s
    env = speech_envelope(x, rate, fps, frames=10)
    # frame 3 sits at 0.3 s: its window [250, 350) is half loud -> RMS sqrt(0.5 * 4)
    assert env[3] == pytest.approx(np.sqrt(2.0))
    assert env[0] == 0.0 and env[6] == 0.0
    # an offset of 0.1 s moves the line one frame earlier on the video timeline
    shifted = speech_envelope(x, rate, fps, frames=10, offset=0.1)
    assert shifted[2] == pytest.approx(env[3])


def test_mouth_openings_fill_frames_without_a_face_from_neighbours():
    from engine.face.landmarks import mouth_opening

    pts = np.zeros((68, 2))
    pts[36:42] = (0.0, 0.0)
    pts[42:48] = (10.0, 0.0)  # inter-ocular 10
    a, b = pts.copy(), pts.copy()
    b[[66, 67, 65], 1] = 2.0  # lower inner lip 2 px below the upper: opening 0.2
    vals = mouth_openings([a, None, b])
    assert vals[0] == pytest.approx(mouth_opening(a)) == pytest.approx(0.0)
    assert vals[2] == pytest.approx(0.2)
    assert vals[1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no face"):
        mouth_openings([None, None])


def test_sync_with_truth_finds_the_delay_of_a_late_mouth():
    t = np.arange(50)
    truth = np.maximum(0, np.sin(t / 3.0))
    late = np.concatenate([np.zeros(2), truth[:-2]])
    r = sync_with_truth(late, truth)
    assert r["best_lag"] == 2
    assert r["best_corr"] > 0.99 > r["corr"]


def test_phoneme_span_covers_the_spoken_frames_only():
    from engine.eval.sync import envelope_span, phoneme_span

    # spoken from 0.2 s to 0.6 s (the "_" at 0.6 ends the last phoneme), 10 fps, 10 frames
    phonemes = [(0.0, "_"), (0.2, "h"), (0.35, "a"), (0.6, "_")]
    assert phoneme_span(phonemes, 10.0, 10) == (2, 6)
    assert phoneme_span([(0.0, "_")], 10.0, 10) == (0, 0)
    assert envelope_span(np.array([0, 0.01, 0.5, 1.0, 0.2, 0.05, 0])) == (2, 5)


def test_unrelated_lines_sharing_silences_correlate_only_outside_the_spoken_span():
    rng = np.random.default_rng(3)
    a, b = np.zeros(40), np.zeros(40)
    a[5:30] = np.abs(rng.standard_normal(25)) + 0.2  # two different lines, same silences
    b[5:30] = np.abs(rng.standard_normal(25)) + 0.2
    r = sync_with_truth(a, b, span=(5, 30))
    assert r["corr_all"] > 0.3  # silence against silence inflates the whole-clip value
    assert abs(r["corr"]) < 0.4
    assert r["silence_opening"] == 0.0
