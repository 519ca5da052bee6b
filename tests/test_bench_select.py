"""bench/select_iou.py on a tiny BSDS500-like tree of flat shapes, whose human segmentations are
the shapes themselves: every target is a union of flat regions, so the clicks reach it."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from conftest import write_ground_truth
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_select_iou_reaches_flat_shapes_and_writes_its_json(tmp_path):
    root = tmp_path / "bsds"
    (root / "images" / "test").mkdir(parents=True)
    (root / "groundTruth" / "test").mkdir(parents=True)
    for n, (cx, cy) in enumerate([(30, 40), (70, 30)]):
        rgb = np.full((72, 96, 3), 120, np.uint8)
        lab = np.ones((72, 96), np.uint16)
        disk = np.zeros((72, 96), np.uint8)
        cv2.circle(disk, (cx, cy), 16, 1, -1)
        rgb[disk > 0], lab[disk > 0] = (30, 40, 120), 2
        rgb[50:68, 50:90], lab[50:68, 50:90] = (230, 220, 90), 3
        Image.fromarray(rgb).save(root / "images" / "test" / f"{10 + n}.png")
        (root / "images" / "test" / f"{10 + n}.png").rename(root / "images" / "test" / f"{10 + n}.jpg")
        write_ground_truth(root / "groundTruth" / "test" / f"{10 + n}.mat", [lab])
    out = tmp_path / "select_iou.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "select_iou.py"), "--root", str(root),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["photos"] == 2 and "cpu" in result
    shipped = result["results"]["felzenszwalb x3 (shipped)"]
    assert shipped["iou_mean"]["5"] > 0.95, shipped
    assert all(0 <= v <= 1 for r in result["results"].values() for v in r["iou_mean"].values())
