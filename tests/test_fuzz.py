"""Property tests over untrusted text and files: whatever comes in, the result is a value or the
package's own one-line error, never a crash.

- mask specs built from the grammar's own pieces (families, args, weights, file paths, junk)
- every mask family with degenerate sizes (1 px upward), args and image / segmentation content
- config overrides: random keys and values, `--k v` and `--k=v` forms
- gan_colorize.imageio.read_image on random bytes behind real magic numbers, and on real images
  in every PIL mode the brief lists, saved in formats that hold them, whole or damaged
- the colorize CLI on random inputs and masks (skipped while that module has no main())
tests/test_masks.py fuzzes raw strings into parse_spec and the families at 8..96 px; these
tests go further down the same paths rather than repeating them.
"""
import contextlib
import io
import os
import warnings
from dataclasses import asdict, fields

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings, strategies as st
from PIL import Image

from gan_colorize.core import specs as S
from gan_colorize.data import mask_families as F
from gan_colorize.data import masks as M
from gan_colorize.core.config import Config, ConfigError
from gan_colorize.core.parser import load_config
from gan_colorize.core.errors import UserError
from gan_colorize.core.imageio import BadImageError, read_image

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_one_line(err):
    assert isinstance(err, UserError) and str(err) and "\n" not in str(err), repr(err)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Mask files for specs: a good PNG, a broken one, a folder of masks, an empty folder."""
    d = tmp_path_factory.mktemp("fuzz")
    Image.fromarray(np.tile(np.array([0, 255], np.uint8), (6, 5))).save(d / "good.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (d / "dir").mkdir()
    Image.fromarray(np.full((5, 7), 255, np.uint8)).save(d / "dir" / "a.png")
    (d / "empty").mkdir()
    return d


# --------------------------------------------------------------------------------- mask specs

ARGS = ["0", "9", "10", "0-3", "3-1", "0;2;5", "left;checker_a", "left;;", "-1", " 4 ", "foreground",
        "background", "random", "", "@GOOD", "@BROKEN", "@DIR", "@EMPTY", "/no/such/mask.png"]
WEIGHTS = ["0", "-0", "1", "0.5", "1e309", "nan", "inf", "-1", "1_0", " 2 ", "", "0x1"]
entries = st.tuples(
    st.one_of(st.sampled_from(sorted(F.FAMILIES)), st.text(max_size=6)),
    st.one_of(st.none(), st.sampled_from(ARGS), st.text(max_size=8)),
    st.one_of(st.none(), st.sampled_from(WEIGHTS), st.floats().map(repr), st.text(max_size=4)),
).map(lambda t: t[0] + (f"={t[1]}" if t[1] is not None else "") + (f":{t[2]}" if t[2] is not None else ""))


@FUZZ
@given(parts=st.lists(entries, min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1),
       h=st.integers(1, 24), w=st.integers(1, 24))
def test_mask_spec_from_grammar_pieces(files, parts, seed, h, w):
    """parse -> sampler -> draw -> fixed masks: each stage gives a value or a one-line
    MaskSpecError / UserError; a mask is always float32 (h, w) of {0, 1}."""
    spec = ",".join(parts)
    for tag, name in (("@GOOD", "good.png"), ("@BROKEN", "broken.png"), ("@DIR", "dir"), ("@EMPTY", "empty")):
        spec = spec.replace(tag, str(files / name))
    try:
        parsed = S.parse_spec(spec)
    except S.MaskSpecError as e:
        return assert_one_line(e)
    assert len(parsed) == spec.count(",") + 1
    assert all(e.family in F.FAMILIES and np.isfinite(e.weight) and e.weight >= 0 for e in parsed)
    try:
        sampler = M.MaskSampler(spec)
    except S.MaskSpecError as e:       # a file= path that does not exist, or an empty folder
        return assert_one_line(e)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    seg = rng.integers(0, 2, (h, w), dtype=np.uint8)
    try:
        mask, family = sampler.sample(h, w, rng, image=image, segmentation=seg)
        fixed = sampler.fixed_masks(h, w) if sampler.is_fixed else []
    except UserError as e:             # only the broken mask file may fail, and it is named
        assert_one_line(e)
        assert "broken.png" in str(e)
        return
    assert family in sampler.families
    for m in [mask] + [m for m, _ in fixed]:
        assert m.dtype == np.float32 and m.shape == (h, w) and np.isin(m, (0.0, 1.0)).all()


# --------------------------------------------------------------------------------- mask families

@FUZZ
@given(family=st.sampled_from(sorted(set(F.FAMILIES) - {"file"})),
       h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       arg=st.one_of(st.none(), st.sampled_from(ARGS[:13]), st.text(max_size=6)),
       image_kind=st.sampled_from(["noise", "flat", "gradient"]),
       seg_kind=st.sampled_from(["random", "none", "all", "empty"]))
def test_mask_family_parameters(family, h, w, seed, arg, image_kind, seg_kind):
    """Any size from 1 px, any seed, any arg, any image/segmentation content: a binary mask or a
    one-line UserError; the coverage promises hold from 64 px up (masks.py's docstring)."""
    rng = np.random.default_rng(seed)
    image = {"noise": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
             "flat": lambda: np.full((h, w, 3), 128, np.uint8),
             "gradient": lambda: np.broadcast_to(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None],
                                                 (h, w, 3)).copy()}[image_kind]()
    seg = {"random": lambda: rng.integers(0, 2, (h, w), dtype=np.uint8), "none": lambda: None,
           "all": lambda: np.ones((h, w), np.uint8), "empty": lambda: np.zeros((h, w), np.uint8)}[seg_kind]()
    if family not in ("impa", "segmentation"):
        arg = None                     # the others take no argument (parse_spec refuses one)
    try:
        m = F.FAMILIES[family](h, w, np.random.default_rng(seed), image=image, segmentation=seg, arg=arg)
    except UserError as e:
        assert_one_line(e)
        assert arg is not None or (family == "segmentation" and seg is None)
        return
    assert isinstance(m, np.ndarray) and m.dtype == np.float32 and m.shape == (h, w)
    assert np.isin(m, (0.0, 1.0)).all()
    lo, hi = F.COVERAGE[family]
    if family in S.RANDOM_FAMILIES and h * w >= 64:
        assert lo <= m.mean() <= hi, (family, h, w, m.mean())
    if family == "impa" and h % 4 == 0 and w % 4 == 0:
        assert m.mean() == 0.5
    if family == "segmentation" and seg_kind in ("all", "empty") and arg in (None, "foreground"):
        assert m.mean() == (1.0 if seg_kind == "all" else 0.0)


