"""hint_fill.py: the pushpull input of hint models, and the mean / nearest / Levin baselines;
hints.fill in the generator, growing a model from one without it (train.init_from)."""
import json
import math

import pytest
import torch

from conftest import hand_made_checkpoint
from gan_colorize.apps import evaluate_cli
from gan_colorize.eval import evaluation
from gan_colorize.model.checkpoint import CheckpointError, grow_into
from gan_colorize.core.config import ConfigError
from gan_colorize.core.parser import load_config
from gan_colorize.model.hint_fill import baseline_fills, levin_fill, mean_fill, nearest_fill, pushpull
from gan_colorize.model.networks import Generator

RED, BLUE = (0.4, 0.3), (0.1, -0.5)   # ab / 110


def hints_at(points, n=1, h=32, w=32):
    """points [(row, col, (a, b))] -> hint_ab (n,2,h,w), hint_mask (n,1,h,w)."""
    hint_ab, hint_mask = torch.zeros(n, 2, h, w), torch.zeros(n, 1, h, w)
    for r, c, ab in points:
        hint_ab[:, :, r, c] = torch.tensor(ab)
        hint_mask[:, :, r, c] = 1
    return hint_ab, hint_mask


def test_pushpull_one_hint_fills_everything_with_its_colour():
    hint_ab, hint_mask = hints_at([(5, 20, RED)])
    fill, near = pushpull(hint_ab, hint_mask)
    assert torch.allclose(fill, torch.tensor(RED).view(1, 2, 1, 1).expand_as(fill), atol=1e-6)
    assert near[0, 0, 5, 20] == 1 and near.min() > 0
    assert near[0, 0, 5, 21] > near[0, 0, 31, 0]     # nearer the hint, nearer 1


def test_pushpull_keeps_each_hint_and_nothing_without_hints():
    hint_ab, hint_mask = hints_at([(4, 4, RED), (27, 27, BLUE)], n=2)
    hint_ab[1], hint_mask[1] = 0, 0                   # the second sample has no hint
    fill, near = pushpull(hint_ab, hint_mask)
    assert torch.allclose(fill[0, :, 4, 4], torch.tensor(RED))
    assert torch.allclose(fill[0, :, 27, 27], torch.tensor(BLUE))
    # nearer one hint than the other: nearer its colour (bilinear blending between cells)
    red, blue = torch.tensor(RED), torch.tensor(BLUE)
    assert (fill[0, :, 6, 5] - red).norm() < (fill[0, :, 6, 5] - blue).norm() / 4
    assert (fill[0, :, 25, 26] - blue).norm() < (fill[0, :, 25, 26] - red).norm() / 4
    assert fill[1].abs().max() == 0 and near[1].abs().max() == 0


@pytest.mark.parametrize("fn", [mean_fill, nearest_fill,
                                lambda a, m, k: levin_fill(a, m, k, torch.zeros(1, 1, 32, 32))])
def test_baselines_stay_in_the_mask_and_keep_a_lone_hint(fn):
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :20] = 1
    hint_ab, hint_mask = hints_at([(10, 10, RED)])
    fill = fn(hint_ab, hint_mask, mask)
    assert fill[..., 20:].abs().max() == 0                                     # gray outside
    inside = fill[0][:, mask[0, 0] > 0]
    assert torch.allclose(inside, torch.tensor(RED)[:, None].expand_as(inside), atol=1e-4)
    assert fn(torch.zeros_like(hint_ab), torch.zeros_like(hint_mask), mask).abs().max() == 0


def test_mean_and_nearest_known_answers():
    hint_ab, hint_mask = hints_at([(2, 2, RED), (2, 29, BLUE)])
    mask = torch.ones(1, 1, 32, 32)
    mean = mean_fill(hint_ab, hint_mask, mask)
    assert torch.allclose(mean[0, :, 20, 20], (torch.tensor(RED) + torch.tensor(BLUE)) / 2)
    near = nearest_fill(hint_ab, hint_mask, mask)
    assert torch.allclose(near[0, :, 30, 5], torch.tensor(RED))
    assert torch.allclose(near[0, :, 30, 26], torch.tensor(BLUE))


