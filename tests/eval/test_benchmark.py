"""The benchmark: exported cases are evaluate.py's samples, the export is deterministic, the
scorer refuses incomplete folders, resizes outputs, and scores the hint fills it runs."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from gan_colorize.apps import benchmark_cli
from gan_colorize.core import color
from gan_colorize.core.config import Config, set_key
from gan_colorize.core.errors import UserError
from gan_colorize.core.imageio import read_rgb
from gan_colorize.data.hints import batch_fixed_hints, load_hints
from gan_colorize.eval.benchmark_cases import case_dataset, export_cases, gray_image
from gan_colorize.eval.benchmark_score import match_outputs, score
from gan_colorize.eval.benchmark_sets import set_keys
from conftest import colourful

COUNTS = "0,1,3"


def samples_config(cache_dir, **keys):
    cfg = Config()
    for k, v in set_keys("samples", set(keys)) + list(keys.items()):
        set_key(cfg, k, v)
    set_key(cfg, "data.cache_dir", str(cache_dir))
    set_key(cfg, "data.workers", "0")
    return cfg


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """The embedded photos' 5 cases at evaluate.py's 64 px, hints 0, 1 and 3."""
    root = tmp_path_factory.mktemp("bench")
    cfg = samples_config(root / "cache")
    export_cases(cfg, root / "cases", size=64, counts=COUNTS, set_name="samples", progress=False)
    return root / "cases", cfg


@pytest.fixture(scope="module")
def mean_outputs(cases, tmp_path_factory):
    out = tmp_path_factory.mktemp("mean") / "mean"
    benchmark_cli.run_fill(cases[0], out, "mean", progress=False)
    return out


def test_cases_are_evaluate_samples_masks_and_hints(cases):
    """At size 64 every case is evaluate.py's sample i: the same crop, mask and fixed hints."""
    folder, cfg = cases
    manifest = json.loads((folder / "manifest.json").read_text())
    ds, n = case_dataset(cfg, 64)
    assert n == len(manifest["cases"]) == 5 and manifest["hints"] == [0, 1, 3]
    for case in manifest["cases"]:
        i, cid = case["index"], case["id"]
        item = ds[i]
        rgb = item["rgb"].permute(1, 2, 0).numpy()
        assert np.array_equal(read_rgb(folder / "truth" / f"{cid}.png"), rgb)
        mask = read_rgb(folder / "masks" / f"{cid}.png")[..., 0] >= 128
        assert np.array_equal(mask, item["mask"][0].numpy() > 0.5)
        assert np.array_equal(read_rgb(folder / "gray" / f"{cid}.png")[..., 0], gray_image(rgb))
        _, ab = color.rgb_uint8_to_model(item["rgb"][None])
        for count in (1, 3):   # evaluate.py's hints of sample i, read back from the RGBA file
            want_ab, want_m = batch_fixed_hints(ab, item["mask"][None], [i], count, cfg.eval.seed)
            got_ab, got_m = load_hints(folder / "hints" / str(count) / f"{cid}.png", 64, 64)
            assert torch.equal(got_m, want_m[0]) and int(want_m.sum()) == case["hinted_px"][str(count)]
            assert (got_ab - want_ab[0]).abs().max() * 110 < 0.75   # 8-bit sRGB of the hint colour
        assert load_hints(folder / "hints" / "0" / f"{cid}.png", 64, 64)[1].sum() == 0


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_export_is_deterministic_at_full_resolution(tmp_path):
    """Two exports of the same set: the same files, byte for byte, and the md5s of the manifest
    are those of the files' pixels. Full resolution: each case is the image's centre square."""
    root = tmp_path / "photos"
    root.mkdir()
    for k, (h, w) in enumerate([(40, 56), (48, 36), (44, 44)]):
        Image.fromarray(colourful(h, w, k)).save(root / f"p{k}.png")
    cfg = samples_config(tmp_path / "cache", **{"data.name": "folder", "data.root": str(root)})
    a = export_cases(cfg, tmp_path / "a", size=0, counts="0,2", progress=False)
    b = export_cases(cfg, tmp_path / "b", size=0, counts="0,2", progress=False)
    assert a == b and _files(tmp_path / "a") == _files(tmp_path / "b")
    assert [c["shape"] for c in a["cases"]] == [[40, 40], [36, 36], [44, 44]]
    assert a["evaluate"] is None and a["resolution"] == "full"
    from gan_colorize.eval.benchmark_cases import pixels_md5
    c = a["cases"][1]
    assert pixels_md5(read_rgb(tmp_path / "a" / "truth" / f"{c['id']}.png")) == c["truth_md5"]
    assert pixels_md5(np.asarray(Image.open(tmp_path / "a" / "hints" / "2" / f"{c['id']}.png"))) \
        == c["md5"]["hints"]["2"]
    with pytest.raises(UserError, match="not an empty folder"):
        export_cases(cfg, tmp_path / "a", size=0, counts="0,2", progress=False)


