"""dedup.py: the crop-tolerant perceptual hash, the duplicate list and its command."""
import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from conftest import SHARED
from gan_colorize.data import dedup
from gan_colorize.core.errors import UserError

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photo(name):
    return np.ascontiguousarray(getattr(skdata, name)()[..., :3])


def jpeg(rgb, quality):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def variants(rgb):
    """What a dataset does to a photo: resize, recompress, crop (to one of the hash's window
    sizes: 85% or 70% of a side, or a few px), tone changes."""
    h, w = rgb.shape[:2]
    small = np.asarray(Image.fromarray(rgb).resize((w * 224 // min(h, w), h * 224 // min(h, w)),
                                                   Image.LANCZOS))
    return {
        "resized": small,
        "jpeg q20": jpeg(small, 20),
        "crop 85% centre": rgb[h // 13:h - h // 13, w // 13:w - w // 13],
        "crop 70% corner": rgb[:h * 7 // 10, w * 3 // 10:],
        "narrower, 85%": rgb[:, w * 3 // 20:],
        "borders trimmed": rgb[5:-9, 12:-3],
        "brighter": np.clip(rgb.astype(int) * 1.15 + 10, 0, 255).astype(np.uint8),
        "gray": np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, 2),
    }


@pytest.fixture(scope="module")
def hashes():
    return {name: dedup.window_hashes(photo(name)) for name in PHOTOS}


def test_hash_layout(hashes):
    h = hashes["astronaut"]
    assert h.dtype == np.uint8 and h.shape == (49, 32)
    bits = np.unpackbits(h, axis=1)
    assert (bits[:, dedup.HASH_BITS:] == 0).all()                       # 255 bits used
    assert (bits.sum(1) == dedup.HASH_BITS // 2).all()                  # median split
    assert np.array_equal(dedup.window_hashes(photo("astronaut")), h)   # deterministic
    gray = np.asarray(Image.fromarray(photo("astronaut")).convert("L"))
    assert dedup.distance(dedup.window_hashes(gray), h) <= 4            # (h, w) arrays too


def test_copies_match(hashes):
    for name in PHOTOS[:4]:
        for what, img in variants(photo(name)).items():
            d = dedup.distance(dedup.window_hashes(img), hashes[name])
            # a crop between two window sizes (trimmed borders: 2-5%) costs the most bits
            assert d <= (dedup.DUPLICATE_BITS if what == "borders trimmed" else 12), (name, what, d)


def test_different_photos_do_not_match(hashes):
    names = list(hashes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert dedup.distance(hashes[a], hashes[b]) > dedup.DUPLICATE_BITS, (a, b)
    rng = np.random.default_rng(0)   # smooth random scenes: alike in kind, not copies
    noise = [np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
                        .resize((320, 240), Image.BICUBIC)) for _ in range(6)]
    h = np.stack([dedup.window_hashes(x) for x in noise])
    idx, dist = dedup.nearest(h, h)
    assert (idx == np.arange(6)).all() and (dist == 0).all()
    d = [dedup.distance(h[i], h[j]) for i in range(6) for j in range(i + 1, 6)]
    assert min(d) > dedup.DUPLICATE_BITS, d


def test_command_writes_the_list(tmp_path, capsys):
    r17, r102 = tmp_path / "f17", tmp_path / "f102"
    (r17 / "jpg").mkdir(parents=True)
    (r102 / "jpg").mkdir(parents=True)
    for k, name in enumerate(("astronaut", "coffee", "chelsea"), 1):
        Image.fromarray(photo(name)).save(r17 / "jpg" / f"image_{k:04d}.jpg", quality=90)
    v = variants(photo("coffee"))
    Image.fromarray(v["crop 70% corner"]).save(r102 / "jpg" / "image_00001.jpg", quality=85)
    Image.fromarray(photo("rocket")).save(r102 / "jpg" / "image_00002.jpg", quality=85)
    Image.fromarray(v["resized"]).save(r102 / "jpg" / "image_00003.jpg", quality=50)
    out = tmp_path / "list.txt"
    assert dedup.main(["--flowers17", str(r17), "--flowers102", str(r102), "--out", str(out),
                       "--workers", "1"]) == 0
    assert "2 of 3 Flowers102 images are near-duplicates" in capsys.readouterr().out
    dups = dedup.read_duplicates(out)
    assert sorted(dups) == [1, 3] and dups[1][0] == dups[3][0] == 2
    with pytest.raises(SystemExit) as exc:
        dedup.main(["--flowers17", str(tmp_path), "--flowers102", str(r102)])
    assert exc.value.code == 2
    assert "has no jpg/image_NNNN.jpg" in capsys.readouterr().err


def test_bad_list_and_bad_file_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("# fine\nimage_00001.jpg image_0001.jpg 3\nimage_1.jpg x 3\n")
    with pytest.raises(UserError, match=r"bad.txt:3: expected") as err:
        dedup.read_duplicates(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="cannot read the duplicate list"):
        dedup.read_duplicates(tmp_path / "none.txt")
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="cannot read image .*x.jpg"):
        dedup.hash_file(tmp_path / "x.jpg")


def test_shipped_list():
    dups = dedup.read_duplicates()
    assert len(dups) == 563
    assert all(1 <= a <= 8189 and 1 <= b <= 1360 and 0 <= d <= dedup.DUPLICATE_BITS
               for a, (b, d) in dups.items())


@pytest.mark.skipif(not ((SHARED / "flowers17").is_dir() and (SHARED / "flowers102").is_dir()),
                    reason="no ../shared/datasets/flowers17 and flowers102 here")
def test_shipped_list_matches_the_real_images():
    """Spot checks: listed pairs (over the range of distances) hash as listed; a few images of
    species that Flowers17 lacks are far from every Flowers17 image."""
    dups = dedup.read_duplicates()
    by_distance = sorted(dups.items(), key=lambda kv: (kv[1][1], kv[0]))
    for a, (b, d) in by_distance[::70] + by_distance[-3:]:
        h102 = dedup.hash_file(SHARED / "flowers102" / "jpg" / f"image_{a:05d}.jpg")
        h17 = dedup.hash_file(SHARED / "flowers17" / "jpg" / f"image_{b:04d}.jpg")
        assert dedup.distance(h102, h17) == d, (a, b)
    f17 = np.stack([dedup.hash_file(SHARED / "flowers17" / "jpg" / f"image_{k:04d}.jpg")
                    for k in range(1, 1361, 9)])
    pink_primrose = [1, 2, 3, 4]  # class 1 of Flowers102, not a Flowers17 species
    f102 = np.stack([dedup.hash_file(SHARED / "flowers102" / "jpg" / f"image_{k:05d}.jpg")
                     for k in pink_primrose])
    assert dedup.nearest(f102, f17)[1].min() > dedup.DUPLICATE_BITS


def test_dedup_command_line_is_the_config_parser(capsys):
    """The one parser: the old flags are shorthands of the dedup section; a missing required
    flag and a bad value are one line naming the flag; --help lists the keys."""
    from gan_colorize.core.parser import DEDUP, parse_tool
    cfg, _ = parse_tool(["--flowers17", "a", "--flowers102=b", "--threshold", "40", "--out", "o",
                         "--workers", "3"], DEDUP)
    assert (cfg.dedup.flowers17, cfg.dedup.flowers102, cfg.dedup.threshold, cfg.dedup.out,
            cfg.dedup.workers) == ("a", "b", 40, "o", 3)
    assert cfg.dedup.threshold != dedup.DUPLICATE_BITS
    assert parse_tool(["--dedup.flowers17", "a", "--flowers102", "b"], DEDUP)[0].dedup.threshold \
        == dedup.DUPLICATE_BITS                              # the config's default is the module's
    for argv, says in ((["--flowers102", "b"], "dedup.flowers17 (--flowers17): is required"),
                       (["--flowers17", "a", "--flowers102", "b", "--workers", "x"],
                        "dedup.workers (--workers): expected int")):
        with pytest.raises(SystemExit) as exc:
            dedup.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: ") and says in err, err
    with pytest.raises(SystemExit) as exc:
        dedup.main(["--help"])
    assert exc.value.code == 0 and "--flowers17 = --dedup.flowers17" in capsys.readouterr().out