def test_levin_follows_edges_of_the_lightness_where_nearest_does_not():
    """Dark left half, bright right half; a red hint in the dark half 5 px from a pixel of the
    bright half, a blue hint in the bright half 13 px from it: nearest paints it red, Levin blue."""
    gray = torch.full((1, 1, 32, 32), -0.8)
    gray[..., 16:] = 0.8
    hint_ab, hint_mask = hints_at([(16, 12, RED), (16, 30, BLUE)])
    mask = torch.ones(1, 1, 32, 32)
    px = (16, 17)
    assert torch.allclose(nearest_fill(hint_ab, hint_mask, mask)[0, :, px[0], px[1]], torch.tensor(RED))
    lev = levin_fill(hint_ab, hint_mask, mask, gray)[0, :, px[0], px[1]]
    assert torch.allclose(lev, torch.tensor(BLUE), atol=0.02), lev
    assert set(baseline_fills(gray, hint_ab, hint_mask, mask)) == {"mean", "nearest", "levin"}


@pytest.mark.parametrize("fill", ["input", "residual"])
def test_a_model_grown_with_a_fill_starts_as_the_model_it_grew_from(fill):
    torch.manual_seed(0)
    old = Generator("unet11", 0.25, hints=True).eval()
    new = Generator("unet11", 0.25, hints=True, hint_fill=fill).eval()
    changed = grow_into(new, old.state_dict())
    assert any("stem_hint.weight (3 -> 6 inputs)" in c for c in changed)
    gray, mask = torch.rand(2, 1, 64, 64) * 2 - 1, (torch.rand(2, 1, 64, 64) > 0.5).float()
    hint_ab, hint_mask = hints_at([(8, 8, RED), (40, 50, BLUE)], n=2, h=64, w=64)
    hint_mask *= mask
    hint_ab *= hint_mask
    with torch.no_grad():
        assert torch.allclose(new(gray, mask, hint_ab, hint_mask), old(gray, mask, hint_ab, hint_mask),
                              atol=1e-6)
        if fill == "residual":   # the gain opens the fill's path to the output
            new.fill_gain.fill_(1.0)
            assert not torch.allclose(new(gray, mask, hint_ab, hint_mask),
                                      old(gray, mask, hint_ab, hint_mask), atol=1e-3)


def test_grow_into_refuses_other_shape_changes():
    with pytest.raises(CheckpointError, match="cannot grow"):
        grow_into(Generator("unet11", 0.5, hints=True), Generator("unet11", 0.25, hints=True).state_dict())


@pytest.mark.parametrize("argv, message", [
    (["--hints.fill", "input"], "needs hints.enabled true"),
    (["--hints.enabled", "true", "--hints.fill", "fancy"], "is not one of none"),
    (["--hints.baselines", "mean,oracle"], "hints.baselines"),
])
def test_bad_hint_settings_are_refused(argv, message):
    with pytest.raises(ConfigError, match=message):
        load_config(argv, check_paths=False)


def test_evaluate_scores_the_baselines_on_the_model_s_hints(tmp_path):
    ckpt = hand_made_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt", "--model.width",
                                "0.25", "--data.size", "64", "--data.workers", "0",
                                "--data.cache_dir", tmp_path / "cache", "--hints.enabled", "true",
                                "--hints.fill", "input", ab_bias=None)
    out = tmp_path / "eval"
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--out", str(out), "--device", "cpu",
                            "--hints.eval", "0,3", "--eval.masks", "impa:1"]) == 0
    rep = json.loads((out / "metrics.json").read_text())
    assert set(rep["baselines"]) == {"mean", "nearest", "levin"}
    for name, by_count in rep["baselines"].items():
        assert set(by_count) == {"3"}                 # none at 0 hints: nothing to spread
        row = by_count["3"]["overall"]
        assert row["n"] == rep["by_hints"]["3"]["overall"]["n"] == 5
        assert row["leak"] == 0 and math.isfinite(row["psnr_in"])
        # spreading the true colour of hints beats gray inside the mask
        assert row["psnr_in"] > rep["results"]["gray"]["overall"]["psnr_in"]
    assert "levin@3" in (out / "metrics.csv").read_text().replace(",3,", "@3,") or \
        any(line.startswith("levin,") for line in (out / "metrics.csv").read_text().splitlines())
