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
        "x2_unet11_mixed_10k"]   # x1's recipe on the 11-layer unet11 of the consolidation issue
# The runs above x2 were trained and scored with the architecture before the consolidation
# (unet11 with a twelfth full-resolution layer, the old seed G and D); x2 with today's.
METRICS = ["leak", "leak_px", "edge_leak", "fill", "psnr_in", "ssim_in", "auc_in"]
FORMAT = {"leak": ".2f", "leak_px": ".2f", "edge_leak": ".2f", "fill": ".3f", "psnr_in": ".2f",
          "ssim_in": ".3f", "auc_in": ".3f"}


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


if __name__ == "__main__":
    main()