def test_full_resolution_object_masks_follow_the_human_labels(bsds_tree, tmp_path):
    """BSDS500 at full resolution: the photo without annotations is left out as in evaluate.py,
    and each mask is a union of whole segments of one annotation of the full-size crop."""
    cfg = samples_config(tmp_path / "cache", **{"data.name": "bsds500", "data.root": str(bsds_tree),
                                                "eval.masks": "segmentation:1"})
    m = export_cases(cfg, tmp_path / "cases", size=0, counts="0", progress=False)
    assert [c["source"] for c in m["cases"]] == [f"images/test/{n}.jpg" for n in (100, 101, 102)]
    from conftest import bsds_labels
    for c in m["cases"]:
        h, w = (48, 72) if c["source"] != "images/test/101.jpg" else (72, 48)
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        mask = read_rgb(tmp_path / "cases" / "masks" / f"{c['id']}.png")[..., 0] >= 128
        assert mask.shape == (s, s) and c["family"] == "segmentation"
        whole = [all(len(np.unique(mask[lab == v])) == 1 for v in np.unique(lab))
                 for lab in (bsds_labels(h, w, k)[y:y + s, x:x + s] for k in range(3))]
        assert any(whole)


def test_missing_and_extra_files_are_refused_in_one_line(cases, mean_outputs, tmp_path):
    folder, _ = cases
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(match_outputs(mean_outputs, manifest)) == 15
    bad = tmp_path / "bad"
    for f in mean_outputs.rglob("*.png"):
        dest = bad / f.relative_to(mean_outputs)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    (bad / "3" / "00002.png").unlink()
    (bad / "3" / "notes.png").write_bytes(b"x")
    (bad / "7").mkdir()
    (bad / "7" / "00000.png").write_bytes(b"x")
    with pytest.raises(UserError) as err:
        match_outputs(bad, manifest)
    msg = str(err.value)
    assert "\n" not in msg and "1 missing (3/00002.png)" in msg
    assert "2 extra (3/notes.png, 7/00000.png)" in msg


def test_outputs_of_another_size_are_resized_to_the_case(cases, mean_outputs, tmp_path):
    """Outputs enlarged 3x (nearest) score as the originals: area averaging undoes it exactly."""
    big = tmp_path / "big"
    for f in mean_outputs.rglob("*.png"):
        im = Image.open(f)
        dest = big / f.relative_to(mean_outputs)
        dest.parent.mkdir(parents=True, exist_ok=True)
        jpeg = dest.parent.name == "1"   # one hint count as JPEG: any image format is read
        im.resize((im.width * 3, im.height * 3), Image.NEAREST).save(
            dest.with_suffix(".jpg") if jpeg else dest, quality=100)
    ref = score(cases[0], mean_outputs, tmp_path / "r0", progress=False, log=lambda *a, **k: None)
    rep = score(cases[0], big, tmp_path / "r1", progress=False, log=lambda *a, **k: None)
    assert rep["resized"] == 15 and ref["resized"] == 0
    for count in ("0", "3"):   # PNG: exact; the JPEG of count 1 is lossy
        a, b = (r["results"]["raw"][count]["overall"] for r in (ref, rep))
        assert a["psnr_in"] == pytest.approx(b["psnr_in"], abs=1e-6)
    a, b = (r["results"]["raw"]["1"]["overall"] for r in (ref, rep))
    assert abs(a["psnr_in"] - b["psnr_in"]) < 0.5


