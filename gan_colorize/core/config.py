"""One typed configuration for training, evaluation and benchmarks (its command line: parser.py).

A config is built in three layers: the dataclass defaults below (our default recipe on the
embedded `samples` photos), then a YAML preset (`--config configs/NAME.yaml` or just `NAME`),
then command-line overrides `--section.key value` (or `--section.key=value`). It is validated
before any work starts; every mistake is a ConfigError with one line that names the key.
"""
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .atomic import write_atomic
from .errors import UserError
from .specs import (DATASETS, MaskSpecError, MixSpecError, check_mask_spec, check_roots, is_fixed,
                    parse_mix, resolve_spec)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


class ConfigError(UserError):
    """A bad config key or value; the message names the key."""

    def __init__(self, message=""):
        # keys and values are user text: a newline or other control character in one must not
        # break the one-line message, so they are shown escaped (\n, \x00, ...)
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message)))


def opt(default, help):
    """A config field with its one line of meaning, shown by every tool's --help."""
    return field(default=default, metadata={"help": help})


@dataclass
class DataConfig:
    name: str = opt("samples", "dataset: samples (embedded photos) | flowers17 | flowers102 | folder (split by path hash) | split_folders (root/train, root/test, root/val or val from train by hash) | bsds500")
    root: str = opt("", "dataset folder; unused by samples")
    mix: str = opt("", "train on a weighted mixture instead: NAME=ROOT:WEIGHT,... e.g. flowers102=DIR:3,folder=DIR:1; each part keeps its own splits and cache, evaluate.py scores each on its own")
    flowers102_split: str = opt("official", "flowers102: official (train 1020 / val 1020 / test 6149) | train+test (train on the official train + test ids, 7169; val and test are the official val, 1020); both leave out of train the images that repeat Flowers17 ones")
    size: int = opt(64, "training crop side in px, a multiple of 32")
    cache_dir: str = opt("~/.cache/gan_colorize", "where the decoded uint8 image cache is kept")
    workers: int = opt(2, "DataLoader worker processes per training process")
    min_ab_range: float = opt(5.0, "images whose ab range (Lab units) is below this are left out as gray")
    val_fraction: float = opt(0.1, "folder datasets: share of images (by path hash) for val; split_folders without val/: the share of train/")
    test_fraction: float = opt(0.1, "folder datasets: share of images (by path hash) for test")


@dataclass
class MaskConfig:
    train: str = opt("impa:1,stripes:1,grid:1,rect:1,brush:1", "mask family mixture drawn for training")
    preview: str = opt("impa:1", "mask families of the fixed sample grid shown while training")
    pairing: str = opt("random", "random: a fresh mask per draw; all: every image with every fixed mask")
    hint_p: float = opt(0.125, "training hints (model.hints): count ~ geometric(p) - 1, so P(none) = p and the mean is (1-p)/p")


@dataclass
class ModelConfig:
    generator: str = opt("unet11", "generator architecture")
    discriminator: str = opt("patch", "discriminator architecture")
    width: float = opt(1.0, "channel multiplier for G and D")
    spectral_norm: bool = opt(False, "spectral normalisation on every layer of D (and no norm layers)")
    hints: bool = opt(False, "colour hints: G and D also see hint_ab and hint_mask (what colour, where)")
    hint_fill: str = opt("none", "hint models: none | input: G also sees the hints spread over the mask (hint_fill.pushpull) and how near a hint is | residual: as input, and G's colour adds to that fill through a learned gain that starts at 0")


@dataclass
class LossConfig:
    adversarial: str = opt("vanilla", "adversarial loss: vanilla (BCE) | lsgan | hinge")
    adv_weight: float = opt(1.0, "weight of the adversarial term in G's loss")
    label_smoothing: float = opt(0.0, "one-sided: D's real targets become 1 - label_smoothing")
    real_target: str = opt("partial", "what D is shown as real: partial (ab_real*mask) | full (the study's bug)")
    l1_weight: float = opt(100.0, "weight of the L1 loss against the desired output ab_real*mask")
    mask_loss: str = opt("l2", "mask loss: l2 (squared error) | huber")
    mask_weight_in: float = opt(0.0, "weight of the mask loss inside the mask (averaged over its pixels)")
    mask_weight_out: float = opt(100.0, "weight of the mask loss outside the mask (averaged over its pixels)")
    huber_delta: float = opt(0.05, "Huber threshold in model ab units (x110 for Lab units)")


