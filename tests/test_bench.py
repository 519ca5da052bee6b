"""bench/: each script runs at tiny sizes and writes well-formed JSON with the expected keys.

Smoke tests only: no speed is asserted here (the speed targets live in the benchmarks).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import common, end_to_end, inference, pipeline, seed_vs_study, train_step  # noqa: E402

MACHINE_KEYS = {"cpu", "cpu_cores", "torch_threads", "gpu", "torch", "amx_bf16"}
# One torch thread: tiny ops gain nothing from two, and on a busy machine two threads that wait
# on each other at every op make the smoke tests several times slower.
TINY_MODEL = ["--width", "0.25", "--device", "cpu", "--threads", "1"]


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()   # the scripts' --threads sets it for the whole process
    yield
    torch.set_num_threads(n)


def _load(path):
    d = json.loads(Path(path).read_text())   # strict JSON: no NaN
    assert d["benchmark"] and d["created"] and isinstance(d["command"], list)
    assert MACHINE_KEYS <= set(d["machine"])
    assert isinstance(d["args"], dict)
    return d


def test_train_step_writes_rows_for_each_arch_and_precision(tmp_path, capsys):
    out = tmp_path / "ts.json"
    train_step.main(["--sizes", "32", "--archs", "unet11,seed", "--batch", "2", "--steps", "1",
                     "--warmup", "1", "--precision", "fp32,bf16", "--isolate", "off", "--json", str(out),
                     *TINY_MODEL])
    d = _load(out)
    assert d["benchmark"] == "train_step"
    rows = d["results"]
    assert {(r["arch"], r["discriminator"], r["precision"]) for r in rows} == {
        ("unet11", "patch", "fp32"), ("unet11", "patch", "bf16"), ("seed", "seed", "fp32"), ("seed", "seed", "bf16")}
    for r in rows:
        assert {"images_per_s", "images_per_s_best", "step_s_median", "gflop_per_image", "flops_per_step",
                "achieved_tflops", "mfu", "peak_mem_bytes", "peak_mem_kind", "params_g", "params_d",
                "channels_last"} <= set(r)
        assert r["images_per_s"] > 0 and r["flops_per_step"] > 0 and r["peak_mem_bytes"] > 0
        assert r["mfu"] is None and r["peak_mem_kind"] == "cpu_peak_rss_not_isolated"
    assert "machine: " in capsys.readouterr().out


def test_train_step_cli_isolates_each_config_in_a_fresh_process(tmp_path):
    out = tmp_path / "ts.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "train_step.py"), "--sizes", "32",
                           "--archs", "seed", "--batch", "2", "--steps", "1", "--warmup", "0", "--no-flops",
                           "--precision", "fp32", "--isolate", "on", "--json", str(out), *TINY_MODEL],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = _load(out)["results"]
    assert row["isolated"] and row["peak_mem_kind"] == "cpu_peak_rss"
    assert row["gflop_per_image"] is None and "G " in proc.stdout


def test_seed_vs_study_json(tmp_path):
    # the study's D takes 224 px only, so this one runs at width 1 (a few seconds)
    out = tmp_path / "svs.json"
    seed_vs_study.main(["--batch", "2", "--rounds", "2", "--steps", "1", "--warmup", "0",
                        "--no-flops", "--precision", "fp32", "--device", "cpu", "--threads", "1",
                        "--json", str(out)])
    d = _load(out)
    (row,) = d["results"]
    assert d["benchmark"] == "seed_vs_study" and row["size"] == 224 and row["batch"] == 2
    assert len(row["study_step_s_all"]) == len(row["ours_step_s_all"]) == 2
    assert row["study_images_per_s"] > 0 and row["ours_images_per_s"] > 0
    ratio = row["ours_images_per_s"] / row["study_images_per_s"]
    assert row["ratio_median"] == pytest.approx(ratio) and row["ratio_cpu"] > 0
    # the same networks: the study's G holds 4 parameters more (bn10, never called)
    assert row["params_g_study"] == row["params_g_ours"] + 4
    assert row["params_d_study"] == row["params_d_ours"]


def test_inference_json(tmp_path):
    out = tmp_path / "inf.json"
    inference.main(["--size", "32", "--hires", "64", "--batch", "2", "--steps", "1", "--hires-steps", "1",
                    "--warmup", "0", "--precision", "fp32,bf16", "--isolate", "off", "--json", str(out),
                    *TINY_MODEL])
    rows = _load(out)["results"]
    assert [r["precision"] for r in rows] == ["fp32", "bf16"]
    for r in rows:
        assert r["images_per_s"] > 0 and r["hires_ms_median"] > 0 and r["batch"] == 2 and r["hires"] == 64


def test_inference_json_torch_and_onnx_side_by_side(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "inf.json"
    inference.main(["--size", "32", "--hires", "64", "--batch", "2", "--steps", "1", "--hires-steps", "1",
                    "--warmup", "0", "--backend", "torch,onnx", "--isolate", "off", "--json", str(out),
                    *TINY_MODEL])
    d = _load(out)
    assert [(r["backend"], r["precision"]) for r in d["results"]] == [
        ("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32")]
    for r in d["results"]:
        assert r["images_per_s"] > 0 and r["hires_ms_median"] > 0 and r["peak_above_base_bytes"] is not None
    (ratio,) = d["ratios"]
    assert ratio["arch"] == "unet11" and ratio["images_per_s"]["ratio"] > 0
    assert isinstance(ratio["hires_ms_median"]["met"], bool)


def test_inference_int8_row_beside_fp32_onnx_on_a_hint_model(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "inf.json"
    inference.main(["--size", "32", "--hires", "64", "--batch", "2", "--steps", "1", "--hires-steps", "1",
                    "--warmup", "0", "--backend", "onnx,int8", "--hints", "--isolate", "off",
                    "--paired", "64", "--rounds", "2", "--json", str(out), *TINY_MODEL])
    d = _load(out)
    assert [(r["backend"], r["precision"], r["hints"]) for r in d["results"]] == [
        ("onnx", "fp32", True), ("int8", "int8", True)]
    assert all(r["images_per_s"] > 0 and r["hires_ms_median"] > 0 for r in d["results"])
    (ratio,) = [r for r in d["ratios"] if r["backend"] == "int8"]
    assert ratio["images_per_s_vs_onnx_fp32"] > 0 and ratio["hires_ms_median_vs_onnx_fp32"] > 0
    (pair,) = d["paired"]     # both in one process, in turn
    assert pair["size"] == 64 and pair["rounds"] == 2
    assert pair["ratio_to_first"]["onnx fp32"] == 1 and pair["ratio_to_first"]["int8 int8"] > 0


def test_pipeline_json_cache_is_built_once_then_reused(tmp_path):
    out = tmp_path / "pipe.json"
    pipeline.main(["--data", "samples", "--size", "32", "--batch", "2", "--workers", "0", "--batches", "2",
                   "--windows", "1", "--warmup-batches", "1", "--cache-dir", str(tmp_path / "cache"),
                   "--device", "cpu", "--threads", "1", "--precision", "fp32,bf16", "--json", str(out)])
    res = _load(out)["results"]
    c = res["cache"]
    assert c["first_built_now"] and not c["second_built_now"]
    assert c["images"] == 5 and c["bytes_on_disk"] > 0 and c["first_s"] > 0
    names = [r["pipeline"] for r in res["loaders"]]
    assert any(n.startswith("ours:") for n in names) and any(n.startswith("straightforward") for n in names)
    assert all(r["images_per_s"] > 0 for r in res["loaders"])
    assert set(res["lab_on_device"]) == {"fp32", "bf16"}


def test_end_to_end_json_has_every_mode_and_the_ratios(tmp_path):
    out = tmp_path / "e2e.json"
    end_to_end.main(["--data", "samples", "--size", "32", "--batch", "2", "--workers", "0", "--steps", "1",
                     "--warmup", "1", "--repeats", "1", "--isolate", "off", "--cache-dir", str(tmp_path / "cache"),
                     "--json", str(out), *TINY_MODEL])
    d = _load(out)
    assert {s["mode"] for s in d["results"]} == set(end_to_end.MODES)
    assert all(s["images_per_s_best"] > 0 for s in d["results"])
    ratios = {r["of"]: r for r in d["ratios"]}
    assert {"pipeline_ours / compute", "ours / compute", "ours / straightforward"} <= set(ratios)
    assert all(isinstance(r["met"], bool) for r in ratios.values() if r["target"] is not None)


def test_gpu_peak_table():
    assert common.gpu_peak_tflops("NVIDIA H100 80GB HBM3") == 989
    assert common.gpu_peak_tflops("NVIDIA H100 PCIe") == 756
    assert common.gpu_peak_tflops("NVIDIA H200") == 989
    assert common.gpu_peak_tflops("NVIDIA A100-SXM4-80GB") == 312
    assert common.gpu_peak_tflops("NVIDIA H100 NVL") is None
    assert common.gpu_peak_tflops("NVIDIA GeForce RTX 4090") is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_step_on_cuda_bf16_channels_last():
    row = train_step.measure(arch="unet11", size=64, batch=4, width=0.25, precision="bf16", device="cuda",
                             steps=2, warmup=1, channels_last="auto")
    assert row["device_type"] == "cuda" and row["channels_last"] is True
    assert row["peak_mem_kind"] == "cuda_max_memory_allocated" and row["peak_mem_bytes"] > 0
    assert row["flops_per_step"] > 0 and row["images_per_s"] > 0
    peak = common.gpu_peak_tflops(torch.cuda.get_device_name(0))
    assert (row["mfu"] is None) == (peak is None)
    inf = inference.measure(arch="unet11", width=0.25, size=64, batch=4, hires=128, precision="bf16",
                            device="cuda", steps=1, warmup=1, hires_steps=1)
    assert inf["channels_last"] is True and inf["images_per_s"] > 0


def test_demo_latency_times_calls_through_the_http_api(tmp_path, capsys):
    pytest.importorskip("gradio_client")
    pytest.importorskip("gradio")
    from conftest import hand_made_checkpoint

    from bench import demo_latency
    ckpt = hand_made_checkpoint(tmp_path / "c.pt", "--model.width", "0.25")
    out = tmp_path / "lat.json"
    demo_latency.main(["--checkpoint", str(ckpt), "--size", "64x48", "--calls", "1", "--warmup",
                       "0", "--threads", "1", "--json", str(out)])
    row, = _load(out)["results"]
    assert row["size"] == "64x48" and row["calls"] == 1 and not row["hints"]
    assert 0 < row["server_s_median"] <= row["http_s_median"]
    assert "demo latency through the HTTP API" in capsys.readouterr().out
