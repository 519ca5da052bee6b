"""bench/gpu_prepare.py and bench/gpu_run.py: the GPU run prepared on the CPU.

The whole dry run (`bash bench/gpu_run.sh part1|part2 --dry-run`) takes minutes on a 2-core
machine (the CUDA tests' collection, the benchmarks, a real training start), so it is not run
here; its pieces are: the carry (data in the source's splits, the size budget, the wheels'
requirements), the calibration and the wall-time stop with a stand-in trainer, the plan, the
export's pieces, the summaries, the profiler table, the cuda marker and setup.py's ranges.
"""
import ast
import hashlib
import io
import json
import os
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import gpu_prepare  # noqa: E402
import gpu_run  # noqa: E402

from conftest import colourful, hand_made_checkpoint  # noqa: E402

from gan_colorize.core.errors import UserError  # noqa: E402


# --------------------------------------------------------------------------- the carry

def _jpg(path, seed, size=(90, 120)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colourful(*size, seed=seed)).save(path, quality=90)


@pytest.fixture
def shared(tmp_path):
    """Tiny stand-ins of the four source datasets, in their real layouts."""
    from scipy.io import savemat
    root = tmp_path / "shared"
    for n in range(1, 21):                      # Flowers17: 20 images of class 0
        _jpg(root / "flowers17" / "jpg" / f"image_{n:04d}.jpg", n)
    for n in range(1, 31):                      # Flowers102: 30 images, official split ids
        _jpg(root / "flowers102" / "jpg" / f"image_{n:05d}.jpg", 100 + n)
    savemat(str(root / "flowers102" / "setid.mat"),
            {"trnid": np.arange(1, 11, dtype=np.uint16)[None], "valid": np.arange(11, 21, dtype=np.uint16)[None],
             "tstid": np.arange(21, 31, dtype=np.uint16)[None]})
    for n in range(40):                         # ImageNet samples: a plain folder
        _jpg(root / "imagenet_samples" / "images" / f"n{n:03d}_thing.jpg", 200 + n)
    for split, count in (("train", 30), ("test", 5)):   # Intel scenes: split folders, 80 px
        for n in range(count):
            _jpg(root / "intel_scenes" / split / ("sea" if n % 2 else "forest") / f"{n}.jpg",
                 300 + n, size=(80, 80))
    return root


def _splits(name, root, split):
    return sorted(r.key for r in gpu_prepare._records(name, root, split))


def test_prepare_carries_train_and_val_in_their_splits_and_fits_the_budget(shared, tmp_path, capsys):
    out = tmp_path / "carry"
    argv = ["--shared", str(shared), "--out", str(out), "--no-wheels", "--flowers102-val", "4"]
    assert gpu_prepare.main(argv + ["--budget-mib", "10"]) == 0, capsys.readouterr()
    whole = json.loads((out / "MANIFEST.json").read_text())
    assert whole["datasets"]["flowers102"]["train_images"] == 20
    # a budget that holds some of Flowers102's train images, not all
    budget = (whole["carry_bytes"] - whole["datasets"]["flowers102"]["bytes"] / 4) / 2 ** 20
    assert gpu_prepare.main(argv + ["--budget-mib", f"{budget:.4f}"]) == 0, capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["MANIFEST.json", "data.tar.gz"]
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["carry_bytes"] <= budget * 2 ** 20
    data = tmp_path / "data"
    with tarfile.open(out / "data.tar.gz") as tar:
        tar.extractall(data)
    for name in ("flowers17", "imagenet_samples", "intel_scenes"):   # carried whole: same splits
        for split in ("train", "val"):
            assert _splits(name, data / name, split) == _splits(name, shared / name, split), (name, split)
        assert not (data / name / "test").exists()
    with pytest.raises(UserError, match="test split of flowers17"):   # the test images stay behind
        _splits("flowers17", data / "flowers17", "test")
    f102 = manifest["datasets"]["flowers102"]
    assert f102["val_images"] == 4 and 0 < f102["train_images"] < f102["train_available"] == 20
    carried = _splits("flowers102", data / "flowers102", "train")
    assert len(carried) == f102["train_images"]
    assert set(carried) <= set(_splits("flowers102", shared / "flowers102", "train"))
    assert len(_splits("flowers102", data / "flowers102", "val")) == 4
    # re-encoded at the cache's side for 64 px (74), the Intel scenes as they are (80 px)
    img = Image.open(data / "flowers17" / "jpg" / "image_0001.jpg")
    assert min(img.size) == 74 == manifest["short_side"]
    src = shared / "intel_scenes" / "train" / "forest" / "0.jpg"
    assert (data / "intel_scenes" / "train" / "forest" / "0.jpg").read_bytes() == src.read_bytes()


