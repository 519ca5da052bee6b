"""The Colorizer API and the gan-colorize CLI on a tiny hand-made checkpoint."""
import hashlib
import warnings

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from gan_colorize import colorize
from gan_colorize.color import lab_to_rgb, rgb_to_lab
from gan_colorize.colorize import Colorizer, fit_gamut, prepare_mask
from gan_colorize.config import load_config
from gan_colorize.masks import MaskSampler, mask_rng
from gan_colorize.networks import build_generator

L_TOL = 0.35   # Lab L units: what uint8 rounding of the output RGB can move L by (max ~0.26)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """Checkpoint laid out like trainer.make_state; the generator's output bias paints strong
    colour (a ~ 50, b ~ -32) everywhere, so leaks and gamut limits are really exercised."""
    cfg = load_config(["--model.width", "0.25", "--data.size", "64"])
    torch.manual_seed(0)
    g = build_generator(cfg.model)
    with torch.no_grad():
        g.out.conv.bias.copy_(torch.tensor([0.5, -0.3]))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"format": "gan_colorize/1", "g_ema": g.state_dict(), "config": cfg.to_dict(),
                "step": 3}, path)
    return path


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
    raw = colorizer.colorize(rgb, mask)
    hard = colorizer.colorize(rgb, mask, composite="hard")
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
    return colorize.main([str(a) for a in argv])


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
])
def test_cli_errors_are_one_line(ckpt, tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(colorize, "DEFAULT_CHECKPOINT", tmp_path / "checkpoints" / "default.pt")
    Image.fromarray(_photo(32, 32)).save(tmp_path / "in.png")
    (tmp_path / "bad.png").write_bytes(b"garbage")
    sub = {"CKPT": ckpt, "OUT": tmp_path / "out", "IN": tmp_path / "in.png",
           "BAD": tmp_path / "bad.png", "MISSING": tmp_path / "missing.png"}
    with pytest.raises(SystemExit) as exc:
        _cli([sub.get(a, a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    if message == "default checkpoint":
        assert "train" in err[-1] and "--checkpoint" in err[-1]


def test_shipped_default_checkpoint_colours_inside_and_stays_gray_outside():
    """checkpoints/default.pt (RESULTS.md's x1_unet_mixed_10k) on a photo it never saw, under a half-plane mask:
    clearly coloured inside, near gray outside, without --composite hard."""
    if not colorize.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no checkpoints/default.pt in this checkout")
    c = Colorizer.from_checkpoint(device="cpu")
    rgb = skimage.data.coffee()                          # 400 x 600, never in Flowers17
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[:, : rgb.shape[1] // 2] = 1
    out = c.colorize(rgb, mask)
    lab = rgb_to_lab(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255)[0]
    chroma = lab[1:].pow(2).sum(0).sqrt()
    inside, outside = chroma[mask == 1].mean().item(), chroma[mask == 0].mean().item()
    assert inside > 5 and outside < 1.5, (inside, outside)
