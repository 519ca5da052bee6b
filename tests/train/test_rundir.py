"""The run folder's log: the validation line says when it scores the training photos (issue 21:
the quickstart's `samples` dataset has no held-out photo, so its "+9 dB" is not generalisation)."""
import os

import numpy as np
from PIL import Image

from conftest import tiny_config
from gan_colorize.train import loop as train_loop
from gan_colorize.core.parser import load_config
from gan_colorize.data.mixture import not_held_out
from gan_colorize.train.rundir import NOT_HELD_OUT, mark_not_held_out

LINE = ("val score +9.26 dB (best); samples psnr_in@0 28.16 (gray 18.90) leak 0.44; "
        "flowers17 psnr_in@0 20.00 (gray 19.00) leak 0.10")


def test_the_line_marks_only_the_parts_that_are_not_held_out():
    assert mark_not_held_out(LINE, []) == LINE
    assert mark_not_held_out(LINE, ["samples"]) == LINE.replace(
        "leak 0.44;", f"leak 0.44 ({NOT_HELD_OUT});")
    assert mark_not_held_out("val score +1.00 dB", ["samples"]) == \
        f"val score +1.00 dB; samples: {NOT_HELD_OUT}"          # another shape: said at the end


def _folder(root, n):
    root.mkdir()
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 8 * i, np.uint8)).save(root / f"{i}.png")
    return root


def test_not_held_out_is_samples_and_small_folders(tmp_path):
    def parts(*argv):
        return not_held_out(load_config(["--config", "quickstart", *map(str, argv)]).data)

    assert parts() == ["samples"]                                # the quickstart's dataset
    small, big = _folder(tmp_path / "small", 3), _folder(tmp_path / "big", 30)
    assert parts("--data.name", "folder", "--data.root", small) == ["folder"]
    assert parts("--data.name", "folder", "--data.root", big) == []   # split by path hash
    assert parts("--data.mix", f"folder={big}:1,samples:1") == ["samples"]


def test_the_quickstart_validation_line_says_it_scores_the_training_photos(tmp_path_factory,
                                                                        tmp_path, capsys):
    train_loop.train(tiny_config("--train.out_dir", tmp_path, "--train.name", "q",
                              "--train.steps", "2", "--train.eval_every", "2",
                              "--train.eval_samples", "2",
                              cache_dir=tmp_path_factory.getbasetemp() / "cache"))
    lines = [ln for ln in capsys.readouterr().err.replace("\r", "\n").splitlines()
             if ln.startswith("step 2: val score")]
    assert len(lines) == 1, lines
    assert " samples psnr_in@0 " in lines[0] and lines[0].endswith(f"({NOT_HELD_OUT})"), lines[0]
    assert os.path.isfile(tmp_path / "q" / "metrics.jsonl")