# --------------------------------------------------------------------------------- config

KEYS = [f"{f.name}.{k}" for f in fields(Config) if f.name != "preset"
        for k in asdict(getattr(Config(), f.name))]
VALUES = ["true", "no", "auto", "nan", "inf", "-inf", "1e309", "0", "-1", "32", "64", "100", "impa:1",
          "file=/no/such", "", " ", "\x00", "\n", "1_000", "0x10", "١٢", "fp32", "quickstart", "seed"]


@FUZZ
@given(pairs=st.lists(st.tuples(
    st.one_of(st.sampled_from(KEYS), st.sampled_from(["config", "resume", "steps", "device", "train.",
                                                      "..", "train.steps.x", "preset", "a\nb"]),
              st.text(max_size=10)),
    st.one_of(st.sampled_from(VALUES), st.text(max_size=12), st.integers(-10**20, 10**20).map(str),
              st.floats().map(repr)),
    st.booleans()), max_size=4))
def test_config_overrides(pairs):
    """Random `--key value` / `--key=value` pairs: a valid Config or a one-line ConfigError."""
    argv = []
    for key, value, joined in pairs:
        argv += [f"--{key}={value}"] if joined else [f"--{key}", value]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            cfg = load_config(argv)
        except ConfigError as e:
            return assert_one_line(e)
        except SystemExit as e:        # --help among the random keys
            assert e.code == 0 and "--help" in argv
            return
    assert isinstance(cfg, Config)
    assert cfg.data.size % 32 == 0 and cfg.train.lr_g > 0 and cfg.train.lr_d > 0
    assert cfg.train.steps >= 1 and 0 < cfg.model.width <= 8
    M.MaskSampler(cfg.masks.train)     # what validate accepted is usable


# --------------------------------------------------------------------------------- images

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n4 4\n255\n", b"\x00\x00\x01\x00", b"8BPS"]


