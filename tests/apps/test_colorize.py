"""The Colorizer API and the gan-colorize CLI on a tiny hand-made checkpoint."""
import hashlib
import warnings

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from gan_colorize.apps import api, colorize_cli, inputs
from gan_colorize.core.color import lab_to_rgb, rgb_to_lab
from gan_colorize.apps.api import Colorizer, fit_gamut
from gan_colorize.apps.inputs import prepare_mask
from gan_colorize.core.errors import UserError
from conftest import hand_made_checkpoint
from gan_colorize.data.masks import MaskSampler, mask_rng

L_TOL = 0.35   # Lab L units: what uint8 rounding of the output RGB can move L by (max ~0.26)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Checkpoint laid out like trainer.make_state; the generator's output bias paints strong
    colour (a ~ 50, b ~ -32) everywhere, so leaks and gamut limits are really exercised."""
    return hand_made_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt",
                                "--model.width", "0.25", "--data.size", "64")


@pytest.fixture(scope="module")
def colorizer(ckpt):
    return Colorizer.from_checkpoint(ckpt, device="cpu")


def _lab(rgb):
    """uint8 (H,W,3) or (H,W) -> (L (H,W), chroma (H,W)) float32."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    lab = rgb_to_lab(torch.tensor(rgb).permute(2, 0, 1)[None].float() / 255)[0]
    return lab[0].numpy(), lab[1:].pow(2).sum(0).sqrt().numpy()


def _photo(h, w):
    return np.asarray(Image.fromarray(skimage.data.chelsea()).resize((w, h), Image.BILINEAR))


