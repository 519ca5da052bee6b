"""evaluate.py: metrics.json layout, baselines, reproducibility, mask folders, optional extras."""
import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gan_colorize.apps import evaluate_cli
from gan_colorize.eval import evaluation
from conftest import hand_made_checkpoint
from gan_colorize.core.config import from_dict
from gan_colorize.eval.metrics import METRIC_NAMES

SPEC = "impa:1,stripes:1"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A hand-made checkpoint laid out like trainer.make_state (g_ema, config, step): a width-0.25
    generator whose output bias paints strong colour everywhere, so leaks are far from 0."""
    root = tmp_path_factory.mktemp("eval")
    return hand_made_checkpoint(root / "run" / "checkpoints" / "latest.pt", "--model.width", "0.25",
                                "--data.size", "64", "--data.workers", "0", "--data.cache_dir",
                                root / "cache", "--eval.masks", SPEC, step=7)


@pytest.fixture(autouse=True)
def _empty_hub(tmp_path, monkeypatch):
    # torch.hub.get_dir() follows TORCH_HOME: an empty one means "no weights on this machine"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


def _run(ckpt, out, *argv):
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu",
                            *argv]) == 0
    return json.loads((out / "metrics.json").read_text())


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_layout_baselines_and_outputs(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rep = _run(ckpt, out, "--eval.batch_size", "2")
    cap = capsys.readouterr()

    assert set(rep["results"]) == {"model", "gray", "oracle"}
    for source, groups in rep["results"].items():
        assert "overall" in groups and set(groups) - {"overall"} <= {"impa", "stripes"}
        assert sum(groups[f]["n"] for f in groups if f != "overall") == groups["overall"]["n"] == 5
        for vals in groups.values():
            assert set(METRIC_NAMES) <= set(vals)
    assert rep["step"] == 7 and rep["split"] == "test" and rep["masks"] == SPEC
    assert rep["seed"] == 0 and rep["n_samples"] == 5 and rep["size"] == 64
    assert rep["checkpoint"].endswith("latest.pt") and rep["extras"] == []
    assert from_dict(rep["config"]).eval.batch_size == 2

    res = rep["results"]
    assert res["oracle"]["overall"]["leak"] == 0 and res["oracle"]["overall"]["leak_px"] == 0
    assert res["oracle"]["overall"]["fill"] == pytest.approx(1, abs=1e-9)
    assert res["oracle"]["overall"]["psnr_in"] == pytest.approx(100)
    assert res["gray"]["overall"]["fill"] == 0 and res["gray"]["overall"]["leak"] == 0
    assert res["model"]["overall"]["leak"] > 20           # the biased model paints outside

    rows = _rows(out / "metrics.csv")
    assert [r["source"] for r in rows].count("model") == len(res["model"])
    assert list(rows[0])[:3] == ["source", "group", "n"] and set(METRIC_NAMES) <= set(rows[0])
    assert len(_rows(out / "per_sample.csv")) == 5
    assert from_dict(json.loads((out / "config.json").read_text())).model.width == 0.25
    w, h = Image.open(out / "sheet.png").size
    assert w == 4 * 64 + 5 * 2 and h == 5 * 64 + 6 * 2    # 5 samples: gray | mask | out | desired

    table = [ln for ln in cap.out.splitlines() if ln.split()[:2] in (["model", "overall"],
                                                                    ["gray", "overall"],
                                                                    ["oracle", "overall"])]
    assert len(table) == 3
    notes = [ln for ln in cap.err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1
    assert "inception_v3_google-0cc3c7bd.pth" in notes[0] and "pip install lpips" in notes[0]
    assert "alexnet-owt-7be5be79.pth" in notes[0] and "hub" in notes[0]


def test_same_numbers_twice_and_for_any_batch_size(ckpt, tmp_path):
    small = ("--eval.size", "32")   # a cheaper crop: the point here is determinism
    a = _run(ckpt, tmp_path / "a", "--eval.batch_size", "2", *small)["results"]
    b = _run(ckpt, tmp_path / "b", "--eval.batch_size", "2", *small)["results"]
    c = _run(ckpt, tmp_path / "c", "--eval.batch_size", "5", *small)["results"]
    assert a == b
    assert (tmp_path / "a" / "per_sample.csv").read_text() == (tmp_path / "b" / "per_sample.csv").read_text()
    assert set(a) == set(c)
    for source in a:
        assert set(a[source]) == set(c[source])
        for group in a[source]:
            for k, v in a[source][group].items():
                w = c[source][group][k]
                assert (v is None and w is None) or v == pytest.approx(w, rel=1e-5, abs=1e-6), (source, group, k)
    d = _run(ckpt, tmp_path / "d", "--eval.seed", "1", *small)       # another seed, other masks
    assert [r["coverage"] for r in _rows(tmp_path / "d" / "per_sample.csv")] != \
        [r["coverage"] for r in _rows(tmp_path / "a" / "per_sample.csv")]


def test_pairing_all_scores_every_image_with_every_impa_mask(ckpt, tmp_path):
    # the checkpoint trained on a random mix (not fixed): pairing=all must still work for impa
    rep = _run(ckpt, tmp_path / "all", "--eval.masks", "impa:1", "--masks.pairing", "all",
               "--eval.size", "32", "--eval.batch_size", "7")
    one = _run(ckpt, tmp_path / "one", "--eval.masks", "impa:1", "--eval.size", "32")
    n_images = one["results"]["model"]["overall"]["n"]
    assert rep["results"]["model"]["overall"]["n"] == 10 * n_images
    rows = _rows(tmp_path / "all" / "per_sample.csv")
    assert all(float(r["coverage"]) == 0.5 for r in rows)


def test_mask_folder_takes_file_i_mod_n_and_default_out(ckpt, tmp_path, capsys):
    folder = tmp_path / "my_masks"
    folder.mkdir()
    left = np.zeros((32, 48), np.uint8)
    left[:, :24] = 255
    for name, m in (("0_full.png", np.full((32, 48), 255, np.uint8)),
                    ("1_empty.png", np.zeros((32, 48), np.uint8)), ("2_left.png", left)):
        Image.fromarray(m).save(folder / name)
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--device", "cpu",
                            "--eval.masks", str(folder), "--eval.batch_size", "3"]) == 0
    out = ckpt.parents[1] / "eval" / "test-my_masks"
    rep = json.loads((out / "metrics.json").read_text())
    assert set(rep["results"]["model"]) == {"overall", "file"} and rep["families"] == ["file"]
    rows = _rows(out / "per_sample.csv")
    assert [r["family"] for r in rows] == ["file"] * 5
    assert [float(r["coverage"]) for r in rows] == [1, 0, 0.5, 1, 0]
    assert rep["results"]["oracle"]["file"]["leak"] == 0
    assert rep["results"]["gray"]["file"]["fill"] == 0


def test_fid_from_a_local_weights_file(ckpt, tmp_path, monkeypatch, capsys):
    from torchvision.models import inception_v3
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)   # random weights in the official file name: exercises the code path
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), hub / "inception_v3_google-0cc3c7bd.pth")
    rep = _run(ckpt, tmp_path / "out", "--eval.max_samples", "2", "--eval.batch_size", "2")
    assert rep["extras"] == ["fid"] and "fid" in rep["metrics"]
    fid = {s: rep["results"][s]["overall"]["fid"] for s in ("model", "gray", "oracle")}
    assert all(v is not None and math.isfinite(v) for v in fid.values())
    assert abs(fid["oracle"]) < 1e-3 * max(fid["model"], fid["gray"])
    assert "fid" in _rows(tmp_path / "out" / "metrics.csv")[0]
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "LPIPS" in notes[0] and "FID" not in notes[0]


@pytest.mark.parametrize("argv, message", [
    ([], "--checkpoint is required"),
    (["--checkpoint", "nope.pt"], "checkpoint not found"),
    (["--checkpoint", "CKPT", "--eval.nope", "1"], "eval.nope: unknown config key"),
    (["--checkpoint", "CKPT", "--eval.split", "dev"], "eval.split"),
    (["--checkpoint", "CKPT", "--model.width", "1.0"], "cannot be overridden"),
    (["--checkpoint", "CKPT", "--config", "quickstart"], "--config"),
    (["--checkpoint", "CKPT", "--eval.masks", "impa:x"], "eval.masks"),
])
def test_errors_are_one_line(ckpt, argv, message, capsys):
    argv = [str(ckpt) if a == "CKPT" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        evaluate_cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


# ---------------------------------------------------------------------------------------------
# colour hints: --hints.eval scores several hint counts on the same samples and masks

@pytest.fixture(scope="module")
def hint_ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval_hints")
    return hand_made_checkpoint(root / "run" / "checkpoints" / "latest.pt", "--model.width", "0.25",
                                "--data.size", "64", "--data.workers", "0", "--data.cache_dir",
                                root / "cache", "--hints.enabled", "true", ab_bias=None)


def test_hint_counts_are_scored_on_the_same_samples(hint_ckpt, tmp_path):
    out = tmp_path / "h"
    rep = _run(hint_ckpt, out, "--hints.eval", "0,2,5", "--eval.masks", "impa:1")
    assert rep["hints"] == [0, 2, 5] and set(rep["by_hints"]) == {"0", "2", "5"}
    assert rep["results"]["model"] == rep["by_hints"]["0"]
    zero, five = rep["by_hints"]["0"]["overall"], rep["by_hints"]["5"]["overall"]
    assert zero["n"] == five["n"] == 5
    assert zero["hint_err"] is None or math.isnan(zero["hint_err"])   # nothing hinted
    assert math.isfinite(five["hint_err"]) and five["hint_err"] >= 0
    assert zero["psnr_in"] != five["psnr_in"]                  # the hints reached the model
    rows = _rows(out / "metrics.csv")
    assert [r["hints"] for r in rows if r["source"] == "model" and r["group"] == "overall"] == \
        ["0", "2", "5"]
    assert {r["hints"] for r in _rows(out / "per_sample.csv")} == {"0", "2", "5"}
    # the same hints for any batch size (drawn per sample from (eval.seed, index))
    again = _run(hint_ckpt, tmp_path / "h1", "--hints.eval", "0,2,5", "--eval.masks", "impa:1",
                 "--eval.batch_size", "1")
    for c in ("0", "2", "5"):
        for k, v in rep["by_hints"][c]["overall"].items():
            w = again["by_hints"][c]["overall"][k]
            if v is None or w is None:        # undefined (hint_err at 0 hints is null in JSON)
                assert v is None and w is None, (c, k, v, w)
            elif v != v or w != w:            # NaN: pytest.approx never equals it
                assert v != v and w != w, (c, k, v, w)
            else:
                assert v == pytest.approx(w, rel=1e-5, abs=1e-6), (c, k)


def test_hints_for_a_checkpoint_without_hints_are_refused(ckpt, capsys):
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--checkpoint", str(ckpt), "--hints.eval", "0,1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hints.eval" in err[0] and "without colour hints" in err[0]


def test_bsds500_scored_under_object_masks(ckpt, bsds_tree, tmp_path):
    """evaluate.py --data.name bsds500 --eval.masks segmentation:1: each photo with its human
    annotations gets an object mask (1-3 segments of one annotation, 5-70% of the crop)."""
    rep = _run(ckpt, tmp_path / "out", "--data.name", "bsds500", "--data.root", str(bsds_tree),
               "--eval.masks", "segmentation:1")
    assert rep["n_samples"] == 3 and rep["families"] == ["segmentation"]   # no .mat, no sample
    assert rep["results"]["model"]["overall"]["n"] == 3
    rows = _rows(tmp_path / "out" / "per_sample.csv")
    assert [r["key"] for r in rows] == [f"images/test/{n}.jpg" for n in (100, 101, 102)]
    assert all(0.05 <= float(r["coverage"]) <= 0.70 for r in rows)
    _run(ckpt, tmp_path / "again", "--data.name", "bsds500", "--data.root", str(bsds_tree),
         "--eval.masks", "segmentation:1", "--eval.batch_size", "1")
    again = _rows(tmp_path / "again" / "per_sample.csv")   # the same masks for any batch size
    assert [r["coverage"] for r in again] == [r["coverage"] for r in rows]