def check_read(path):
    """read_image -> (rgb uint8 (H,W,3), bool) or None for a BadImageError; nothing else."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # PIL's own "corrupt EXIF" chatter is not an error
        try:
            rgb, was_gray = read_image(path)
        except BadImageError as e:
            assert_one_line(e)
            assert os.fspath(path) in str(e)
            return None
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
    assert rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 1 and isinstance(was_gray, bool)
    return rgb


@FUZZ
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=400),
       ext=st.sampled_from([".png", ".jpg", ".tif", ".webp", ".bin"]))
def test_read_image_random_bytes(files, magic, tail, ext):
    path = files / f"random{ext}"
    path.write_bytes(magic + tail)
    check_read(path)


MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]
FORMATS = {"PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"], "JPEG": ["L", "RGB", "CMYK"],
           "TIFF": MODES, "BMP": ["1", "L", "P", "RGB"], "GIF": ["L", "P"], "WEBP": ["RGB", "RGBA"]}


def random_image(mode, h, w, rng):
    if mode == "F":   # floats in [0, 1] or [0, 255], with the odd NaN / inf
        a = rng.normal(0.5, 0.4, (h, w)).astype(np.float32) * rng.choice([1, 255])
        a.flat[rng.integers(h * w)] = rng.choice([np.nan, np.inf, -np.inf, 0.5])
        return Image.fromarray(a)
    if mode == "I":
        return Image.fromarray(rng.integers(-70_000, 70_000, (h, w), dtype=np.int32))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8)).convert(mode)


@FUZZ
@given(data=st.data(), h=st.integers(1, 24), w=st.integers(1, 24), seed=st.integers(0, 2**32 - 1),
       damage=st.sampled_from(["none", "truncate", "flip"]))
def test_read_image_every_mode(files, data, h, w, seed, damage):
    """A real image in mode 1/L/LA/P/RGB/RGBA/CMYK/I;16/I/F comes back as (h, w, 3) uint8; a
    damaged one as an image or a BadImageError."""
    fmt = data.draw(st.sampled_from(sorted(FORMATS)), label="format")
    mode = data.draw(st.sampled_from(FORMATS[fmt]), label="mode")
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    try:
        random_image(mode, h, w, rng).save(buf, fmt)
    except OSError:     # this Pillow cannot write the pair (Pillow 12 dropped 32-bit 'I' PNGs)
        reject()
    raw = bytearray(buf.getvalue())
    if damage == "truncate":
        raw = raw[: int(rng.integers(0, len(raw)))]
    elif damage == "flip":
        raw[int(rng.integers(len(raw)))] ^= 0xFF
    path = files / f"img.{fmt.lower()}"
    path.write_bytes(bytes(raw))
    rgb = check_read(path)
    if damage == "none":
        assert rgb is not None and rgb.shape == (h, w, 3), (fmt, mode)


# --------------------------------------------------------------------------------- colorize CLI

@pytest.fixture(scope="module")
def colorize_checkpoint(tmp_path_factory):
    colorize = pytest.importorskip("gan_colorize.apps.colorize_cli")
    if not callable(getattr(colorize, "main", None)):
        pytest.skip("gan_colorize.colorize has no main() yet")
    from conftest import hand_made_checkpoint
    path = hand_made_checkpoint(tmp_path_factory.mktemp("ck") / "tiny.pt", "--config", "quickstart",
                                "--model.width", "0.25", "--data.size", "32", ab_bias=None)
    return colorize.main, path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["image", "image", "truncated", "bytes"]), mode=st.sampled_from(MODES),
       h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**31),
       blob=st.binary(max_size=200), mask=st.sampled_from(["impa=0", "brush:1,rect:1", "file", "junk"]))
def test_colorize_cli_on_random_files(colorize_checkpoint, files, kind, mode, h, w, seed, blob, mask):
    """Exit 0 with an (h, w) colour PNG, or exit 2 with one `error:` line; never a traceback."""
    import torch
    main, ck = colorize_checkpoint
    fmt = "TIFF" if mode in ("CMYK", "I", "F") else "PNG"
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    random_image(mode, h, w, rng).save(buf, fmt)
    raw = {"image": buf.getvalue(), "truncated": buf.getvalue()[: len(buf.getvalue()) // 2],
           "bytes": blob}[kind]
    d = files / "cli"
    d.mkdir(exist_ok=True)
    inp = d / f"in.{fmt.lower()}"
    inp.write_bytes(raw)
    if mask == "file":
        mask = str(d / "m.png")
        Image.fromarray((rng.integers(0, 2, (7, 9)) * 255).astype(np.uint8)).save(mask)
    elif mask == "junk":
        mask = str(d / "m.png")
        (d / "m.png").write_bytes(blob)
    out = d / f"out{seed}"
    err, so = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(so), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = main(["--checkpoint", str(ck), "--mask", mask, "--out", str(out),
                             "--device", "cpu", "--precision", "fp32", str(inp)])
            except SystemExit as e:
                code = e.code
    finally:
        torch.set_num_threads(threads)
    text = err.getvalue()
    assert "Traceback" not in text and code in (0, 2), (code, text)
    if code == 0:
        o = np.asarray(Image.open(out / "in_color.png"))
        assert o.dtype == np.uint8 and o.ndim == 3 and o.shape[2] == 3
        if kind == "image":
            assert o.shape[:2] == (h, w)
    else:
        assert len([line for line in text.splitlines() if line.startswith("error:")]) == 1, text
