"""Validation while training: fixed samples, known answers, the log rows and best.pt."""
import contextlib
import json
import math
import os

import pytest
import torch

from conftest import tiny_config
from gan_colorize.train import loop as train_loop
from gan_colorize.train import validation
from gan_colorize.core.config import ConfigError

MIX = "samples:1,samples:2"   # two parts without ../shared: labels samples and samples-2


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GAN_COLORIZE_TEST_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _tiny(*argv):
    return tiny_config(*argv, cache_dir=os.environ["GAN_COLORIZE_TEST_CACHE"])


class Fixed(torch.nn.Module):
    """A stand-in G: returns what `fn(gray, mask)` says, ignoring hints."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, gray, mask, *hints):
        return self.fn(gray, mask)


def _parts(*argv, samples=4):
    return validation.build_val_parts(_tiny(*argv), torch.device("cpu"), samples=samples)


def test_parts_are_fixed_and_one_per_dataset():
    parts = _parts("--data.mix", MIX, "--hints.enabled", "true", "--data.size", "64")
    again = _parts("--data.mix", MIX, "--hints.enabled", "true", "--data.size", "64")
    assert [p.label for p in parts] == ["samples", "samples-2"]
    for p, q in zip(parts, again):
        assert p.gray.shape[1:] == (1, 64, 64) and p.mask.shape == p.gray.shape
        assert set(p.hints) == {0, 10}
        assert torch.equal(p.mask, q.mask) and torch.equal(p.hints[10][1], q.hints[10][1])
        assert p.hints[0][1].sum() == 0 and p.hints[10][1].sum() > 0
        assert math.isfinite(p.gray_psnr_in)
    # without hints only 0 is scored
    assert set(_parts()[0].hints) == {0}


def test_gray_model_scores_zero_and_a_colour_model_scores_its_gain():
    parts = _parts("--data.mix", MIX)
    no_amp = contextlib.nullcontext
    gray = validation.score_parts(Fixed(lambda g, m: torch.zeros(g.shape[0], 2, *g.shape[2:])), parts, no_amp)
    assert gray["val/score"] == pytest.approx(0.0, abs=1e-9)
    assert gray["val/max_leak"] == 0.0
    for p in parts:
        assert gray[f"val/{p.label}/psnr_in@0"] == pytest.approx(p.gray_psnr_in)
        assert gray[f"val/{p.label}/fill@0"] == 0.0
        assert validation.eligible(gray)

    # half the true colour, inside the mask only: better than gray, no leak
    def half_truth(g, m):
        p = next(p for p in parts if p.gray.shape == g.shape and torch.equal(p.gray, g))
        return 0.5 * p.ab_real * p.mask
    row = validation.score_parts(Fixed(half_truth), parts, no_amp)
    assert row["val/score"] > 1.0 and row["val/max_leak"] == 0.0 and validation.eligible(row)

    # a constant colour everywhere: leaks, so it can never be best
    row = validation.score_parts(Fixed(lambda g, m: torch.full((g.shape[0], 2, *g.shape[2:]), 0.3)),
                              parts, no_amp)
    assert row["val/max_leak"] > validation.BEST_MAX_LEAK and not validation.eligible(row)
    assert "cannot be best" in validation.summary(row, parts, False)


def test_hint_model_rows_carry_the_baselines_and_the_margin_over_them():
    parts = _parts("--data.mix", MIX, "--hints.enabled", "true", "--data.size", "64")
    for p in parts:
        assert set(p.baseline_psnr_in) == {("mean", 10), ("nearest", 10), ("levin", 10)}
        assert all(v > p.gray_psnr_in for v in p.baseline_psnr_in.values())   # true-colour hints

    def copies(name):   # a stand-in G that outputs one of the fills: its margin is <= 0
        from gan_colorize.model.hint_fill import baseline_fills

        def fn(g, m):
            p = next(p for p in parts if p.gray.shape == g.shape and torch.equal(p.gray, g))
            return baseline_fills(p.gray, *p.hints[10], p.mask)[name]
        return fn
    row = validation.score_parts(Fixed(copies("levin")), parts, contextlib.nullcontext)
    best = max(row[f"val/{p.label}/{b}_psnr_in@10"] for p in parts for b in ("mean", "nearest", "levin"))
    assert row["val/hint_margin"] <= 1e-6
    assert row["val/samples/psnr_in@10"] == pytest.approx(row["val/samples/levin_psnr_in@10"])
    assert "over the best fill" in validation.summary(row, parts, False) and best > 0


def test_run_logs_validation_rows_and_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "BEST_MAX_LEAK", math.inf)   # a 4-step model leaks
    args = ["--train.out_dir", str(tmp_path), "--train.name", "v", "--train.eval_every", "2",
            "--train.eval_samples", "3"]
    train_loop.train(_tiny(*args, "--train.steps", "4"))
    train_loop.train(_tiny(*args, "--train.steps", "7", "--resume", "auto"))
    run = tmp_path / "v"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/score" in r]
    assert [r["step"] for r in val] == [2, 4, 6, 7]          # every 2 steps and the last
    assert all(set(r) >= {"val/samples/psnr_in@0", "val/samples/leak@0", "val/samples/edge_leak@0",
                          "val/samples/fill@0", "val/samples/gray_psnr_in"} for r in val)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    scores = [r["val/score"] for r in val]
    assert best["val"]["val/score"] == max(scores)
    assert best["step"] == val[scores.index(max(scores))]["step"]
    latest = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["best_score"] == max(scores)


def test_no_best_checkpoint_when_every_validation_leaks(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "BEST_MAX_LEAK", -1.0)
    train_loop.train(_tiny("--train.out_dir", str(tmp_path), "--train.name", "n", "--train.steps", "2",
                        "--train.eval_every", "1", "--train.eval_samples", "2"))
    assert not (tmp_path / "n" / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize("arg", [("--train.eval_every", "-1"), ("--train.eval_samples", "0")])
def test_bad_validation_keys_are_refused(arg):
    with pytest.raises(ConfigError, match=arg[0][2:]):
        _tiny(*arg)
