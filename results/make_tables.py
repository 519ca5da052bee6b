"""Print RESULTS.md's tables from results/flowers17_64/<run>/<eval>/metrics.json.

    python results/make_tables.py [--root results/flowers17_64]

One table per evaluation set (impa: seen in training; heldout: superpixels + blobs, never seen),
one row per run, then the gray and oracle baselines, which are scored on the same samples and
masks and so must be the same in every run's report (checked here).
"""
import argparse
import json
import math
from pathlib import Path

RUNS = ["r1_study_halfplane", "r2_study_recipe", "r3_study_partial", "r4_unet_impa",
        "r5_unet_mixed", "r6a_huber", "r6b_out0", "r6c_out1000",
        "x1_unet_mixed_10k",     # r5's recipe with 5x the steps, outside the equal budget
        "x2_unet11_mixed_10k",   # x1's recipe on the 11-layer unet11 with an ungated layer 11
        "x4_unet11_gated_10k",   # x1's recipe on today's unet11 (layer 11 gated)
        "x5_unet11_hints_10k"]   # x4 with colour hints as input (scored here without hints)
# x1 and x2 come from architectures that no longer exist (x1: a twelfth full-resolution layer;
# x2: layer 11 without its gate); their checkpoints do not load into today's code.
HINT_RUN, NO_HINT_RUN = "x5_unet11_hints_10k", "x4_unet11_gated_10k"
HINT_METRICS = ["psnr_in", "auc_in", "hint_err", "leak", "edge_leak"]
# ideepcolor (Zhang et al. 2017, Table/Fig. of PSNR vs number of hints): ImageNet, 256 px, whole
# image colorized, hints drawn from the truth. Not the same data, resolution or task.
IDEEPCOLOR_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34}
METRICS = ["leak", "leak_px", "edge_leak", "fill", "psnr_in", "ssim_in", "auc_in"]
FORMAT = {"leak": ".2f", "leak_px": ".2f", "edge_leak": ".2f", "fill": ".3f", "psnr_in": ".2f",
          "ssim_in": ".3f", "auc_in": ".3f", "hint_err": ".2f"}


def cell(value, metric):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, FORMAT[metric])


def table(root, eval_set, group="overall"):
    lines = ["| run | n | " + " | ".join(METRICS) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in METRICS) + " |"]
    baselines = None
    for run in RUNS:
        path = root / run / eval_set / "metrics.json"
        if not path.is_file():
            lines.append(f"| {run} | (not evaluated) |" + " |" * len(METRICS))
            continue
        res = json.loads(path.read_text())["results"]
        row = res["model"][group]
        lines.append(f"| {run} | {row['n']} | " + " | ".join(cell(row[m], m) for m in METRICS) + " |")
        these = {s: {m: res[s][group][m] for m in METRICS} for s in ("gray", "oracle")}
        if baselines is None:
            baselines = these
        else:
            for s in these:
                for m in METRICS:
                    a, b = baselines[s][m], these[s][m]
                    assert a == b or abs(a - b) < 1e-6, f"{run}: {s} {m} differs ({a} vs {b})"
    for s in ("gray", "oracle"):
        if baselines:
            lines.append(f"| *{s}* | | " + " | ".join(cell(baselines[s][m], m) for m in METRICS) + " |")
    return "\n".join(lines)


def hint_table(root, eval_set):
    """psnr_in, auc_in, hint_err, leak, edge_leak of the hint model against the hint count, with the
    same-budget model trained without hints and gray beside it, and ideepcolor's published PSNR."""
    path = root / HINT_RUN / eval_set / "metrics.json"
    if not path.is_file():
        return f"({HINT_RUN} not evaluated on {eval_set})"
    report = json.loads(path.read_text())
    lines = ["| hints | n | " + " | ".join(HINT_METRICS) + " | ideepcolor psnr (ImageNet, 256 px) |",
             "| ---: | ---: | " + " | ".join("---:" for _ in HINT_METRICS) + " | ---: |"]
    for count, groups in report["by_hints"].items():
        row = groups["overall"]
        lines.append(f"| {count} | {row['n']} | " + " | ".join(cell(row.get(m), m) for m in HINT_METRICS)
                     + f" | {IDEEPCOLOR_PSNR.get(int(count), float('nan')):.2f} |")
    base = root / NO_HINT_RUN / eval_set / "metrics.json"
    if base.is_file():
        row = json.loads(base.read_text())["results"]["model"]["overall"]
        lines.append(f"| *{NO_HINT_RUN}, no hint input* | {row['n']} | "
                     + " | ".join(cell(row.get(m), m) for m in HINT_METRICS) + " | |")
    gray = report["results"]["gray"]["overall"]
    lines.append("| *gray* | | " + " | ".join(cell(gray.get(m), m) for m in HINT_METRICS) + " | |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parent / "flowers17_64"))
    root = Path(p.parse_args().root)
    print("### (a) impa masks (seen in training): every test image x each of the 10 masks\n")
    print(table(root, "impa"))
    print("\n### (b) held-out families (never seen in training): superpixels + blobs\n")
    print(table(root, "heldout"))
    for fam in ("superpixels", "blobs"):
        print(f"\n#### (b) {fam} only\n")
        print(table(root, "heldout", fam))
    print(f"\n### (c) colour hints: {HINT_RUN} against the number of hints\n")
    print("#### impa masks\n")
    print(hint_table(root, "impa"))
    print("\n#### held-out families\n")
    print(hint_table(root, "heldout"))


if __name__ == "__main__":
    main()