def test_prepare_refuses_a_carry_over_its_budget(shared, tmp_path, capsys):
    rc = gpu_prepare.main(["--shared", str(shared), "--out", str(tmp_path / "c"), "--no-wheels",
                           "--budget-mib", "0.01", "--datasets", "flowers17,intel_scenes"])
    assert rc == 1 and "too large" in capsys.readouterr().err


def _wheel(folder, name, version, requires):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(name, version) + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_wheel_requirements_are_met_by_the_carry_or_the_gpu_image(tmp_path):
    whl = tmp_path / "whl"
    _wheel(whl, "albumentations", "2.0.8", ["numpy>=1.24.4", "pydantic>=2.9.2", "albucore==0.0.24",
                                            'eval-type-backport; python_version < "3.10"',
                                            'huggingface-hub; extra == "hub"'])
    _wheel(whl, "pydantic", "2.13.4", [])
    _wheel(whl, "albucore", "0.0.23", ["stringzilla>=3.10.4"])
    problems = gpu_prepare.check_wheels(whl)
    assert any("albucore==0.0.24" in p and "0.0.23" in p for p in problems)
    assert any("stringzilla" in p and "neither carried" in p for p in problems)
    assert len(problems) == 2   # numpy is in the image; markers and extras are skipped


def test_the_pinned_wheels_cover_albumentations_needs():
    pins = {gpu_prepare.canon(s.split("==")[0]) for s in gpu_prepare.WHEELS}
    assert {"albumentations", "albucore", "pydantic", "pydantic-core", "annotated-types",
            "typing-inspection", "stringzilla", "simsimd"} <= pins
    assert not pins & gpu_prepare.GPU_IMAGE - {"typing-extensions"}
    assert "opencv-python-headless" in gpu_prepare.GPU_IMAGE   # albumentations' cv2, by that name


# --------------------------------------------------------------------------- the run

FAKE_TRAINER = textwrap.dedent('''
    """Stands in for train.py: a step every 20 ms, metrics rows, checkpoints, SIGINT saves."""
    import json, shutil, signal, sys, time
    from pathlib import Path
    a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    run = Path(a["--train.out_dir"]) / a["--train.name"]
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "samples").mkdir(exist_ok=True)
    (run / "config.json").write_text("{}")
    ckpt, stop = Path(a["--ckpt"]), []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    steps, every, log = (int(a[k]) for k in ("--train.steps", "--train.ckpt_every", "--train.log_every"))
    time.sleep(0.3)   # the start-up
    with open(run / "metrics.jsonl", "a") as f:
        for step in range(1, steps + 1):
            time.sleep(0.02)
            if step % log == 0:
                f.write(json.dumps({"step": step, "g_l1": 0.1, "images_per_sec": 50.0 * int(a["--train.batch_size"])}) + "\\n")
                f.flush()
            if step % every == 0 or step == steps:
                shutil.copyfile(ckpt, run / "checkpoints" / "latest.pt")
                shutil.copyfile(ckpt, run / "checkpoints" / f"step_{step:07d}.pt")
                (run / "samples" / f"step_{step:07d}.png").write_bytes(b"png")
            if stop:
                shutil.copyfile(ckpt, run / "checkpoints" / "latest.pt")
                print("SIGINT: saved latest.pt")
                break
''')


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """part2 with the stand-in trainer, no wheels and no probe (both take a torch import)."""
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAINER)
    ckpt = hand_made_checkpoint(tmp_path / "hand.pt", "--model.width", "0.25", "--data.size", "32")
    carry = tmp_path / "carry"
    (tmp_path / "d" / "flowers17").mkdir(parents=True)
    (tmp_path / "d" / "intel_scenes").mkdir(parents=True)
    carry.mkdir()
    with tarfile.open(carry / "data.tar.gz", "w:gz") as tar:
        for name in ("flowers17", "intel_scenes"):
            tar.add(tmp_path / "d" / name, arcname=name)
    (carry / "MANIFEST.json").write_text('{"datasets": {}}')

    def command(s, data_dir, work, name, extra):
        mix = gpu_run.mix_spec(data_dir)
        assert mix == f"flowers17={data_dir / 'flowers17'}:1,split_folders={data_dir / 'intel_scenes'}:2"
        return [sys.executable, script, "--ckpt", ckpt, "--train.out_dir", work / "runs",
                "--train.name", name, "--train.batch_size", s.train_batch, *extra]

    monkeypatch.setattr(gpu_run, "train_command", command)
    monkeypatch.setattr(gpu_run, "install_wheels", lambda r, carry, dry: r.skip("wheels", "test"))
    monkeypatch.setattr(gpu_run, "probe", lambda r: {"python": "3", "cuda": False})
    out = tmp_path / "out"
    base = ["part2", "--dry-run", "--out", str(out), "--carry", str(carry), "--work", str(tmp_path / "w")]
    return out, base


