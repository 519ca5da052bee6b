"""Print RESULTS.md's real-photo tables from results/real_64/<run>/<set>/metrics.json
(written by `bash results/real_photos.sh eval`), and the shipped run's validation curve from
results/real_64/x6_real_hints/validation.jsonl (its metrics.jsonl's val rows, copied there by
real_photos.sh).

    python results/real_tables.py [--root results/real_64]

One table per test set: each run at 0, 1 and 10 hints, then the gray and oracle baselines (scored
on the same samples and masks in every run's report: checked here); then issue 15's targets for
the shipped model, each with its margin.
"""
import argparse
import json
import math
from pathlib import Path

RUNS = {"x5_unet11_hints_10k": "x5 (Flowers17 only)", "x6_real_hints": "x6 (real-photo mix)",
        "x7_meanfit": "x7 (x6 + mean fit, shipped)"}
SHIPPED, REFERENCE = "x7_meanfit", "x5_unet11_hints_10k"
SETS = {
    "flowers17_impa": "Flowers17 test, impa masks (every image x each of the 10)",
    "flowers17_heldout": "Flowers17 test, held-out families (superpixels + blobs)",
    "flowers102_valid": "Flowers102 valid (1020 images), impa masks",
    "imagenet_test": "ImageNet samples, held-out part (the folder dataset's test split), impa masks",
    "bsds500_human": "BSDS500 test (200 photos), human-drawn object masks (segmentation)",
}
HINTS = ("0", "1", "10")
METRICS = ["leak", "edge_leak", "fill", "psnr_in", "auc_in", "hint_err"]
FORMAT = {"leak": ".2f", "edge_leak": ".2f", "fill": ".3f", "psnr_in": ".2f", "auc_in": ".3f",
          "hint_err": ".2f", "gain": "+.2f"}


def cell(value, metric):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, FORMAT[metric])


def load(root, run, s):
    path = root / run / s / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def table(root, s):
    cols = METRICS[:4] + ["gain"] + METRICS[4:]
    lines = ["| model | hints | n | " + " | ".join("psnr_in − gray" if c == "gain" else c for c in cols) + " |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    base = None
    for hints in HINTS:
        for run, label in RUNS.items():
            rep = load(root, run, s)
            if rep is None:
                lines.append(f"| {label} | {hints} | (not evaluated) |" + " |" * len(cols))
                continue
            res = rep["results"]
            these = {k: res[k]["overall"] for k in ("gray", "oracle")}
            if base is None:
                base = these
            for k in these:
                for m in ("leak", "psnr_in", "auc_in"):
                    a, b = base[k][m], these[k][m]
                    assert a == b or abs(a - b) < 1e-6, f"{run} {s}: {k} {m} differs ({a} vs {b})"
            row = dict(rep["by_hints"][hints]["overall"])
            row["gain"] = row["psnr_in"] - these["gray"]["psnr_in"]
            lines.append(f"| {label} | {hints} | {row['n']} | "
                         + " | ".join(cell(row.get(c), c) for c in cols) + " |")
    for k in ("gray", "oracle"):
        if base:
            row = dict(base[k])
            row["gain"] = row["psnr_in"] - base["gray"]["psnr_in"]
            lines.append(f"| *{k}* | | | " + " | ".join(cell(row.get(c), c) for c in cols) + " |")
    return "\n".join(lines)


def value(root, run, s, hints, metric):
    rep = load(root, run, s)
    if rep is None:
        return math.nan
    if metric == "gain":
        return (rep["by_hints"][hints]["overall"]["psnr_in"]
                - rep["results"]["gray"]["overall"]["psnr_in"])
    return rep["by_hints"][hints]["overall"][metric]


def targets(root):
    """issue 15's targets for the shipped model -> table rows (target, value, margin, met)."""
    v = lambda s, h, m, run=SHIPPED: value(root, run, s, h, m)  # noqa: E731
    rows = [
        ("BSDS500: leak at 0 hints ≤ 1.0", v("bsds500_human", "0", "leak"), 1.0, "le"),
        ("BSDS500: psnr_in at 0 hints ≥ gray + 0.5 dB", v("bsds500_human", "0", "gain"), 0.5, "ge"),
        ("BSDS500: psnr_in at 10 hints ≥ gray + 4 dB", v("bsds500_human", "10", "gain"), 4.0, "ge"),
        ("Flowers17 impa: psnr_in at 0 hints ≥ gray + 3 dB", v("flowers17_impa", "0", "gain"), 3.0, "ge"),
        ("Flowers17 impa: leak ≤ 1.0", v("flowers17_impa", "0", "leak"), 1.0, "le"),
        ("Flowers17 held-out: leak ≤ 1.0", v("flowers17_heldout", "0", "leak"), 1.0, "le"),
    ]
    worst = None   # the Flowers17 row furthest below x5 (psnr_in), over both sets and hint counts
    for s in ("flowers17_impa", "flowers17_heldout"):
        for h in HINTS:
            d = v(s, h, "psnr_in") - v(s, h, "psnr_in", REFERENCE)
            if worst is None or d < worst[0]:
                worst = (d, f"{s} @{h}")
    if worst is not None:
        rows.append((f"Flowers17: no psnr_in row > 0.3 dB below x5 (worst: {worst[1]})", worst[0], -0.3, "ge"))
    lines = ["| target | shipped model | bound | met |", "| --- | ---: | ---: | --- |"]
    for name, val, bound, how in rows:
        ok = val <= bound if how == "le" else val >= bound
        margin = val - bound
        verdict = "–" if math.isnan(val) else ("met" if ok else f"**missed by {abs(margin):.2f}**")
        lines.append(f"| {name} | {val:+.2f} | {bound:+.2f} | {verdict} |" if "dB" in name or "below" in name
                     else f"| {name} | {val:.2f} | {bound:.2f} | {verdict} |")
    return "\n".join(lines)


def validation_curve(root, run, every=3000):
    """val/score and psnr_in at 0 / 10 hints per dataset, every `every` steps and at the best."""
    path = root / run / "validation.jsonl"
    if not path.is_file():
        return f"({path} not found)"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    best = max((r for r in rows if r["val/max_leak"] <= 1.0), key=lambda r: r["val/score"])
    parts = [k.split("/")[1] for k in rows[0] if k.endswith("/gray_psnr_in")]
    head = "| step | val/score | " + " | ".join(f"{p} @0 / @10 (gray)" for p in parts) + " | max leak |"
    lines = [head, "| ---: | ---: | " + " | ".join("---:" for _ in parts) + " | ---: |"]
    for r in rows:
        if r["step"] % every and r is not best and r is not rows[-1]:
            continue
        cells = [f"{r[f'val/{p}/psnr_in@0']:.2f} / {r[f'val/{p}/psnr_in@10']:.2f} ({r[f'val/{p}/gray_psnr_in']:.2f})"
                 for p in parts]
        mark = " (best.pt)" if r is best else ""
        lines.append(f"| {r['step']}{mark} | {r['val/score']:+.2f} | " + " | ".join(cells)
                     + f" | {r['val/max_leak']:.2f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=str(Path(__file__).resolve().parent / "real_64"))
    root = Path(p.parse_args().root)
    for s, title in SETS.items():
        print(f"#### {title}\n")
        print(table(root, s))
        print()
    print("#### Targets (shipped model)\n")
    print(targets(root))
    for run, every in (("x6_real_hints", 3000), ("x7_meanfit", 1000)):
        print(f"\n#### Validation while training: {RUNS[run]} (fixed val samples, bf16)\n")
        print(validation_curve(root, run, every))


if __name__ == "__main__":
    main()
