"""Print RESULTS.md's tables for issue 22 (hints that bind, outdoor photos) from
results/hints_64/<run>/<set>/metrics.json, written by `bash results/hints.sh eval RUN...`.

    python results/hints_tables.py [--root results/hints_64] [--runs x7,x8_fill_residual]
        [--targets RUN]

One table per test set: at 0, 1, 3 and 10 hints, each run and the three hint baselines (mean,
nearest, levin: the same hints spread without learning) with gray and oracle; every run's report
must hold the same samples (n and gray's psnr_in are checked). With --targets, issue 22's
targets for that run, each with its margin.
"""
import argparse
import json
import math
from pathlib import Path

# the metric columns, their formats and the report loader of the real-photo tables (same folder)
from real_tables import METRICS, cell, load

SETS = {
    "intel_test": "Intel scenes test folder (all 1020), blobs / superpixels / rect masks",
    "intel_test_colour": "Intel scenes test folder less its 60 nearly gray photos (960)",
    "bsds500_human": "BSDS500 test (200 photos), human-drawn object masks (segmentation)",
    "imagenet_test": "ImageNet samples, held-out part (110 photos), impa masks",
    "flowers17_impa": "Flowers17 test, impa masks (the first 680 image x mask pairs)",
    "flowers17_heldout": "Flowers17 test, superpixels + blobs",
}
LABELS = {"x7": "x7 (shipped before)"}
HINTS = ("0", "1", "3", "10")
BASELINES = ("mean", "nearest", "levin")
# issue 22's targets: 0-hint gain over gray per set; the hint margin over the best baseline
ZERO_HINT_GAIN = {"intel_test": 1.0, "intel_test_colour": 1.0, "bsds500_human": 0.8,
                  "imagenet_test": 0.5}
HINT_MARGIN = 1.0
FLOWER_SETS, FLOWER_SLACK = ("flowers17_impa", "flowers17_heldout"), 0.3
LEAK_MAX, EDGE_LEAK_MAX, FILL_RANGE = 0.1, 0.2, (0.7, 1.2)


def row(label, hints, vals, gray):
    gain = None if vals.get("psnr_in") is None else vals["psnr_in"] - gray["psnr_in"]
    cells = [cell(vals.get(m), m) for m in METRICS[:4]] + [cell(gain, "gain")] + \
        [cell(vals.get(m), m) for m in METRICS[4:]]
    return f"| {label} | {hints} | {vals['n']} | " + " | ".join(cells) + " |"


