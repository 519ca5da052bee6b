"""The config's validation (config.py's sections): check(cfg) raises a ConfigError that names
the first bad key, before any work starts; the data code trusts what it checks. And the parsers
of the list-valued keys (hint_counts, baseline_names) that the tools share.
"""
import math
import os

from .config import BENCHMARK_SETS, CHOICES, HINT_BASELINES, ConfigError
from .specs import MaskSpecError, MixSpecError, check_mask_spec, check_roots, is_fixed, parse_mix, resolve_spec


def check(cfg, check_paths=True, training=True):
    """Raise ConfigError naming the first bad key; cheap, so it runs before any work.
    training=False (evaluation) skips the checks that only the training loader needs."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")

    def need(key, ok, what):
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"{key}: {getattr(getattr(cfg, section), name)!r} {what}")

    d, t, l, e = cfg.data, cfg.train, cfg.loss, cfg.eval
    _check_tools(cfg, need)
    need("data.size", d.size >= 32 and d.size % 32 == 0, "must be a positive multiple of 32")
    need("eval.size", e.size == 0 or (e.size >= 32 and e.size % 32 == 0),
         "must be 0 or a positive multiple of 32")
    need("data.workers", d.workers >= 0, "must be >= 0")
    need("data.min_ab_range", d.min_ab_range >= 0, "must be >= 0")
    need("data.val_fraction", 0 <= d.val_fraction < 1, "must be in [0, 1)")
    need("data.test_fraction", 0 <= d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1,
         "must be in [0, 1) with val_fraction + test_fraction < 1")
    need("model.width", 0 < cfg.model.width <= 8, "must be in (0, 8]")
    need("hints.fill", cfg.hints.fill == "none" or cfg.hints.enabled,
         "needs hints.enabled true (it spreads the hints)")
    for k in ("lr_g", "lr_d"):
        need(f"train.{k}", math.isfinite(getattr(t, k)) and getattr(t, k) > 0, "must be > 0")
    for k in ("beta1", "beta2"):
        need(f"train.{k}", 0 <= getattr(t, k) < 1, "must be in [0, 1)")
    need("train.ema_decay", 0 <= t.ema_decay < 1, "must be in [0, 1)")
    need("train.decay_start", 0 <= t.decay_start < 1, "must be in [0, 1)")
    for k in ("steps", "batch_size", "log_every", "sample_every", "ckpt_every", "latest_every",
              "max_bad_steps"):
        need(f"train.{k}", getattr(t, k) >= 1, "must be >= 1")
    need("train.eval_every", t.eval_every >= 0, "must be >= 0 (0: no validation)")
    need("train.eval_samples", t.eval_samples >= 1, "must be >= 1")
    need("eval.batch_size", e.batch_size >= 1, "must be >= 1")
    need("eval.max_samples", e.max_samples >= 0, "must be >= 0")
    need("loss.label_smoothing", 0 <= l.label_smoothing < 0.5, "must be in [0, 0.5)")
    need("loss.huber_delta", l.huber_delta > 0, "must be > 0")
    for k in ("adv_weight", "l1_weight", "mask_weight_in", "mask_weight_out"):
        need(f"loss.{k}", math.isfinite(getattr(l, k)) and getattr(l, k) >= 0, "must be >= 0")
    if d.name != "samples" and not d.mix:   # data.mix replaces data.name / data.root
        need("data.root", bool(d.root), f"must be set for data.name={d.name}")
        if check_paths:
            need("data.root", os.path.isdir(os.path.expanduser(d.root)), "does not exist or is not a folder")
    if d.mix:
        try:
            parse_mix(d.mix)
            if check_paths:
                check_roots(d.mix)
        except MixSpecError as err:
            raise ConfigError(f"data.mix: {err}") from None
    if t.init_from and check_paths:
        need("train.init_from", os.path.isfile(os.path.expanduser(t.init_from)), "is not a file")
    if t.resume not in ("", "auto") and check_paths:
        need("train.resume", os.path.isfile(t.resume), "is not a file (use auto or a checkpoint path)")

    # The data code trusts what is checked here: the names above, the fractions, and pairing=all
    # only with fixed training masks. A spec may be a bare mask file or folder (resolve_spec).
    for key, spec in (("masks.train", cfg.masks.train), ("masks.preview", cfg.masks.preview),
                      ("eval.masks", e.masks)):
        try:
            entries = check_mask_spec(resolve_spec(spec))
        except MaskSpecError as err:
            raise ConfigError(f"{key}: {err}") from None
        if training and key == "masks.train" and cfg.masks.pairing == "all" and not is_fixed(entries):
            raise ConfigError(f"masks.pairing: 'all' needs fixed mask families (impa, full, empty, "
                              f"file), got {spec!r}")
    return cfg


def _device_ok(name):
    return name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())


def hint_counts(text):
    """hints.eval '0,1,2,5' -> [0, 1, 2, 5]; ValueError when it is not a list of counts >= 0."""
    counts = [int(x) for x in str(text).split(",") if x.strip()]
    if not counts or min(counts) < 0 or len(set(counts)) != len(counts):
        raise ValueError(text)
    return counts


def baseline_names(text):
    """hints.baselines 'mean, levin' -> ['mean', 'levin'] (empty: [])."""
    return [b.strip() for b in str(text).split(",") if b.strip()]


def _check_tools(cfg, need):
    """The hint, evaluate.py, gan-colorize and gan-colorize-demo settings."""
    e, c, dm, hn = cfg.eval, cfg.colorize, cfg.demo, cfg.hints
    need("hints.train_p", 0 < hn.train_p <= 1, "must be in (0, 1]")
    for key in ("eval", "val", "benchmark"):
        try:
            hint_counts(getattr(hn, key))
            counts_ok = True
        except ValueError:
            counts_ok = False
        need(f"hints.{key}", counts_ok, "must be distinct hint counts >= 0, e.g. 0,1,2,5,10,20")
    need("hints.preview", hn.preview >= 0, "must be >= 0")
    need("hints.baselines", all(b in HINT_BASELINES for b in baseline_names(hn.baselines)),
         f"must be a comma-separated list of {', '.join(HINT_BASELINES)} (or empty)")
    need("eval.device", _device_ok(e.device), "is not one of auto, cpu, cuda, cuda:N")
    need("colorize.device", _device_ok(c.device), "is not one of auto, cpu, cuda, cuda:N")
    need("colorize.size", c.size == 0 or 32 <= c.size <= 8192, "must be 0 or in [32, 8192]")
    need("colorize.batch_size", c.batch_size >= 1, "must be >= 1")
    need("colorize.seed", c.seed >= 0, "must be >= 0")
    for name, t in (("colorize", c), ("demo", dm)):   # the same backend rules for both tools
        onnx = t.backend == "onnx"
        need(f"{name}.checkpoint", not onnx or t.checkpoint,
             "must name an .onnx file with --backend onnx (make one with python -m "
             "gan_colorize.checkpoint export-onnx CHECKPOINT OUT.onnx)")
        need(f"{name}.checkpoint", onnx or not t.checkpoint.lower().endswith(".onnx"),
             "is an ONNX file: run it with --backend onnx")
        need(f"{name}.device", not onnx or t.device in ("auto", "cpu"),
             "is not available with --backend onnx, which runs on the CPU: use cpu or auto")
        need(f"{name}.precision", not onnx or t.precision in ("auto", "fp32"),
             "is not available with --backend onnx, which runs in fp32: use fp32 or auto")
    need("export.calib_images", cfg.export.calib_images >= 1, "must be >= 1")
    need("demo.device", _device_ok(dm.device), "is not one of auto, cpu, cuda, cuda:N")
    need("demo.host", bool(dm.host.strip()), "must be an address, e.g. 127.0.0.1")
    need("demo.port", 1 <= dm.port <= 65535, "must be in [1, 65535]")
    need("demo.max_side", 64 <= dm.max_side <= 16384, "must be in [64, 16384]")
    for k in ("max_upload_mb", "max_megapixels"):
        need(f"demo.{k}", math.isfinite(getattr(dm, k)) and getattr(dm, k) > 0, "must be > 0")
    b = cfg.benchmark
    need("benchmark.size", b.size == 0 or (b.size >= 32 and b.size % 32 == 0),
         "must be 0 (full resolution) or a positive multiple of 32")
    need("benchmark.set", b.set in ("",) + BENCHMARK_SETS,
         f"is not one of {', '.join(BENCHMARK_SETS)} (or empty: the data and eval keys as given)")
    need("benchmark.method", b.method in HINT_BASELINES, f"must be one of {', '.join(HINT_BASELINES)}")
