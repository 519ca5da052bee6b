"""The demo's handlers (gan_colorize/demo.py), called directly: no Gradio, no server. Fast, and
run with or without the demo extra; test_demo_server.py serves the page and drives it."""
import logging
import subprocess
import sys

import numpy as np
import pytest
from conftest import colourful, hand_made_checkpoint
from faults import bomb_png
from PIL import Image

from gan_colorize.apps import colorize_cli
from gan_colorize.apps import inputs
from gan_colorize.apps import demo as demo_mod
from gan_colorize.core.config import DemoConfig
from gan_colorize.apps.demo import Demo, editing_shape, gray_view, layer_hints, layer_mask
from gan_colorize.data.masks import MaskSampler, mask_rng


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    return {"plain": hand_made_checkpoint(tmp / "plain.pt", "--model.width", "0.25"),
            "hints": hand_made_checkpoint(tmp / "hints.pt", "--model.width", "0.25",
                                          "--hints.enabled", "true")}


def make_demo(checkpoint, **settings):
    demo = Demo.from_settings(DemoConfig(checkpoint=str(checkpoint), device="cpu", **settings))
    assert demo.colorizer is not None, demo.load_error
    return demo


@pytest.fixture()
def plain(checkpoints):
    demo = make_demo(checkpoints["plain"])
    yield demo
    demo.close()


@pytest.fixture()
def hinted(checkpoints):
    demo = make_demo(checkpoints["hints"])
    yield demo
    demo.close()


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(colourful(60, 80)).save(path)
    return path


def painted(h, w, rows, cols, colour=(200, 30, 30)):
    """An editor layer (h,w,4): a painted rectangle (alpha 255) on a clear layer."""
    layer = np.zeros((h, w, 4), np.uint8)
    layer[rows, cols] = (*colour, 255)
    return layer


def editor(*layers):
    return {"background": None, "layers": list(layers), "composite": None}


def read(path):
    return np.asarray(Image.open(path))


def is_gray(rgb):
    return (rgb[..., 0] == rgb[..., 1]) & (rgb[..., 1] == rgb[..., 2])


def error_of(result):
    message = result[-1]
    assert message.startswith("**error:**"), message
    return message


# ---------------------------------------------------------------------------------------------
# the command, and gradio kept out of the core package

def test_settings_defaults_and_one_line_errors(capsys):
    s = demo_mod.parse_args([])
    assert (s.host, s.port, s.max_side, s.checkpoint) == ("127.0.0.1", 7860, 2048, "")
    assert demo_mod.parse_args(["--max-side", "512", "--port", "8000"]).max_side == 512
    with pytest.raises(SystemExit) as e:
        demo_mod.main(["--port", "70000"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: demo.port (--port): 70000 must be in [1, 65535]"


def test_without_gradio_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)   # import gradio -> ImportError
    with pytest.raises(SystemExit) as e:
        demo_mod.main([])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[demo]'" in err


def test_the_core_package_never_imports_gradio():
    """Only demo_page.py imports gradio at module level, and demo.py only in require_gradio (the
    check of main); importing the demo's handlers and parsing its command line pulls in neither
    gradio nor torch (the config is checked before torch is imported, as for every tool)."""
    import ast
    import pathlib

    import gan_colorize
    for path in pathlib.Path(gan_colorize.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "gradio" for n in names):
                assert path.name == "demo_page.py" or (
                    path.name == "demo.py" and node in ast.walk(_function(tree, "require_gradio"))
                ), f"{path.name}:{node.lineno} imports gradio"
    code = ("import sys, gan_colorize.apps.demo as d\n"
            "d.parse_args(['--port', '8000'])\n"
            "print('gradio' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"]


def _function(tree, name):
    import ast
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)


# ---------------------------------------------------------------------------------------------
# pieces

def test_editing_shape_keeps_the_aspect_and_caps_the_longer_side():
    assert editing_shape(768, 1024, 2048) == (768, 1024)
    assert editing_shape(3000, 4000, 2048) == (1536, 2048)
    assert editing_shape(4000, 30, 100) == (100, 1)


def test_gray_view_is_what_the_colorizer_keeps(plain):
    """The view's gray equals the Colorizer's output under an empty mask (its L, ab = 0) to
    one level."""
    rgb = colourful(40, 56, 3)
    with pytest.warns(inputs.EmptyMaskWarning):
        ref = plain.colorizer.colorize(rgb, np.zeros((40, 56), np.float32), composite="hard")
    view = gray_view(rgb)
    assert is_gray(view).all()
    assert np.abs(view.astype(int) - ref.astype(int)).max() <= 1