def table(root, s, runs):
    reports = {r: load(root, r, s) for r in runs}
    have = {r: rep for r, rep in reports.items() if rep is not None}
    if not have:
        return [f"({s}: not evaluated)"]
    first = next(iter(have.values()))
    gray, oracle = (first["results"][k]["overall"] for k in ("gray", "oracle"))
    for r, rep in have.items():   # the same samples and masks in every report
        g = rep["results"]["gray"]["overall"]
        if g["n"] != gray["n"] or abs(g["psnr_in"] - gray["psnr_in"]) > 1e-6:
            raise SystemExit(f"{s}: {r} was scored on other samples than {next(iter(have))}")
    cols = METRICS[:4] + ["psnr_in − gray"] + METRICS[4:]
    lines = ["| source | hints | n | " + " | ".join(cols) + " |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    for h in HINTS:
        for r, rep in have.items():
            if h in rep["by_hints"]:
                lines.append(row(LABELS.get(r, r), h, rep["by_hints"][h]["overall"], gray))
        for b in BASELINES:
            vals = first.get("baselines", {}).get(b, {}).get(h)
            if vals:
                lines.append(row(f"{b} fill", h, vals["overall"], gray))
    lines.append(row("gray", "–", gray, gray))
    lines.append(row("oracle", "–", oracle, gray))
    return lines


def targets(root, run, reference="x7"):
    out = []
    for s in SETS:
        rep, ref = load(root, run, s), load(root, reference, s)
        if rep is None:
            continue
        gray = rep["results"]["gray"]["overall"]["psnr_in"]
        by = {h: rep["by_hints"][h]["overall"] for h in rep["by_hints"]}
        for h in ("1", "3", "10"):
            if h in by:
                best = max(rep["baselines"][b][h]["overall"]["psnr_in"] for b in rep["baselines"])
                m = by[h]["psnr_in"] - best - HINT_MARGIN
                out.append((s, f"{h} hints: psnr_in ≥ best baseline + {HINT_MARGIN} dB", m))
        if s in ZERO_HINT_GAIN:
            m = by["0"]["psnr_in"] - gray - ZERO_HINT_GAIN[s]
            out.append((s, f"0 hints: psnr_in ≥ gray + {ZERO_HINT_GAIN[s]} dB", m))
        fill = by["0"]["fill"]
        out.append((s, f"0 hints: fill in {FILL_RANGE}",
                    min(fill - FILL_RANGE[0], FILL_RANGE[1] - fill)))
        if s in FLOWER_SETS and ref is not None:
            worst = min(by[h]["psnr_in"] - ref["by_hints"][h]["overall"]["psnr_in"]
                        for h in by if h in ref["by_hints"])
            out.append((s, f"no hint count more than {FLOWER_SLACK} dB below {reference}",
                        worst + FLOWER_SLACK))
        out.append((s, f"leak ≤ {LEAK_MAX} at every hint count",
                    LEAK_MAX - max(v["leak"] for v in by.values())))
        out.append((s, f"edge_leak ≤ {EDGE_LEAK_MAX} at every hint count",
                    EDGE_LEAK_MAX - max(v["edge_leak"] for v in by.values())))
    lines = ["| test set | target | margin | met |", "| --- | --- | ---: | :---: |"]
    lines += [f"| {s} | {t} | {m:+.2f} | {'yes' if m >= 0 else '**no**'} |" for s, t, m in out]
    return lines


def curve(root, run):
    """The run's validation rows (validation.jsonl, copied from its metrics.jsonl)."""
    path = root / run / "validation.jsonl"
    if not path.is_file():
        return [f"({run}: no validation rows)"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    parts = sorted({k.split("/")[1] for r in rows for k in r if k.count("/") == 2})
    head = ["step", "val/score", "val/hint_margin"] + [f"{p} psnr_in@0 − gray" for p in parts]
    lines = ["| " + " | ".join(head) + " |", "|" + " ---: |" * len(head)]
    for r in rows:
        cells = [str(r["step"]), f"{r['val/score']:+.2f}", f"{r.get('val/hint_margin', math.nan):+.2f}"]
        cells += [f"{r[f'val/{p}/psnr_in@0'] - r[f'val/{p}/gray_psnr_in']:+.2f}" for p in parts]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def readme_rows(root, run, reference="x7"):
    """README's summary rows: psnr_in − gray of `run` at 0/1/3/10 hints, of `reference` at
    0/1/10, and of the best baseline at 1/3/10."""
    out = []
    for s, title in SETS.items():
        rep, ref = load(root, run, s), load(root, reference, s)
        if rep is None or ref is None:
            continue
        gray = rep["results"]["gray"]["overall"]["psnr_in"]

        def gain(groups):
            return f"{groups['overall']['psnr_in'] - gray:+.2f}".replace("-", "−")
        cells = [gain(rep["by_hints"][h]) for h in HINTS]
        cells += [gain(ref["by_hints"][h]) for h in ("0", "1", "10")]
        cells += [gain(max((rep["baselines"][b][h] for b in rep["baselines"]),
                           key=lambda g: g["overall"]["psnr_in"])) for h in ("1", "3", "10")]
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).with_name("hints_64")))
    ap.add_argument("--runs", default="x7")
    ap.add_argument("--targets", default="")
    ap.add_argument("--readme", default="", help="print README's summary rows for this run")
    a = ap.parse_args()
    root, runs = Path(a.root), [r for r in a.runs.split(",") if r]
    if a.readme:
        print("\n".join(readme_rows(root, a.readme)))
        return
    for s, title in SETS.items():
        print(f"### {title}\n")
        print("\n".join(table(root, s, runs)) + "\n")
    if a.targets:
        print(f"### Targets ({a.targets})\n")
        print("\n".join(targets(root, a.targets)) + "\n")
        print(f"### Validation while training ({a.targets})\n")
        print("\n".join(curve(root, a.targets)) + "\n")


if __name__ == "__main__":
    main()