@dataclass
class TrainConfig:
    steps: int = opt(2000, "optimiser steps (one D step + one G step each)")
    batch_size: int = opt(16, "images per step, per process")
    lr_g: float = opt(2e-4, "Adam learning rate of G")
    lr_d: float = opt(2e-4, "Adam learning rate of D")
    beta1: float = opt(0.5, "Adam beta1 (G and D)")
    beta2: float = opt(0.999, "Adam beta2 (G and D)")
    lr_decay: str = opt("none", "none | linear (to 0 at the last step)")
    decay_start: float = opt(0.5, "fraction of steps after which the linear decay starts")
    ema_decay: float = opt(0.999, "decay of G_ema, the averaged G used for samples and evaluation; 0 copies G")
    seed: int = opt(0, "seed of the weights, the data order, masks and augmentation")
    device: str = opt("auto", "auto (cuda when available) | cpu | cuda")
    precision: str = opt("auto", "auto (bf16 on CUDA and on CPUs with AMX/AVX-512 bf16, else fp32) | fp32 | bf16")
    channels_last: str = opt("auto", "channels_last memory format: auto (on for CUDA) | on | off")
    compile: bool = opt(False, "torch.compile G and D")
    log_every: int = opt(20, "steps between scalar logs (TensorBoard, metrics.jsonl)")
    sample_every: int = opt(200, "steps between sample grids (samples/, TensorBoard)")
    ckpt_every: int = opt(500, "steps between numbered checkpoints")
    latest_every: int = opt(100, "steps between latest.pt writes")
    eval_every: int = opt(1000, "steps between validations of G_ema on fixed val samples (and at the last step), logged as val/* and kept as checkpoints/best.pt; 0: never")
    eval_samples: int = opt(200, "validation samples per dataset (per part of data.mix), spread over its val split")
    out_dir: str = opt("runs", "folder that holds the run folders")
    name: str = opt("", "run folder name; empty: <date>-<time>-<preset>")
    resume: str = opt("", "empty (a new run) | auto (the newest run of this name or preset) | a checkpoint path")
    init_from: str = opt("", "a new run starts from this checkpoint's weights (G and G_ema from its g_ema, or g; D from its d when it has one), not its step or optimiser; inputs the new model adds (model.hint_fill) start at zero weight; ignored on resume")
    max_bad_steps: int = opt(20, "stop after this many steps in a row with non-finite losses")


@dataclass
class EvalConfig:
    checkpoint: str = opt("", "evaluate.py: the training checkpoint to score (its G_ema)")
    out: str = opt("", "evaluate.py: output folder; empty: <run_dir>/eval/<split>-<masks>")
    split: str = opt("test", "the split to score")
    masks: str = opt("impa:1", "mask family mixture to score, or a mask file or folder")
    seed: int = opt(0, "seed of the evaluation masks: sample i gets the mask of (seed, i)")
    batch_size: int = opt(16, "images per forward pass (does not change the numbers)")
    max_samples: int = opt(0, "score only the first N samples; 0 = the whole split")
    size: int = opt(0, "evaluation crop side in px; 0 = data.size")
    hints: str = opt("0", "hint counts to score, each on the same samples and masks, e.g. 0,1,2,5,10,20 (hint models)")
    baselines: str = opt("mean,nearest,levin", "hint baselines scored beside a hint model at each hint count > 0 (hint_fill.py): any of mean, nearest, levin, comma-separated; empty: none")
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("fp32", "fp32 (default: exact, reproducible numbers) | auto | bf16")


@dataclass
class ColorizeConfig:
    checkpoint: str = opt("", "checkpoint to colorize with; empty: the shipped default")
    backend: str = opt("torch", "torch: --checkpoint is a .pt run by PyTorch | onnx: an .onnx file from `python -m gan_colorize.checkpoint export-onnx`, run by onnxruntime on the CPU in fp32 (pip install -e '.[onnx]')")
    mask: str = opt("", "a mask file (every input), a folder of masks (by file stem) or a family spec")
    hints: str = opt("", "colour hints: an RGBA PNG (every input) or a folder of them (STEM.png or STEM_hints.png); opaque pixels give their colour")
    out: str = opt("", "output folder")
    composite: str = opt("none", "hard: force ab = 0 outside the mask; none: the raw output")
    sheet: bool = opt(False, "also write <stem>_sheet.png: gray | mask | output")
    size: int = opt(0, "working shorter side in px; 0 = the checkpoint's data.size")
    batch_size: int = opt(4, "images per forward pass")
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("auto", "auto (bf16 where measured faster) | fp32 | bf16")
    seed: int = opt(0, "seed of family-spec masks: input i gets the mask of (seed, i)")


