"""`edidub eval` on bad input: a clear message naming the problem, exit status 2."""

import numpy as np

from bridge.cli import main
from engine.frames import write_image


def test_eval_names_a_missing_folder(tmp_path, capsys):
    rc = main(
        ["eval", "--source", str(tmp_path / "nope"), "--dub", str(tmp_path), "--audio", "x.wav"]
    )
    assert rc == 2
    assert "frame folder not found" in capsys.readouterr().err


def test_eval_needs_audio_or_truth(tmp_path, capsys):
    rc = main(["eval", "--source", str(tmp_path), "--dub", str(tmp_path)])
    assert rc == 2
    assert "--audio" in capsys.readouterr().err


def test_eval_refuses_folders_sharing_no_frames(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_image(tmp_path / "a" / "shot.0001.png", np.zeros((4, 4, 3), np.uint8), pixel_type="uint8")
    write_image(tmp_path / "b" / "shot.0002.png", np.zeros((4, 4, 3), np.uint8), pixel_type="uint8")
    rc = main(
        ["eval", "--source", str(tmp_path / "a"), "--dub", str(tmp_path / "b"), "--audio", "x.wav"]
    )
    assert rc == 2
    assert "share no frame numbers" in capsys.readouterr().err


def test_eval_set_names_a_folder_that_was_not_rendered(tmp_path, capsys):
    rc = main(["eval", "--set", str(tmp_path)])
    assert rc == 2
    assert "no index.json" in capsys.readouterr().err