def test_layers_are_read_by_alpha_or_as_a_mask_image():
    alpha = painted(6, 8, slice(0, 3), slice(None))
    alpha[3, 0] = (9, 9, 9, 127)                       # under the threshold: not painted
    assert layer_mask(alpha, 6, 8).sum() == 3 * 8
    bw = np.zeros((6, 8, 3), np.uint8)                  # a mask PNG as gan-colorize reads it
    bw[:, :4] = 255
    assert (layer_mask(bw, 12, 16) == (np.arange(16) < 8)[None]).all()   # scaled up, nearest
    assert (layer_mask(bw // 255, 6, 8) == layer_mask(bw, 6, 8)).all()   # 0/1 as gan-colorize
    assert not layer_mask(None, 6, 8).any()
    hints = layer_hints(painted(6, 8, slice(1, 2), slice(1, 3), (10, 200, 30)), 6, 8)
    assert hints.dtype == np.uint8 and hints.shape == (6, 8, 4)
    assert (hints[1, 1:3] == (10, 200, 30, 255)).all() and hints[..., 3].sum() == 2 * 255
    assert layer_hints(np.zeros((6, 8, 4), np.uint8), 6, 8) is None


# ---------------------------------------------------------------------------------------------
# loading a photo

def test_load_photo_shows_it_gray_and_names_its_size(plain, photo):
    value, message = plain.load_photo(str(photo))
    assert value["background"].shape == (60, 80, 3) and is_gray(value["background"]).all()
    assert value["layers"] == []
    assert message.startswith("photo.png: 80x60.")
    assert plain.load_photo(None) == (None, "")


def test_a_large_photo_is_painted_at_max_side(checkpoints, tmp_path):
    demo = make_demo(checkpoints["plain"], max_side=64)
    try:
        path = tmp_path / "big.png"
        Image.fromarray(colourful(96, 128)).save(path)
        value, message = demo.load_photo(str(path))
        assert value["background"].shape == (48, 64, 3)
        assert "shown and painted at 64x48" in message
        # the mask painted at 64x48 is scaled up; the output keeps 128x96
        left = painted(48, 64, slice(None), slice(0, 32))
        _, _, files, message = demo.colorize(str(path), editor(left), True)
        out, mask = read(files[0]), read(files[1])
        assert out.shape == (96, 128, 3) and (mask[:, :64] == 255).all() and (mask[:, 64:] == 0).all()
    finally:
        demo.close()



@pytest.mark.parametrize("case", ["text", "empty", "truncated", "bomb", "too_big_file"])
def test_bad_photos_are_a_message_and_a_log_line(checkpoints, tmp_path, case, caplog):
    demo = make_demo(checkpoints["plain"], max_upload_mb=0.01)
    try:
        path = tmp_path / f"{case}.png"
        if case == "text":
            path.write_text("not an image")
        elif case == "empty":
            path.write_bytes(b"")
        elif case == "truncated":
            Image.fromarray(colourful(60, 80)).save(path)
            path.write_bytes(path.read_bytes()[:3000])
        elif case == "bomb":
            bomb_png(path, 50_000, 50_000)
        else:
            path.write_bytes(np.random.default_rng(0).bytes(20_000))
        with caplog.at_level(logging.WARNING, logger="gan_colorize.demo"):
            value, message = demo.load_photo(str(path))
            result = demo.colorize(str(path), editor(), True)
        assert value is None and result[:3] == (None, None, None)
        for m in (message, result[-1]):
            assert m.startswith(f"**error:** ") and f"{case}.png" in m and "\n" not in m
            assert "Traceback" not in m
        expected = {"text": "not an image file", "empty": "empty", "truncated": "",
                    "bomb": "decompression bomb", "too_big_file": "over the limit of 0.01 MB"}
        assert expected[case] in message
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    finally:
        demo.close()


# ---------------------------------------------------------------------------------------------
# colorizing

def test_colorize_keeps_size_and_L_and_colours_only_the_mask(plain, photo):
    left = painted(60, 80, slice(None), slice(0, 40))
    before, after, files, message = plain.colorize(str(photo), editor(left), True)
    assert message.startswith("done in"), message
    assert [f.rsplit("/", 1)[1] for f in files] == ["photo_color.png", "photo_mask.png"]
    out, mask, rgb = read(files[0]), read(files[1]), colourful(60, 80)
    assert out.shape == (60, 80, 3) and mask.shape == (60, 80)
    assert (mask[:, :40] == 255).all() and (mask[:, 40:] == 0).all()
    assert is_gray(out[:, 40:]).all()                       # hard: gray outside the mask
    assert not is_gray(out[:, :40]).any()                   # the hand-made model paints colour
    assert np.abs(gray_view(out).astype(int) - gray_view(rgb).astype(int)).max() <= 1   # L kept
    assert read(before).shape == read(after).shape == (60, 80, 3)
    assert "gan-colorize --checkpoint" in message and "--mask photo_mask.png" in message


def test_the_downloads_redo_it_from_the_command_line_byte_for_byte(checkpoints, tmp_path):
    """Mask and hints painted at the editing size (max_side 64 for a 128x96 photo); the
    downloads given to gan-colorize give the same STEM_color.png, byte for byte."""
    demo = make_demo(checkpoints["hints"], max_side=64)
    try:
        photo = tmp_path / "cat.png"
        Image.fromarray(colourful(96, 128, 5)).save(photo)
        mask = painted(48, 64, slice(8, 40), slice(4, 40))
        hints = painted(48, 64, slice(20, 23), slice(10, 13), (20, 160, 40))
        hints[30:32, 50:52] = (250, 200, 0, 255)            # outside the mask: dropped, said so
        _, _, files, message = demo.colorize(str(photo), editor(mask, hints), True)
        assert [f.rsplit("/", 1)[1] for f in files] == ["cat_color.png", "cat_mask.png",
                                                       "cat_hints.png"]
        assert "dropped 1 hint(s) outside the mask" in message
        command = message.rsplit("`", 2)[1].split()
        assert command[0] == "gan-colorize"
        # the command as printed, with the downloaded files beside the photo
        work = tmp_path / "cli"
        work.mkdir()
        for f in files[1:]:
            (work / f.rsplit("/", 1)[1]).write_bytes(open(f, "rb").read())
        argv = [str(work / a) if a in ("cat_mask.png", "cat_hints.png") else a
                for a in command[1:]]
        argv = [str(photo) if a == "cat.png" else str(tmp_path / "out") if a == "out/" else a
                for a in argv]
        assert colorize_cli.main(argv) == 0
        assert (tmp_path / "out" / "cat_color.png").read_bytes() == open(files[0], "rb").read()
    finally:
        demo.close()


@pytest.mark.parametrize("layers", ["none", "clear layer", "dark mask image"])
def test_an_empty_mask_gives_the_gray_photo_and_says_why(plain, photo, layers):
    """Nothing painted, a layer painted nothing, or a mask image (no transparent pixel) whose
    pixels are all under half: one warning line on the page, said once (not again as the
    Colorizer's EmptyMaskWarning), and the gray photo (exactly, with composite hard: the
    hand-made model paints colour everywhere)."""
    value = {"none": editor(), "clear layer": editor(np.zeros((60, 80, 4), np.uint8)),
             "dark mask image": editor(np.full((60, 80, 3), 100, np.uint8))}[layers]
    _, _, files, message = plain.colorize(str(photo), value, True)
    said = [ln for ln in message.split("\n\n") if "no pixel set" in ln or "mask is empty" in ln]
    assert len(said) == 1 and "\n" not in said[0], message
    assert said[0].startswith("**warning:** the mask is empty") and "right answer" in said[0]
    out = read(files[0])
    assert out.shape == (60, 80, 3) and is_gray(out).all() and (read(files[1]) == 0).all()


def test_a_mask_image_of_zeros_and_ones_is_read_as_a_mask(plain, photo):
    """An API caller's mask image written as 0/1 (uint8, no transparent pixel) means 0/1, as
    Colorizer.colorize reads it, not 0..255 (which would be empty)."""
    ones = np.zeros((60, 80, 3), np.uint8)
    ones[:, :40] = 1
    _, _, files, message = plain.colorize(str(photo), editor(ones), True)
    assert "mask is empty" not in message, message
    mask = read(files[1])
    assert (mask[:, :40] == 255).all() and (mask[:, 40:] == 0).all()
    assert not is_gray(read(files[0])[:, :40]).any()


def test_a_layer_painted_on_another_photo_is_refused(plain, photo, caplog):
    with caplog.at_level(logging.WARNING, logger="gan_colorize.demo"):
        result = plain.colorize(str(photo), editor(painted(60, 60, slice(None), slice(0, 9))), True)
    assert result[:3] == (None, None, None)
    assert "the mask layer is 60x60 but the photo is 80x60" in error_of(result)
    assert "painted on another photo" in caplog.text


def test_hints_on_a_checkpoint_without_them_are_left_out_with_a_note(plain, photo):
    mask = painted(60, 80, slice(None), slice(0, 40))
    hints = painted(60, 80, slice(5, 8), slice(5, 8), (0, 0, 255))
    _, _, files, message = plain.colorize(str(photo), editor(mask, hints), True)
    assert "trained without colour hints" in message and len(files) == 2


def test_a_checkpoint_that_does_not_load_is_said_on_the_page(tmp_path, photo, caplog):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with caplog.at_level(logging.ERROR, logger="gan_colorize.demo"):
        demo = Demo.from_settings(DemoConfig(checkpoint=str(bad), device="cpu"))
    try:
        assert demo.colorizer is None and "broken.pt" in demo.load_error
        assert demo.status().startswith("**error:** no model") and "did not load" in caplog.text
        assert demo.load_photo(str(photo))[0] is not None        # the page still works
        assert "no model" in error_of(demo.colorize(str(photo), editor(), True))
    finally:
        demo.close()


def test_an_unexpected_failure_is_one_line_on_the_page_and_a_traceback_in_the_log(
        plain, photo, monkeypatch, caplog):
    def boom(*a, **k):
        raise RuntimeError("out of\nmemory")
    monkeypatch.setattr(plain.colorizer, "colorize", boom)
    with caplog.at_level(logging.ERROR, logger="gan_colorize.demo"):
        result = plain.colorize(str(photo), editor(), True)
    assert "internal error (RuntimeError: out of memory)" in error_of(result)
    assert "Traceback" not in result[-1] and "Traceback" in caplog.text


# ---------------------------------------------------------------------------------------------
# mask tools

def test_a_preset_is_the_cli_draw_and_keeps_the_hints(hinted, photo):
    hints = painted(60, 80, slice(5, 8), slice(5, 8), (0, 0, 255))
    value, message = hinted.preset_mask(str(photo), editor(None, hints), "impa=1", 3)
    expected, _ = MaskSampler("impa=1").sample(60, 80, mask_rng(3, 0), image=colourful(60, 80))
    assert (layer_mask(value["layers"][0], 60, 80) == (expected > 0.5)).all()
    assert value["layers"][0][..., 3].max() < 255           # see-through on the canvas
    assert value["layers"][1] is hints and "impa=1" in message
    brush, _ = hinted.preset_mask(str(photo), editor(), "brush", 0)
    assert brush["layers"][1].shape == (60, 80, 4) and not brush["layers"][1].any()


@pytest.mark.parametrize("spec, expected", [("nonsense", "unknown mask family"),
                                            ("file=/etc", "not offered on this page"),
                                            ("", "type a mask family")])
def test_a_bad_preset_leaves_the_painting_as_it_was(plain, photo, spec, expected):
    before = editor(painted(60, 80, slice(0, 9), slice(None)))
    value, message = plain.preset_mask(str(photo), before, spec, 0)
    assert value is before and expected in error_of((value, message))


def test_invert_and_clear_the_mask(hinted):
    bg = np.zeros((6, 8, 3), np.uint8)
    hints = painted(6, 8, slice(0, 1), slice(0, 1))
    value = {"background": bg, "layers": [painted(6, 8, slice(0, 2), slice(None)), hints],
             "composite": None}
    inverted, _ = hinted.invert_mask(value)
    assert (layer_mask(inverted["layers"][0], 6, 8) == (np.arange(6) >= 2)[:, None]).all()
    assert inverted["layers"][1] is hints and inverted["background"] is bg
    full, _ = hinted.invert_mask({"background": bg, "layers": [], "composite": None})
    assert layer_mask(full["layers"][0], 6, 8).all()       # no pixel clear: read as an image
    cleared, message = hinted.clear_mask(value)
    assert not layer_mask(cleared["layers"][0], 6, 8).any() and message == "mask cleared"
    assert "upload a photo first" in error_of(hinted.invert_mask(editor()))


def test_hints_alpha_rule_is_the_hints_modules():
    from gan_colorize.data import hints
    from gan_colorize.apps import demo_images
    assert demo_images.ALPHA_MIN == hints.ALPHA_MIN