@dataclass
class DemoConfig:
    checkpoint: str = opt("", "checkpoint to colorize with; empty: the shipped default")
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("auto", "auto (bf16 where measured faster) | fp32 | bf16; as gan-colorize's, so the two agree")
    host: str = opt("127.0.0.1", "address to listen on; 0.0.0.0 opens the page to the whole network")
    port: int = opt(7860, "port to listen on")
    max_side: int = opt(2048, "a photo whose longer side is larger is shown and painted at this size (the mask is scaled up); the output keeps the photo's full size and L")
    max_upload_mb: float = opt(25.0, "largest photo file accepted, in MB")
    max_megapixels: float = opt(40.0, "largest photo accepted, in megapixels, read from the header before any decoding (decompression bombs)")


@dataclass
class BenchmarkConfig:
    set: str = opt("", "export: a named test set, which sets data.name, eval.masks, masks.pairing random and data.min_ab_range 0 (the whole split) unless given: bsds500 (human object masks) | intel_scenes (blobs, superpixels, rect) | flowers17 (impa) | samples (the embedded photos); data.root is still needed")
    out: str = opt("", "export: the cases folder to write | fill: the outputs folder to write | score: the report folder (default <outputs>/score)")
    cases: str = opt("", "fill, score: a cases folder written by export")
    outputs: str = opt("", "score: a method's outputs: <outputs>/<N>/<case id>.png per hint count N (any image format and size)")
    size: int = opt(0, "export: 0 = each image's centre square at full resolution | N = evaluate.py's samples at --eval.size N exactly (a multiple of 32)")
    hints: str = opt("0,1,3,10", "export: the hint counts; each count's hints are evaluate.py's fixed hints of the sample")
    truth: str = opt("", "export: the folder of the ground truth, kept apart from the cases; empty: <out>/truth")
    method: str = opt("levin", "fill: the hint fill without learning to run on the cases: mean | nearest | levin")
    name: str = opt("", "score: the method's name in the report; empty: the outputs folder's name")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    colorize: ColorizeConfig = field(default_factory=ColorizeConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    preset: str = ""                 # the preset this config was built from, for run names

    def to_dict(self):
        return dataclasses.asdict(self)


CHOICES = {
    "data.name": DATASETS,
    "data.flowers102_split": ("official", "train+test"),
    "masks.pairing": ("random", "all"),
    "model.generator": ("unet11", "seed"),
    "model.discriminator": ("patch", "seed"),
    "model.hint_fill": ("none", "input", "residual"),
    "loss.adversarial": ("vanilla", "lsgan", "hinge"),
    "loss.real_target": ("partial", "full"),
    "loss.mask_loss": ("l2", "huber"),
    "train.lr_decay": ("none", "linear"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("auto", "fp32", "bf16"),
    "train.channels_last": ("auto", "on", "off"),
    "eval.split": ("train", "val", "test"),
    "eval.precision": ("auto", "fp32", "bf16"),
    "colorize.backend": ("torch", "onnx"),
    "colorize.composite": ("none", "hard"),
    "colorize.precision": ("auto", "fp32", "bf16"),
    "demo.precision": ("auto", "fp32", "bf16"),
}
# eval.baselines: the hint fills without learning that evaluate.py scores (hint_fill.py)
HINT_BASELINES = ("mean", "nearest", "levin")
# benchmark.set: the benchmark's named test sets (their keys: eval/benchmark_sets.py)
BENCHMARK_SETS = ("bsds500", "intel_scenes", "flowers17", "samples")
# Keys that were renamed: giving the old one is an error that names the new one. Saved configs
# (checkpoints, config.json) with an old key still load, under the new name.
RENAMED = {"masks.eval": "masks.preview"}


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _coerce(key, value, typ):
    """Turn a YAML or command-line value into `typ`, or raise a ConfigError naming `key`."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}")


def _section_types(section):
    return {f.name: f.type if isinstance(f.type, type) else eval(f.type) for f in fields(section)}


def sections():
    return [f.name for f in fields(Config) if f.name != "preset"]


def set_key(cfg, key, value, renamed_ok=False):
    """cfg.<section>.<key> = value, coerced to the field's type; an unknown key is a ConfigError.
    An old key of RENAMED is an error naming the new one, unless renamed_ok (saved configs)."""
    if key in RENAMED:
        if not renamed_ok:
            raise ConfigError(f"{key}: this key is now {RENAMED[key]}")
        key = RENAMED[key]
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in sections():
        raise ConfigError(f"{key}: unknown config key (sections: {', '.join(sections())})")
    section = getattr(cfg, parts[0])
    types = _section_types(section)
    if parts[1] not in types:
        raise ConfigError(f"{key}: unknown config key (known in {parts[0]}: {', '.join(types)})")
    setattr(section, parts[1], _coerce(key, value, types[parts[1]]))


def _apply_dict(cfg, d, source, renamed_ok=False):
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    for section, values in d.items():
        if section == "preset":
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a mapping in {source}, got {values!r}")
        for k, v in values.items():
            set_key(cfg, f"{section}.{k}", v, renamed_ok)


def find_preset(name):
    """A preset path: an existing file, or NAME / NAME.yaml under configs/."""
    for cand in (Path(name), CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if cand.is_file():
            return cand
    raise ConfigError(f"--config: no such preset or file: {name}")


def load_preset(cfg, name):
    path = find_preset(name)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "parse error"
        raise ConfigError(f"--config: {path} is not valid YAML: {first}") from None
    _apply_dict(cfg, d, str(path))
    cfg.preset = path.stem
    return cfg


def from_dict(d):
    """A Config from `to_dict()` output (checkpoints, saved config.json); validates keys and types."""
    cfg = Config()
    _apply_dict(cfg, {k: v for k, v in d.items() if k != "preset"}, "config dict", renamed_ok=True)
    cfg.preset = d.get("preset", "")
    return cfg


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
    need("model.hint_fill", cfg.model.hint_fill == "none" or cfg.model.hints,
         "needs model.hints true (it spreads the hints)")
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
    """eval.hints '0,1,2,5' -> [0, 1, 2, 5]; ValueError when it is not a list of counts >= 0."""
    counts = [int(x) for x in str(text).split(",") if x.strip()]
    if not counts or min(counts) < 0 or len(set(counts)) != len(counts):
        raise ValueError(text)
    return counts


def _check_tools(cfg, need):
    """The hint, evaluate.py, gan-colorize and gan-colorize-demo settings."""
    e, c, dm = cfg.eval, cfg.colorize, cfg.demo
    need("masks.hint_p", 0 < cfg.masks.hint_p <= 1, "must be in (0, 1]")
    try:
        hint_counts(e.hints)
        counts_ok = True
    except ValueError:
        counts_ok = False
    need("eval.hints", counts_ok, "must be distinct hint counts >= 0, e.g. 0,1,2,5,10,20")
    need("eval.baselines", all(b.strip() in HINT_BASELINES for b in e.baselines.split(",") if b.strip()),
         f"must be a comma-separated list of {', '.join(HINT_BASELINES)} (or empty)")
    need("eval.device", _device_ok(e.device), "is not one of auto, cpu, cuda, cuda:N")
    need("colorize.device", _device_ok(c.device), "is not one of auto, cpu, cuda, cuda:N")
    need("colorize.size", c.size == 0 or 32 <= c.size <= 8192, "must be 0 or in [32, 8192]")
    need("colorize.batch_size", c.batch_size >= 1, "must be >= 1")
    need("colorize.seed", c.seed >= 0, "must be >= 0")
    onnx = c.backend == "onnx"
    need("colorize.checkpoint", not onnx or c.checkpoint,
         "must name an .onnx file with --backend onnx (make one with python -m "
         "gan_colorize.checkpoint export-onnx CHECKPOINT OUT.onnx)")
    need("colorize.checkpoint", onnx or not c.checkpoint.lower().endswith(".onnx"),
         "is an ONNX file: run it with --backend onnx")
    need("colorize.device", not onnx or c.device in ("auto", "cpu"),
         "is not available with --backend onnx, which runs on the CPU: use cpu or auto")
    need("colorize.precision", not onnx or c.precision in ("auto", "fp32"),
         "is not available with --backend onnx, which runs in fp32: use fp32 or auto")
    need("demo.device", _device_ok(dm.device), "is not one of auto, cpu, cuda, cuda:N")
    need("demo.host", bool(dm.host.strip()), "must be an address, e.g. 127.0.0.1")
    need("demo.port", 1 <= dm.port <= 65535, "must be in [1, 65535]")
    need("demo.max_side", 64 <= dm.max_side <= 16384, "must be in [64, 16384]")
    for k in ("max_upload_mb", "max_megapixels"):
        need(f"demo.{k}", math.isfinite(getattr(dm, k)) and getattr(dm, k) > 0, "must be > 0")
    b = cfg.benchmark
    need("benchmark.size", b.size == 0 or (b.size >= 32 and b.size % 32 == 0),
         "must be 0 (full resolution) or a positive multiple of 32")
    try:
        hint_counts(b.hints)
        counts_ok = True
    except ValueError:
        counts_ok = False
    need("benchmark.hints", counts_ok, "must be distinct hint counts >= 0, e.g. 0,1,3,10")
    need("benchmark.set", b.set in ("",) + BENCHMARK_SETS,
         f"is not one of {', '.join(BENCHMARK_SETS)} (or empty: the data and eval keys as given)")
    need("benchmark.method", b.method in HINT_BASELINES, f"must be one of {', '.join(HINT_BASELINES)}")


def save_config(cfg, path):
    """Write the resolved config as JSON, atomically."""
    write_atomic(path, json.dumps(cfg.to_dict(), indent=2) + "\n")