def test_part2_calibrates_plans_stops_at_its_wall_time_and_ships_the_export(fake_run):
    out, base = fake_run
    rc = gpu_run.main(base + ["--train-seconds", "8", "--ckpt-seconds", "1"])
    result = json.loads((out / "train.json").read_text())
    assert rc == 0 and result["ok"], result
    cal = result["calibration"]
    assert 20 < cal["steps_per_s"] < 60 and cal["rows_used"] >= 3   # 50 img/s per batch item
    plan = result["plan"]
    assert plan["ckpt_every"] == round(cal["steps_per_s"]) and plan["steps"] > plan["ckpt_every"]
    train = result["train"]
    assert train["checkpoints"][0] == "latest.pt" and len(train["checkpoints"]) >= 2
    exp = result["export"]
    data = (out / "g_ema_fp16.pt").read_bytes()
    assert exp["files"] == ["g_ema_fp16.pt"] and hashlib.sha256(data).hexdigest() == exp["sha256"]
    state = torch.load(io.BytesIO(data), weights_only=True)
    assert state["dtype"] == "float16" and state["exported_from"] == "latest.pt"
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "g_ema_fp16.pt", "metrics.jsonl", "part2.log", "sample.png", "train.json"]
    log = (out / "part2.log").read_text()
    assert "calibration: enough rows" in log and "steps planned" in log


def test_part2_sends_sigint_at_the_wall_time(fake_run):
    out, base = fake_run
    # told 200 steps/s, it plans far more steps than 3 s hold: the wall-time stop ends the run
    rc = gpu_run.main(base + ["--train-seconds", "3", "--steps-per-s", "200"])
    result = json.loads((out / "train.json").read_text())
    assert rc == 0 and result["train"]["stopped_by_wall_time"]
    assert result["train"]["last_logged_step"] < result["plan"]["steps"]
    assert "SIGINT" in (out / "part2.log").read_text()


def test_plan_turns_the_rate_into_steps_and_intervals():
    args, _ = gpu_run.parse_args(["part2", "--out", "/tmp/x"])
    s = gpu_run.Settings(args)
    assert (s.train_seconds, s.ckpt_seconds, s.train_width, s.train_batch) == (420, 120, 1.0, 64)
    p = gpu_run.plan(s, rate=50.0, startup=30.0)
    assert p["steps"] == int(0.95 * 50 * (420 - 30 - 25))
    assert p["ckpt_every"] == 6000 and p["eval_every"] == 3000 and p["log_every"] == 100
    dry = gpu_run.Settings(gpu_run.parse_args(["part1", "--dry-run", "--out", "/tmp/x"])[0])
    assert (dry.device, dry.bench_size, dry.bench_batch, dry.bench_width, dry.train_seconds) == (
        "cpu", 64, 4, 0.25, 60)
    assert gpu_run.parse_args(["part2", "--out", "/x", "--", "--hints.fill", "input"])[1] == [
        "--hints.fill", "input"]