def _half(h, w):
    m = np.zeros((h, w), bool)
    m[:, : w // 2] = True
    return m


def test_odd_size_colour_input_keeps_l_and_hard_composite_is_gray_outside(colorizer):
    rgb, mask = _photo(333, 517), _half(333, 517)
    assert colorizer.size == 64                      # the checkpoint's data.size
    raw = colorizer.colorize(rgb, mask, composite="none")
    hard = colorizer.colorize(rgb, mask)             # the default: hard
    L_in, _ = _lab(rgb)
    for out in (raw, hard):
        assert out.shape == (333, 517, 3) and out.dtype == np.uint8
        L_out, chroma = _lab(out)
        assert np.abs(L_out - L_in).max() <= L_TOL
        assert chroma[mask].mean() > 20               # colour inside
    assert _lab(raw)[1][~mask].mean() > 20            # the raw output leaks (biased model)
    outside = hard[~mask]
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    assert np.array_equal(raw[mask], hard[mask])


def test_gray_input_keeps_l_exactly_and_hard_outside_equals_input(colorizer):
    gray = cv2.cvtColor(_photo(333, 517), cv2.COLOR_RGB2GRAY)
    mask = _half(333, 517)
    out = colorizer.colorize(gray, mask, composite="hard")
    assert out.shape == (333, 517, 3)
    assert np.abs(_lab(out)[0] - _lab(gray)[0]).max() <= L_TOL
    assert (out[~mask] == gray[~mask][:, None]).all()   # untouched gray, to the last bit
    assert _lab(out)[1][mask].mean() > 20
    # (H,W,1) is gray too, and a colour image with the same L gives the same result
    assert np.array_equal(colorizer.colorize(gray[..., None], mask, composite="hard"), out)


def test_masks_of_any_size_dtype_and_channels(colorizer):
    rgb = _photo(96, 160)
    exact = _half(96, 160)
    ref = colorizer.colorize(rgb, exact)
    small = np.zeros((24, 40), np.float32)            # a quarter the size, soft values
    small[:, :20] = 0.7
    small[:, 20:] = 0.3
    with pytest.warns(UserWarning, match="resized"):
        out = colorizer.colorize(rgb, small)
    assert np.array_equal(out, ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # right size: no warning
        for m in (exact.astype(np.uint8) * 255, exact.astype(np.float64) * 255,
                  np.repeat(exact[..., None].astype(np.uint8) * 255, 3, axis=2),
                  np.dstack([exact.astype(np.uint16) * 65535] * 4)):
            assert np.array_equal(colorizer.colorize(rgb, m), ref)
    m, note = prepare_mask(small, 96, 160)
    assert m.dtype == np.float32 and set(np.unique(m)) == {0.0, 1.0} and "resized" in note
    with pytest.raises(ValueError):
        prepare_mask(np.zeros((4, 4, 5)), 4, 4)


# each dtype a mask comes in, as half-plane masks: integers whose largest value is 1 are 0/1
MASK_DTYPES = {
    "bool": lambda m: m,
    "uint8 0/1": lambda m: m.astype(np.uint8),
    "uint8 0/255": lambda m: m.astype(np.uint8) * 255,
    "int64 0/1": lambda m: m.astype(np.int64),
    "int64 0/255": lambda m: m.astype(np.int64) * 255,
    "uint16 0/1": lambda m: m.astype(np.uint16),
    "uint16 0/65535": lambda m: m.astype(np.uint16) * 65535,
    "float 0..1": lambda m: np.where(m, 0.8, 0.2).astype(np.float32),
    "float 0/255": lambda m: m.astype(np.float64) * 255,
    "uint8 RGB 0/1": lambda m: np.repeat(m[..., None].astype(np.uint8), 3, axis=2),
}


@pytest.mark.parametrize("kind", list(MASK_DTYPES))
def test_each_mask_dtype_keeps_its_meaning(colorizer, kind):
    """bool, 0/1 integers (uint8 too: the usual numpy mask), 0/255 integers and 0..1 floats all
    mean the same half-plane mask, and colour only where it is set, with no warning."""
    exact = _half(48, 80)
    m = MASK_DTYPES[kind](exact)
    prepared, note = prepare_mask(m, 48, 80)
    assert note is None and np.array_equal(prepared, exact.astype(np.float32))
    rgb = _photo(48, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = colorizer.colorize(rgb, m, composite="hard")
        assert np.array_equal(out, colorizer.colorize(rgb, exact, composite="hard"))
    assert _lab(out)[1][exact].mean() > 20 and _lab(out)[1][~exact].max() < 1


@pytest.mark.parametrize("kind, mask, said", [
    ("bool", np.zeros((48, 80), bool), "bool, all False"),
    ("uint8 0/1", np.zeros((48, 80), np.uint8), "uint8 read as 0/1, largest value 0"),
    ("uint8 dark", np.full((48, 80), 100, np.uint8), "uint8 read as 0..255, largest value 100"),
    ("int64 0", np.zeros((48, 80), np.int64), "int64 read as 0/1"),
    ("float under 0.5", np.full((48, 80), 0.3, np.float32), "float32 read as 0..1, largest value 0.3"),
    ("uint16 0/255", np.full((48, 80), 255, np.uint16), "uint16 read as 0..65535"),
])
def test_an_empty_mask_warns_in_one_line_and_gives_gray(colorizer, kind, mask, said):
    rgb = _photo(48, 80)
    with pytest.warns(inputs.EmptyMaskWarning) as caught:
        out = colorizer.colorize(rgb, mask, composite="hard")
    empty = [w for w in caught if issubclass(w.category, inputs.EmptyMaskWarning)]
    assert len(empty) == 1
    message = str(empty[0].message)
    assert "\n" not in message and "no pixel set" in message and "gray" in message
    assert said in message, message
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_a_mask_emptied_by_the_resize_says_so(colorizer):
    tiny = np.zeros((480, 800), bool)
    tiny[7, 7] = True                                  # one pixel, lost by nearest neighbour
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        colorizer.colorize(_photo(48, 80), tiny)
    said = [str(w.message) for w in caught]
    assert len(said) == 2 and "resized (nearest)" in said[0], said
    assert said[1].startswith("the mask has no pixel set after resizing it to the image: nearest "
                              "neighbour dropped its 1 set pixel(s)"), said


def test_colorize_batch_names_the_empty_mask(colorizer):
    with pytest.warns(inputs.EmptyMaskWarning, match="^mask 1: the mask has no pixel set"):
        colorizer.colorize_batch([_photo(48, 80)] * 2, [_half(48, 80), np.zeros((48, 80), bool)])


def test_cli_empty_mask_is_one_line_naming_the_files(ckpt, tmp_path, capsys):
    Image.fromarray(_photo(32, 48)).save(tmp_path / "a.png")
    Image.fromarray(np.full((32, 48), 90, np.uint8)).save(tmp_path / "dark.png")   # under half
    out = tmp_path / "out"
    assert _cli(["--checkpoint", ckpt, "--mask", tmp_path / "dark.png", "--out", out,
                 "--device", "cpu", tmp_path / "a.png"]) == 0
    err = capsys.readouterr().err
    lines = [ln.strip() for ln in err.replace("\r", "\n").splitlines() if "no pixel set" in ln]
    assert lines == [f"warning: {tmp_path / 'a.png'}: mask {tmp_path / 'dark.png'}: the mask has "
                     "no pixel set (uint8 read as 0..255, largest value 90, under the threshold "
                     "127.5): nothing is to be coloured, the output is the gray image (exactly so "
                     "with composite hard)"], err
    assert (out / "a_color.png").is_file()            # written all the same: gray is the answer
    # a drawn mask that is empty names the spec and seed instead of a file
    assert _cli(["--checkpoint", ckpt, "--mask", "empty", "--seed", "3", "--out", tmp_path / "o2",
                 "--device", "cpu", tmp_path / "a.png"]) == 0
    err = capsys.readouterr().err
    assert [ln for ln in err.splitlines() if "no pixel set" in ln] == [
        f"warning: {tmp_path / 'a.png'}: mask --mask empty --seed 3: the mask has no pixel set "
        "(float32 read as 0..1, largest value 0, under the threshold 0.5): nothing is to be "
        "coloured, the output is the gray image (exactly so with composite hard)"], err


def test_colorize_batch_groups_shapes_and_matches_single_calls(colorizer):
    imgs = [_photo(96, 160), _photo(70, 50), _photo(96, 160)[::-1].copy()]
    masks = [_half(96, 160), np.ones((70, 50), bool), _half(96, 160)]
    batch = colorizer.colorize_batch(imgs, masks, batch_size=2)
    for img, m, out in zip(imgs, masks, batch):
        single = colorizer.colorize(img, m)
        assert out.shape == single.shape
        assert np.abs(out.astype(int) - single.astype(int)).max() <= 1


def test_fit_gamut_keeps_l_and_only_shrinks_chroma():
    lab = torch.tensor([[95.0, 80, 80], [5, -60, 90], [50, 10, -10], [0, 0, 0], [100, 0, 0]])
    lab = lab.t().reshape(1, 3, 5, 1)
    fitted = fit_gamut(lab)
    assert torch.equal(fitted[:, 0], lab[:, 0])
    assert torch.equal(fitted[0, :, 2:], lab[0, :, 2:])            # in gamut: untouched
    scale = fitted[0, 1:, :2].norm(dim=0) / lab[0, 1:, :2].norm(dim=0)
    assert (scale < 0.9).all() and (scale > 0).all()
    back = rgb_to_lab(lab_to_rgb(fitted))
    assert (back - fitted).abs().max() < 0.06


# ---------------------------------------------------------------------------------------------
# CLI

def _digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def mixed(tmp_path):
    """A folder of every kind of input, plus a corrupt and an empty file."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    photo = _photo(45, 67)
    Image.fromarray(photo).save(d / "rgb.png")
    Image.fromarray(photo).save(d / "photo.jpg", quality=90)
    Image.fromarray(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)).save(d / "gray.png")
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "rgba.png")
    cv2.imwrite(str(d / "deep16.png"), (photo[..., ::-1].astype(np.uint16) * 257))
    exif = Image.Exif()
    exif[0x0112] = 6                                  # stored landscape, shown rotated 90
    Image.fromarray(photo).save(d / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(photo).save(d / "sub" / "nested.png")
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3)
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image, not picked up from a folder")
    return d


def _cli(argv):
    return colorize_cli.main([str(a) for a in argv])


def test_cli_mixed_folder(ckpt, mixed, tmp_path, capsys):
    before = _digest(mixed)
    out = tmp_path / "out"
    assert _cli(["--checkpoint", ckpt, "--mask", "impa=0", "--out", out, "--sheet",
                 "--device", "cpu", "--batch-size", "3", mixed]) == 0
    err = capsys.readouterr().err
    assert _digest(mixed) == before
    skipped = [ln for ln in err.splitlines() if ln.startswith("skipped")]
    assert len(skipped) == 2
    assert any("corrupt.png" in ln for ln in skipped) and any("empty.jpg" in ln for ln in skipped)
    for stem in ("rgb", "photo", "gray", "rgba", "deep16", "sub/nested"):
        color = np.asarray(Image.open(out / f"{stem}_color.png"))
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        sheet = Image.open(out / f"{stem}_sheet.png")
        assert color.shape == (45, 67, 3) and mask.shape == (45, 67)
        assert set(np.unique(mask)) == {0, 255} and (mask[:, :33] == 255).all()
        assert sheet.size == (3 * 67 + 8, 45)
    assert np.asarray(Image.open(out / "rotated_color.png")).shape == (67, 45, 3)
    assert not list(out.glob("corrupt*")) and not list(out.glob("empty*"))
    assert not list(out.rglob("*.tmp"))


def test_cli_mask_folder_matched_by_stem(ckpt, tmp_path, capsys):
    src, masks, out = tmp_path / "src", tmp_path / "masks", tmp_path / "out"
    src.mkdir()
    masks.mkdir()
    for stem in ("a", "b", "c"):
        Image.fromarray(_photo(40, 64)).save(src / f"{stem}.png")
    ma = np.zeros((40, 64), np.uint8)
    ma[:20] = 255
    Image.fromarray(ma).save(masks / "a.png")
    Image.fromarray(255 - ma[::2, ::2]).save(masks / "b_mask.png")   # half size, STEM_mask name
    assert _cli(["--checkpoint", ckpt, "--mask", masks, "--out", out, "--device", "cpu",
                 src / "a.png", src / "b.png", src / "c.png"]) == 0
    err = capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(out / "a_mask.png")), ma)
    assert np.array_equal(np.asarray(Image.open(out / "b_mask.png")), 255 - ma)
    assert "b.png" in err and "resized" in err                       # the size note
    assert not (out / "c_color.png").exists()
    assert any(ln.startswith("skipped") and "c.png" in ln and "no mask" in ln
               for ln in err.splitlines())


def test_cli_family_spec_masks_are_seeded_per_input(ckpt, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    imgs = {n: _photo(48, 72 + 8 * k) for k, n in enumerate(("x", "y"))}
    for n, im in imgs.items():
        Image.fromarray(im).save(src / f"{n}.png")
    spec = "rect:1,blobs:1"
    runs = {}
    for seed, name in ((3, "s3"), (3, "s3b"), (4, "s4")):
        _cli(["--checkpoint", ckpt, "--mask", spec, "--seed", seed, "--out", tmp_path / name,
              "--device", "cpu", src])
        runs[name] = [np.asarray(Image.open(tmp_path / name / f"{n}_mask.png")) for n in imgs]
    assert all(np.array_equal(a, b) for a, b in zip(runs["s3"], runs["s3b"]))
    assert not all(np.array_equal(a, b) for a, b in zip(runs["s3"], runs["s4"]))
    for i, (n, im) in enumerate(imgs.items()):   # input i gets MaskSampler(spec) @ mask_rng(seed, i)
        want, _ = MaskSampler(spec).sample(48, im.shape[1], mask_rng(3, i), image=im)
        assert np.array_equal(runs["s3"][i], (want * 255).astype(np.uint8))


def test_cli_refuses_to_overwrite_an_input(ckpt, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(_photo(32, 32)).save(d / "x.png")
    Image.fromarray(_photo(32, 32)).save(d / "x_color.png")     # a previous run's output
    before = _digest(d)
    with pytest.raises(SystemExit) as exc:
        _cli(["--checkpoint", ckpt, "--mask", "full", "--out", d, d])
    assert exc.value.code == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert _digest(d) == before


@pytest.mark.parametrize("argv, message", [
    (["--mask", "full", "--out", "OUT", "IN"], "default checkpoint"),
    (["--checkpoint", "CKPT", "--mask", "nosuch.png", "--out", "OUT", "IN"], "no such file or folder"),
    (["--checkpoint", "CKPT", "--mask", "impa=42", "--out", "OUT", "IN"], "impa"),
    (["--checkpoint", "CKPT", "--mask", "full", "IN"], "--out"),
    (["--checkpoint", "CKPT", "--mask", "full", "--out", "OUT", "--size", "8", "IN"], "--size"),
    (["--checkpoint", "CKPT", "--mask", "full", "--out", "OUT", "BAD"], "no image could be colorized"),
    (["--checkpoint", "CKPT", "--mask", "full", "--out", "OUT", "MISSING"], "no input images"),
    (["--checkpoint", "CKPT", "--mask", "BAD", "--out", "OUT", "IN"], "--mask: cannot read mask file BAD: "),
])
def test_cli_errors_are_one_line(ckpt, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(api, "DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "default.pt")
    Image.fromarray(_photo(32, 32)).save(tmp_path / "in.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    sub = {"CKPT": ckpt, "OUT": tmp_path / "out", "IN": tmp_path / "in.png",
           "BAD": tmp_path / "bad.png", "MISSING": tmp_path / "missing.png"}
    with pytest.raises(SystemExit) as exc:
        _cli([sub.get(a, a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    message = message.replace("BAD", str(sub["BAD"]))
    assert err[-1].startswith("error: ") and message in err[-1], err
    if message == "default checkpoint":
        assert "train" in err[-1] and "--checkpoint" in err[-1]


def test_unreadable_mask_in_a_folder_is_reported_as_the_mask(ckpt, tmp_path, capsys):
    """A broken mask is named as a mask, with the input it was for, never as an unreadable image."""
    Image.fromarray(_photo(32, 32)).save(tmp_path / "a.png")
    Image.fromarray(_photo(32, 32)).save(tmp_path / "b.png")
    masks = tmp_path / "masks"
    masks.mkdir()
    (masks / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    Image.fromarray(_half(32, 32)).save(masks / "b.png")
    out = tmp_path / "out"
    assert _cli(["--checkpoint", ckpt, "--mask", masks, "--out", out, "--device", "cpu",
                 tmp_path / "a.png", tmp_path / "b.png"]) == 0
    err = capsys.readouterr().err
    lines = [ln.strip() for ln in err.replace("\r", "\n").splitlines() if ln.startswith("skipped")]
    assert lines == [f"skipped {tmp_path / 'a.png'}: cannot read mask file {masks / 'a.png'}: "
                     "not an image file (unknown or corrupt format)"], err
    assert "cannot read image" not in err
    assert (out / "b_color.png").is_file() and not (out / "a_color.png").exists()


def test_shipped_default_checkpoint_colours_inside_and_stays_gray_outside():
    """The shipped default checkpoint (RESULTS.md's x8) on a photo it never saw, under a half-plane mask:
    clearly coloured inside, near gray outside, without --composite hard."""
    if not inputs.DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"no {inputs.DEFAULT_CHECKPOINT} in this checkout")
    c = Colorizer.from_checkpoint(device="cpu")
    rgb = skimage.data.coffee()                          # 400 x 600, never in Flowers17
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[:, : rgb.shape[1] // 2] = 1
    out = c.colorize(rgb, mask)
    lab = rgb_to_lab(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255)[0]
    chroma = lab[1:].pow(2).sum(0).sqrt()
    inside, outside = chroma[mask == 1].mean().item(), chroma[mask == 0].mean().item()
    assert inside > 5 and outside < 1.5, (inside, outside)


def test_shipped_default_checkpoint_follows_a_hint_inside_the_mask_only():
    """The shipped checkpoint takes colour hints: a few blue hints in the coloured half turn the
    colour there towards blue (b* falls), and the gray half stays gray."""
    if not inputs.DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"no {inputs.DEFAULT_CHECKPOINT} in this checkout")
    c = Colorizer.from_checkpoint(device="cpu")
    assert c.takes_hints
    rgb = skimage.data.coffee()                          # 400 x 600
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[:, : rgb.shape[1] // 2] = 1
    hints = [(x, y, (40, 60, 230), 12) for x in (80, 160, 240) for y in (100, 200, 300)]
    plain, hinted = (rgb_to_lab(torch.from_numpy(c.colorize(rgb, mask, hints=h)).permute(2, 0, 1)[None]
                                .float() / 255)[0] for h in (None, hints))
    near = np.zeros(mask.shape, bool)
    near[60:340, 40:280] = True
    assert hinted[2][near].mean() < plain[2][near].mean() - 5, (plain[2][near].mean(), hinted[2][near].mean())
    outside = hinted[1:].pow(2).sum(0).sqrt()[mask == 0].mean().item()
    assert outside < 1.5, outside


# ---------------------------------------------------------------------------------------------
# colour hints

@pytest.fixture(scope="module")
def hint_ckpt(tmp_path_factory):
    return hand_made_checkpoint(tmp_path_factory.mktemp("hint_ckpt") / "hints.pt", "--model.width",
                                "0.25", "--data.size", "64", "--hints.enabled", "true", ab_bias=None)


def _rgba_hint(h, w, box, colour):
    """uint8 (h,w,4), transparent but for `box` (y0, y1, x0, x1) painted opaque `colour`."""
    a = np.zeros((h, w, 4), np.uint8)
    y0, y1, x0, x1 = box
    a[y0:y1, x0:x1] = (*colour, 255)
    return a


def test_hints_to_a_checkpoint_without_hints_is_a_one_line_error(colorizer):
    rgb = _photo(64, 64)
    with pytest.raises(UserError, match="trained without colour hints") as exc:
        colorizer.colorize(rgb, _half(64, 64), hints=[(10, 10, (255, 0, 0), 3)])
    assert "\n" not in str(exc.value)


def test_hints_change_the_output_inside_and_a_hint_outside_the_mask_is_dropped(hint_ckpt):
    c = Colorizer.from_checkpoint(hint_ckpt, device="cpu", precision="fp32")
    rgb, mask = _photo(96, 128), _half(96, 128)              # colour on the left half
    plain = c.colorize(rgb, mask)
    assert np.array_equal(plain, c.colorize(rgb, mask, hints=None))
    inside = c.colorize(rgb, mask, hints=_rgba_hint(96, 128, (40, 56, 20, 36), (255, 0, 0)))
    assert np.abs(inside.astype(int) - plain).max() > 0      # the network saw the hint
    with pytest.warns(UserWarning, match=r"dropped 1 hint\(s\) outside the mask"):
        outside = c.colorize(rgb, mask, hints=[(100, 48, (255, 0, 0), 9)])   # x=100: right half
    assert np.array_equal(outside, plain)                    # dropped: as if never given


@pytest.mark.parametrize("hints", ["rgba", "points"])
def test_hard_composite_stays_gray_outside_whatever_the_hints(hint_ckpt, hints):
    c = Colorizer.from_checkpoint(hint_ckpt, device="cpu", precision="fp32")
    rgb, mask = _photo(80, 80), _half(80, 80)
    h = (_rgba_hint(40, 40, (10, 30, 2, 18), (0, 200, 0)) if hints == "rgba"    # half size
         else [(5, 5, (0, 0, 255), 5), (20, 60, (255, 255, 0), 7)])
    out = c.colorize(rgb, mask, composite="hard", hints=h)
    with pytest.warns(inputs.EmptyMaskWarning):             # the empty mask: gray, and said
        gray = c.colorize(rgb, np.zeros((80, 80)), composite="hard")
    assert np.array_equal(out[~mask], gray[~mask])


def test_a_small_hint_on_a_large_photo_reaches_the_network_with_its_colour(hint_ckpt):
    """A 3x3 px hint on a 1024 px photo still reaches the 64 px network, with its colour."""
    from gan_colorize.apps.api import user_hints
    from gan_colorize.data.hints import hints_from_points
    c = Colorizer.from_checkpoint(hint_ckpt, device="cpu", precision="fp32")
    mask = np.ones((1024, 1024), np.float32)
    hint = user_hints([(700, 300, (200, 30, 30), 3)], mask)
    _, _, _, _, work = c._prepare(np.zeros((1024, 1024, 3), np.uint8), mask, hint, (64, 64))
    assert work.ab.shape == (1, 2, 64, 64) and work.mask.shape == (1, 1, 64, 64)
    assert work.mask[0, 0].sum() == 1
    want, _ = hints_from_points([(0, 0, (200, 30, 30), 1)], 1, 1)
    y, x = torch.nonzero(work.mask[0, 0])[0].tolist()
    assert (y, x) == (300 * 64 // 1024, 700 * 64 // 1024)
    assert torch.allclose(work.ab[0, :, y, x], want[:, 0, 0], atol=1e-5)


def test_cli_hints_file_and_folder(hint_ckpt, tmp_path, capsys):
    src, hints, out = tmp_path / "src", tmp_path / "hints", tmp_path / "out"
    src.mkdir()
    hints.mkdir()
    for stem in ("a", "b"):
        Image.fromarray(_photo(48, 64)).save(src / f"{stem}.png")
    Image.fromarray(_rgba_hint(48, 64, (10, 20, 5, 15), (255, 0, 0))).save(hints / "a_hints.png")
    argv = ["--checkpoint", hint_ckpt, "--mask", "full", "--device", "cpu", "--precision", "fp32"]
    assert _cli([*argv, "--hints", hints, "--out", out / "folder", src]) == 0
    assert _cli([*argv, "--out", out / "none", src]) == 0
    assert _cli([*argv, "--hints", hints / "a_hints.png", "--out", out / "file", src]) == 0
    read = lambda d, s: np.asarray(Image.open(out / d / f"{s}_color.png")).astype(int)  # noqa: E731
    assert np.abs(read("folder", "a") - read("none", "a")).max() > 0    # a has a hint file
    assert np.array_equal(read("folder", "b"), read("none", "b"))       # b has none
    assert np.array_equal(read("file", "b"), read("folder", "a"))       # same photo, same hint


@pytest.mark.parametrize("what, message", [
    ("jpeg", "alpha"), ("truncated", "hint"), ("missing", "no such file or folder")])
def test_cli_bad_hints_are_one_line(hint_ckpt, ckpt, tmp_path, capsys, what, message):
    Image.fromarray(_photo(32, 32)).save(tmp_path / "in.png")
    bad = tmp_path / "h.png"
    if what == "jpeg":
        Image.fromarray(_photo(32, 32)).save(bad, format="JPEG")
    elif what == "truncated":
        buf = tmp_path / "full.png"
        Image.fromarray(_rgba_hint(32, 32, (0, 4, 0, 4), (9, 9, 9))).save(buf)
        bad.write_bytes(buf.read_bytes()[:40])
    else:
        bad = tmp_path / "nope.png"
    with pytest.raises(SystemExit) as exc:
        _cli(["--checkpoint", hint_ckpt, "--mask", "full", "--hints", bad, "--out",
              tmp_path / "out", "--device", "cpu", tmp_path / "in.png"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err.lower()
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_cli_hints_with_a_checkpoint_without_hints(ckpt, tmp_path, capsys):
    Image.fromarray(_photo(32, 32)).save(tmp_path / "in.png")
    Image.fromarray(_rgba_hint(32, 32, (0, 4, 0, 4), (9, 9, 9))).save(tmp_path / "h.png")
    with pytest.raises(SystemExit):
        _cli(["--checkpoint", ckpt, "--mask", "full", "--hints", tmp_path / "h.png", "--out",
              tmp_path / "out", "--device", "cpu", tmp_path / "in.png"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trained without colour hints" in err[0]
