"""Print RESULTS.md's benchmark leaderboard from results/benchmark/<set>/<method>/metrics.json,
written by `bash results/benchmark.sh`, and with --check64 the 64 px agreement table (the
benchmark's x8 row on BSDS500 beside evaluate.py's, results/hints_64/x8_fill_input).

    python results/benchmark_tables.py [--root results/benchmark] [--check64]

Per set, every method at 0 / 1 / 3 / 10 hints: psnr_in over gray (dB, raw outputs), fill,
hint_err, and the worst leak and edge_leak over the hint counts. Every report must hold the same
cases (n and gray's psnr_in are checked).
"""
import argparse
import json
import math
from pathlib import Path

SETS = {"bsds500": "BSDS500 test (200 photos), human object masks, full resolution (321 x 321)",
        "intel_scenes": "Intel scenes test folder (all 1020), blobs / superpixels / rect, full resolution (80 px)",
        "intel_colour": "Intel scenes test folder less its 60 nearly gray photos (960), as above"}
METHODS = {"mean": "mean hint colour", "nearest": "nearest hint", "levin": "Levin et al. 2004",
           "x7": "x7 (shipped before)", "x8": "x8 (shipped, default.pt)"}
HINTS = ("0", "1", "3", "10")


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def fmt(v, spec="+.2f"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    text = format(v, spec)
    return text.replace("-", "+") if float(text) == 0 else text   # no "-0.00"


def table(root, s):
    reps = {m: load(root / s / m / "metrics.json") for m in METHODS}
    reps = {m: r for m, r in reps.items() if r is not None}
    if not reps:
        return [f"({s}: not scored)"]
    gray = next(iter(reps.values()))["results"]["gray"]["overall"]
    for m, r in reps.items():
        g = r["results"]["gray"]["overall"]
        if g["n"] != gray["n"] or abs(g["psnr_in"] - gray["psnr_in"]) > 1e-6:
            raise SystemExit(f"{s}: {m} was scored on other cases")
    head = ["method"] + [f"psnr_in − gray @{h}" for h in HINTS] + \
        ["fill @0 / @10", "hint_err @1 / @10", "leak (worst)", "edge_leak (worst)"]
    lines = ["| " + " | ".join(head) + " |", "| --- " + "| ---: " * (len(head) - 1) + "|"]
    for m, r in reps.items():
        raw = {h: r["results"]["raw"][h]["overall"] for h in HINTS if h in r["results"]["raw"]}
        gains = [fmt(raw[h]["psnr_in"] - gray["psnr_in"]) if h in raw else "–" for h in HINTS]
        fill = f"{fmt(raw['0']['fill'], '.2f')} / {fmt(raw['10']['fill'], '.2f')}"
        herr = f"{fmt(raw['1'].get('hint_err'), '.2f')} / {fmt(raw['10'].get('hint_err'), '.2f')}"
        leak = max(v["leak"] for v in raw.values())
        edge = max(v["edge_leak"] for v in raw.values())
        lines.append(f"| {METHODS[m]} | " + " | ".join(gains) +
                     f" | {fill} | {herr} | {leak:.3f} | {edge:.3f} |")
    lines.append(f"| gray (psnr_in {gray['psnr_in']:.2f} dB) | " + " | ".join(["+0.00"] * 4)
                 + " | 0.00 / 0.00 | – | 0.000 | 0.000 |")
    return lines


def check64(root, hints_root):
    """The benchmark's x8 at evaluate.py's 64 px beside evaluate.py's own report."""
    bench = load(root / "bsds500_64" / "x8" / "metrics.json")
    ev = load(hints_root / "x8_fill_input" / "bsds500_human" / "metrics.json")
    if bench is None or ev is None:
        return ["(check64: not run)"]
    cols = ("psnr_in", "ssim_in", "auc_in", "fill", "leak", "edge_leak", "hint_err")
    lines = ["| hints | source | n | " + " | ".join(cols) + " |",
             "| ---: | --- | ---: | " + " | ".join("---:" for _ in cols) + " |"]
    for h in HINTS:
        for label, vals in (("evaluate.py", ev["by_hints"][h]["overall"]),
                            ("benchmark", bench["results"]["raw"][h]["overall"])):
            cells = [fmt(vals.get(c), ".4f") for c in cols]
            lines.append(f"| {h} | {label} | {vals['n']} | " + " | ".join(cells) + " |")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="results/benchmark")
    p.add_argument("--hints-root", default="results/hints_64")
    p.add_argument("--check64", action="store_true")
    a = p.parse_args()
    root = Path(a.root)
    for s, title in SETS.items():
        print(f"\n{title}\n")
        print("\n".join(table(root, s)))
    if a.check64:
        print("\nBSDS500 at 64 px: the benchmark's x8 beside evaluate.py's\n")
        print("\n".join(check64(root, Path(a.hints_root))))


if __name__ == "__main__":
    main()