def test_ship_splits_a_file_over_the_limit_into_parts_that_join(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_run, "FILE_LIMIT", 1000)
    monkeypatch.setattr(gpu_run, "PART_BYTES", 400)
    src = tmp_path / "g.pt"
    src.write_bytes(os.urandom(1500))
    out = tmp_path / "out"
    out.mkdir()
    info = gpu_run.ship(src, out, tmp_path / "best.pt")
    assert info["files"] == ["g.pt.part0", "g.pt.part1", "g.pt.part2", "g.pt.part3"]
    assert all((out / f).stat().st_size <= 400 for f in info["files"])
    joined = b"".join((out / f).read_bytes() for f in info["files"])
    assert joined == src.read_bytes() and hashlib.sha256(joined).hexdigest() == info["sha256"]
    assert info["join"] == "cat g.pt.part0 g.pt.part1 g.pt.part2 g.pt.part3 > g.pt"


def test_summaries_read_pytest_and_the_benchmarks(tmp_path):
    log = tmp_path / "part1.log"
    log.write_text("ss\nSKIPPED [1] tests/test_bench.py:152: needs a CUDA device\n"
                   "2 passed, 695 deselected in 56.20s\n")
    assert gpu_run.tests_summary(log, {"rc": 0}) == {
        "rc": 0, "line": "2 passed, 695 deselected in 56.20s", "ok": True, "passed": 2}
    log.write_text("==== 1 failed, 1 passed, 3 deselected in 9.0s ====\n")
    assert not gpu_run.tests_summary(log, {"rc": 1})["ok"]
    row = {"arch": "unet11", "compile": False, "size": 256, "batch": 64, "width": 1.0, "precision": "bf16",
           "images_per_s": 900.0, "step_s_median": 0.0711, "gflop_per_image": 109.0,
           "achieved_tflops": 98.1, "mfu": 0.0992, "peak_tflops": 989.0, "gpu": "NVIDIA H100 80GB HBM3",
           "peak_mem_bytes": 2 ** 34}
    inf = {"arch": "unet11", "size": 512, "batch": 32, "width": 1.0, "precision": "bf16",
           "images_per_s": 500.0, "hires_ms_median": 4.2, "hires": 512, "peak_mem_bytes": 2 ** 32}
    summary = gpu_run.bench_summary({"train_step_eager": {"results": [row]}, "inference": {"results": [inf]},
                                     "train_step_compile_seed": {"error": "no JSON"}},
                                    {"gpu": "NVIDIA H100 80GB HBM3", "bf16_peak_tflops": 989.0})
    lines = gpu_run.summary_lines(summary)
    assert "989" in lines[0] and "H100" in lines[0]
    assert "900.0 img/s" in lines[1] and "MFU 9.9%" in lines[1] and "peak 16.0 GiB" in lines[1]
    assert "4.2 ms for one 512px image" in lines[2]


def test_train_step_appends_a_profiler_table(tmp_path):
    from bench import train_step
    n = torch.get_num_threads()
    try:
        prof = tmp_path / "profile.txt"
        row = train_step.measure(arch="unet11", size=32, batch=1, width=0.25, precision="fp32",
                                 steps=1, warmup=1, flops=False, threads=1, profile=str(prof),
                                 profile_steps=1)
    finally:
        torch.set_num_threads(n)
    text = prof.read_text()
    assert row["profile"] == str(prof)
    assert text.startswith("== torch.profiler: unet11 32px batch 1") and "self_cpu_time_total" in text
    assert "aten::" in text


# --------------------------------------------------------------------------- the marker and setup.py

def test_every_test_that_skips_without_cuda_is_marked_cuda():
    marked = []
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            decos = [ast.unparse(d) for d in node.decorator_list]
            needs_cuda = any("skipif" in d and "cuda.is_available" in d for d in decos)
            if needs_cuda:
                assert "pytest.mark.cuda" in decos, f"{path.name}::{node.name} lacks @pytest.mark.cuda"
                marked.append(node.name)
    assert {"test_train_step_on_cuda_bf16_channels_last",
            "test_cuda_bf16_channels_last_trains_and_resumes"} <= set(marked)
    assert "    cuda: " in (REPO / "pytest.ini").read_text()   # registered: -m cuda selects them


def test_setup_admits_the_gpu_machines_torch_and_torchvision():
    from packaging.requirements import Requirement
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    reqs = next(ast.literal_eval(k.value) for k in call.keywords if k.arg == "install_requires")
    spec = {Requirement(r).name: Requirement(r).specifier for r in reqs}
    assert "2.11.0" in spec["torch"] and "0.26.0" in spec["torchvision"]   # torchvision 0.26 = torch 2.11's
    assert "2.0.8" in spec["albumentations"]   # the carried wheel
