"""The benchmark's command line, and our model entering it as any method does: gan-colorize on
the exported cases, then `score`, gives evaluate.py's numbers on the same samples."""
import json
import shlex

import pytest

from gan_colorize.apps import benchmark_cli, colorize_cli, evaluate_cli
from gan_colorize.apps.inputs import DEFAULT_CHECKPOINT

COUNTS = (0, 3)
# evaluate.py scores G's float output on the exact L of the photo; through files the model reads
# an 8-bit gray (L off by up to ~0.2) and writes 8-bit sRGB after the API's gamut fit (ab off by
# up to ~0.5 Lab units a pixel, near-gray pixels rounded to gray). Measured on these 5 photos the
# overall means differ by at most 0.06 dB psnr_in, 0.003 leak, 0.03 hint_err; the tolerances
# leave room for other CPUs' float rounding while staying far below any difference between methods
# (x7 and x8 differ by > 1 dB here).
TOL = {"psnr_in": 0.1, "ssim_in": 0.005, "auc_in": 0.005, "fill": 0.01, "leak": 0.01,
       "edge_leak": 0.01, "hint_err": 0.15}


def test_our_model_through_the_benchmark_gives_evaluate_numbers(tmp_path, capsys):
    cache = str(tmp_path / "cache")
    keys = ["--data.cache_dir", cache, "--data.workers", "0"]
    cases, outs = tmp_path / "cases", tmp_path / "outputs"
    assert benchmark_cli.main(["export", "--set", "samples", "--size", "64", "--hints",
                               ",".join(map(str, COUNTS)), "--out", str(cases), *keys]) == 0
    for n in COUNTS:   # README's loop: one gan-colorize run per hint count
        assert colorize_cli.main(["--mask", str(cases / "masks"), "--hints", str(cases / "hints" / str(n)),
                                  "--out", str(outs / str(n)), "--precision", "fp32", "--device", "cpu",
                                  "--composite", "none",   # raw, as evaluate.py scores it
                                  str(cases / "gray")]) == 0
    assert benchmark_cli.main(["score", "--cases", str(cases), "--outputs", str(outs),
                               "--name", "x8"]) == 0
    bench = json.loads((outs / "score" / "metrics.json").read_text())
    # the manifest's own evaluate.py command: the same samples, masks and hints
    command = json.loads((cases / "manifest.json").read_text())["evaluate"]
    argv = shlex.split(command.replace("CHECKPOINT", str(DEFAULT_CHECKPOINT)))[2:]
    assert evaluate_cli.main(argv + ["--out", str(tmp_path / "eval"), "--device", "cpu",
                                     "--eval.baselines", "", *keys]) == 0
    ev = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    capsys.readouterr()
    assert ev["results"]["gray"]["overall"]["n"] == bench["n_cases"] == 5
    for n in COUNTS:
        got, want = bench["results"]["raw"][str(n)]["overall"], ev["by_hints"][str(n)]["overall"]
        for metric, tol in TOL.items():
            if want.get(metric) is None:
                assert got.get(metric) is None, (n, metric)
                continue
            assert got[metric] == pytest.approx(want[metric], abs=tol), (n, metric)
    for source in ("gray", "oracle"):   # no model involved: the same numbers
        got, want = bench["results"][source]["overall"], ev["results"][source]["overall"]
        assert got["psnr_in"] == pytest.approx(want["psnr_in"], abs=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["frob"], "expected one command, export | fill | score; got frob"),
    (["export"], "export: --out is required"),
    (["score", "--cases", "c"], "score: --outputs is required"),
    (["export", "--out", "x", "--set", "imagenet"], "benchmark.set (--set): 'imagenet' is not one of bsds500"),
    (["export", "--out", "x", "--size", "50"], "benchmark.size (--size): 50 must be 0"),
    (["fill", "--cases", "c", "--out", "o", "--method", "knn"], "benchmark.method (--method): 'knn'"),
    (["score", "--cases", "nowhere", "--outputs", "o"], "--cases nowhere: no manifest.json"),
])
def test_errors_are_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmark_cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and message in err[0], err
