"""Untrusted images and masks in training: bad images are skipped and listed, a dataset without a
usable image stops before training, an unreadable mask file is named (also from a worker)."""
import json
from pathlib import Path

import pytest
from conftest import colourful
from faults import cache, cli, corrupt_files, error_line, one_thread, tiny  # noqa: F401  (one_thread, cache: fixtures)
from gan_colorize.core.errors import UserError
from gan_colorize.core.parser import one_line
from PIL import Image


def test_bad_images_are_skipped_and_listed(tmp_path, cache, capsys, recwarn):
    root = tmp_path / "photos"
    bad = corrupt_files(root)
    for i in range(3):
        Image.fromarray(colourful(40, 48, i)).save(root / f"good{i}.png")
    code, _, err = cli(tiny(tmp_path, cache, "--data.name", "folder", "--data.root", str(root),
                            "--train.steps", "1"), capsys)
    assert code == 0, err
    skipped = [str(w.message) for w in recwarn if "could not be read" in str(w.message)]
    assert skipped and f"skipped 4 of 7 image files that could not be read: {', '.join(bad)}" in skipped[0]
    index = next(cache.glob("folder-train-32-*/index.json"))
    reasons = {Path(s["path"]).name: s["reason"] for s in json.loads(index.read_text())["skipped"]}
    assert sorted(reasons) == bad
    assert "decompression bomb" in reasons["bomb.png"] and "empty" in reasons["zero.jpg"]
    assert "not an image" in reasons["text.png"]


def test_dataset_without_a_usable_image_stops_before_training(tmp_path, cache, capsys):
    root = tmp_path / "photos"
    bad = corrupt_files(root)
    code, _, err = cli(tiny(tmp_path, cache, "--data.name", "folder", "--data.root", str(root)),
                       capsys)
    assert code == 2
    line = error_line(err)
    assert line.startswith("error: folder/train: no usable image among 4 files (4 unreadable")
    assert all(name in line for name in bad)
    run = tmp_path / "runs" / "r"
    assert not (run / "checkpoints" / "latest.pt").exists() and not (run / "metrics.jsonl").exists()


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_mask_file_names_the_file(tmp_path, cache, capsys, workers):
    """Also from a DataLoader worker, whose exceptions come back wrapped in a traceback."""
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    code, _, err = cli(tiny(tmp_path, cache, "--masks.train", f"file={bad}", "--train.steps", "2",
                            "--data.workers", str(workers)), capsys)
    assert code == 2
    assert error_line(err).startswith(f"error: cannot read mask file {bad}: ")


def test_worker_error_message_is_one_line():
    wrapped = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback "
                        "(most recent call last):\n  File \"x.py\", line 1, in f\n"
                        "gan_colorize.errors.UserError: cannot read mask file m.png: broken")
    assert one_line(wrapped) == "cannot read mask file m.png: broken"
    assert one_line(UserError("plain: message")) == "plain: message"