def test_the_hint_fills_enter_through_the_same_door(cases, mean_outputs, tmp_path, capsys):
    """fill writes <N>/<id>.png; score reads them: at 0 hints a fill is the gray input (gray's
    numbers), with one hint every fill is that hint's colour (mean = nearest = levin), and it
    never paints outside the mask."""
    folder, _ = cases
    nearest = tmp_path / "nearest"
    assert benchmark_cli.main(["fill", "--cases", str(folder), "--method", "nearest",
                               "--out", str(nearest)]) == 0
    reps = {}
    for name, outs in (("mean", mean_outputs), ("nearest", nearest)):
        assert benchmark_cli.main(["score", "--cases", str(folder), "--outputs", str(outs),
                                   "--out", str(tmp_path / name), "--name", name]) == 0
        reps[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert "mean@1 raw" in capsys.readouterr().out
    mean, near = reps["mean"]["results"], reps["nearest"]["results"]
    gray = mean["gray"]["overall"]
    assert mean["raw"]["0"]["overall"]["psnr_in"] == pytest.approx(gray["psnr_in"], abs=0.01)
    assert mean["raw"]["0"]["overall"]["fill"] < 0.01
    assert mean["raw"]["1"]["overall"]["psnr_in"] == pytest.approx(near["raw"]["1"]["overall"]["psnr_in"],
                                                                   abs=1e-9)
    assert mean["raw"]["3"]["overall"]["psnr_in"] != near["raw"]["3"]["overall"]["psnr_in"]
    for rep in (mean, near):
        for count in ("1", "3"):
            assert rep["raw"][count]["overall"]["leak"] < 0.01
    # on its hints a fill is the hint's colour, up to the 8-bit output and the gamut fit; the
    # mean of 3 hints is none of them
    assert near["raw"]["3"]["overall"]["hint_err"] < 1.0 and mean["raw"]["1"]["overall"]["hint_err"] < 1.0
    assert mean["raw"]["3"]["overall"]["hint_err"] > 3.0
    assert (tmp_path / "mean" / "sheet.png").is_file()
    rows = (tmp_path / "mean" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("source,variant,hints,group,n,leak")
    assert any(r.startswith("mean,composited,3,overall,5,0,") for r in rows)


def test_the_composited_row_is_what_scoring_the_composite_gives(cases):
    """The composited variant is derived, not scored again: its inside-only metrics must equal a
    real scoring of ab * mask, its outside ones 0, and the others are left out (NaN)."""
    from gan_colorize.eval.benchmark_score import INSIDE_ONLY, composited
    from gan_colorize.eval.scoring import score_outputs
    gen = torch.Generator().manual_seed(0)
    ab = torch.rand(2, 2, 32, 32, generator=gen) - 0.5
    gray = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 4:20] = 1
    out = torch.rand(2, 2, 32, 32, generator=gen) - 0.5
    _, m = score_outputs(gray, ab, mask, [out, out * mask])
    raw = {k: v[:2] for k, v in m.items()}
    real = {k: v[2:] for k, v in m.items()}
    derived = composited(raw)
    for name in INSIDE_ONLY[:-1]:
        assert torch.allclose(derived[name], real[name], atol=1e-9), name
    for name in ("leak", "leak_px", "edge_leak"):
        assert torch.equal(derived[name], real[name]) and (real[name] == 0).all()
    assert torch.isnan(derived["ssim_in"]).all() and not torch.isnan(real["ssim_in"]).any()
