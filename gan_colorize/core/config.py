"""One typed configuration for training, evaluation and benchmarks (its command line: parser.py).

A config is built in three layers: the dataclass defaults below (our default recipe on the
embedded `samples` photos), then a YAML preset (`--config configs/NAME.yaml` or just `NAME`),
then command-line overrides `--section.key value` (or `--section.key=value`). It is validated
before any work starts (checks.py); every mistake is a ConfigError with one line that names the key.
"""
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .atomic import write_atomic
from .errors import UserError
from .specs import DATASETS

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


@dataclass
class ModelConfig:
    generator: str = opt("unet11", "generator architecture")
    discriminator: str = opt("patch", "discriminator architecture")
    width: float = opt(1.0, "channel multiplier for G and D")
    spectral_norm: bool = opt(False, "spectral normalisation on every layer of D (and no norm layers)")


@dataclass
class HintsConfig:
    """Every colour-hint setting: whether the model takes hints and how, how many training draws,
    and the hint counts each tool scores or shows (hints are drawn by data/hints.py)."""
    enabled: bool = opt(False, "colour hints: G and D also see hint_ab and hint_mask (what colour, where)")
    fill: str = opt("none", "hint models: none | input: G also sees the hints spread over the mask (hint_fill.pushpull) and how near a hint is | residual: as input, and G's colour adds to that fill through a learned gain that starts at 0")
    train_p: float = opt(0.125, "training hints: count ~ geometric(p) - 1, so P(none) = p and the mean is (1-p)/p")
    eval: str = opt("0", "evaluate.py: hint counts to score, each on the same samples and masks, e.g. 0,1,2,5,10,20 (hint models)")
    baselines: str = opt("mean,nearest,levin", "evaluate.py: hint baselines scored beside a hint model at each hint count > 0 (hint_fill.py): any of mean, nearest, levin, comma-separated; empty: none")
    val: str = opt("0,10", "hint counts that validation while training scores for a hint model (a model without hints: 0)")
    preview: int = opt(5, "hints on each sample of a hint model's preview grid while training")
    benchmark: str = opt("0,1,3,10", "benchmark export: the hint counts written per case, each evaluate.py's fixed hints of the sample")


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
    init_from: str = opt("", "a new run starts from this checkpoint's weights (G and G_ema from its g_ema, or g; D from its d when it has one), not its step or optimiser; inputs the new model adds (hints.fill) start at zero weight; ignored on resume")
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
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("fp32", "fp32 (default: exact, reproducible numbers) | auto | bf16")


@dataclass
class ColorizeConfig:
    checkpoint: str = opt("", "checkpoint to colorize with; empty: the shipped default")
    backend: str = opt("torch", "torch: --checkpoint is a .pt run by PyTorch | onnx: an .onnx file from `python -m gan_colorize.checkpoint export-onnx`, run by onnxruntime on the CPU in fp32 (pip install -e '.[onnx]')")
    mask: str = opt("", "a mask file (every input), a folder of masks (by file stem) or a family spec")
    select: str = opt("", "click to select, instead of --mask: points x,y;x,y (a leading - removes), in pixels of each input, or a text file of them; the mask is the photo's regions under them (gan_colorize.select_mask)")
    hints: str = opt("", "colour hints: an RGBA PNG (every input) or a folder of them (STEM.png or STEM_hints.png); opaque pixels give their colour")
    out: str = opt("", "output folder")
    composite: str = opt("hard", "hard (default): ab = 0 outside the mask, so colour stays inside it at any resolution | none: the raw output, whose colour, upsampled from the working size, can cross the mask's edge by about one working pixel")
    sheet: bool = opt(False, "also write <stem>_sheet.png: gray | mask | output")
    size: int = opt(0, "working shorter side in px; 0 = the checkpoint's data.size")
    batch_size: int = opt(4, "images per forward pass")
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("auto", "auto (bf16 where measured faster) | fp32 | bf16")
    seed: int = opt(0, "seed of family-spec masks: input i gets the mask of (seed, i)")


@dataclass
class DemoConfig:
    checkpoint: str = opt("", "checkpoint to colorize with; empty: the shipped default")
    backend: str = opt("torch", "as gan-colorize's --backend: torch (a .pt) | onnx (an .onnx file, onnxruntime on the CPU in fp32; pip install -e '.[onnx]')")
    device: str = opt("auto", "auto | cpu | cuda")
    precision: str = opt("auto", "auto (bf16 where measured faster) | fp32 | bf16; as gan-colorize's, so the two agree")
    host: str = opt("127.0.0.1", "address to listen on; 0.0.0.0 opens the page to the whole network")
    port: int = opt(7860, "port to listen on")
    max_side: int = opt(2048, "a photo whose longer side is larger is shown and painted at this size (the mask is scaled up); the output keeps the photo's full size and L")
    max_upload_mb: float = opt(25.0, "largest photo file accepted, in MB")
    max_megapixels: float = opt(40.0, "largest photo accepted, in megapixels, read from the header before any decoding (decompression bombs)")


@dataclass
class MaskPreviewConfig:
    families: str = opt("", "mask spec to draw, e.g. impa,brush,blobs (required)")
    out: str = opt("", "the contact sheet PNG to write (required)")
    size: int = opt(128, "tile side in px, >= 8")
    n: int = opt(8, "draws per family, >= 1")
    seed: int = opt(0, "seed of the draws, >= 0")


@dataclass
class DedupConfig:
    flowers17: str = opt("", "Flowers17 root, holding jpg/ (required)")
    flowers102: str = opt("", "Flowers102 root, holding jpg/ (required)")
    threshold: int = opt(72, "largest distance (bits of the 255-bit hash) of a near-duplicate, data/dedup.py's DUPLICATE_BITS")
    out: str = opt("", "write the list here (the package's is gan_colorize/data/lists/flowers102_in_flowers17.txt); empty: print the counts only")
    workers: int = opt(2, "hashing processes, >= 1")


@dataclass
class ExportConfig:
    fp32: bool = opt(False, "export: keep float32 weights (else float16); export-onnx writes float32")
    int8: bool = opt(False, "export-onnx: quantize to int8 (onnxruntime static quantization calibrated on training crops; apps/quantize.py)")
    calib_data: str = opt("", "export-onnx --int8: data to calibrate on, as data.mix (NAME=ROOT:WEIGHT,...); empty: the checkpoint's own training data")
    calib_images: int = opt(64, "export-onnx --int8: training crops to calibrate on, >= 1")


@dataclass
class BenchmarkConfig:
    set: str = opt("", "export: a named test set, which sets data.name, eval.masks, masks.pairing random and data.min_ab_range 0 (the whole split) unless given: bsds500 (human object masks) | intel_scenes (blobs, superpixels, rect) | flowers17 (impa) | samples (the embedded photos); data.root is still needed")
    out: str = opt("", "export: the cases folder to write | fill: the outputs folder to write | score: the report folder (default <outputs>/score)")
    cases: str = opt("", "fill, score: a cases folder written by export")
    outputs: str = opt("", "score: a method's outputs: <outputs>/<N>/<case id>.png per hint count N (any image format and size)")
    size: int = opt(0, "export: 0 = each image's centre square at full resolution | N = evaluate.py's samples at --eval.size N exactly (a multiple of 32)")
    truth: str = opt("", "export: the folder of the ground truth, kept apart from the cases; empty: <out>/truth")
    method: str = opt("levin", "fill: the hint fill without learning to run on the cases: mean | nearest | levin")
    name: str = opt("", "score: the method's name in the report; empty: the outputs folder's name")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    hints: HintsConfig = field(default_factory=HintsConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    colorize: ColorizeConfig = field(default_factory=ColorizeConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    mask_preview: MaskPreviewConfig = field(default_factory=MaskPreviewConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
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
    "hints.fill": ("none", "input", "residual"),
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
    "demo.backend": ("torch", "onnx"),
    "colorize.composite": ("none", "hard"),
    "colorize.precision": ("auto", "fp32", "bf16"),
    "demo.precision": ("auto", "fp32", "bf16"),
}
# hints.baselines: the hint fills without learning that evaluate.py scores (hint_fill.py)
HINT_BASELINES = ("mean", "nearest", "levin")
# benchmark.set: the benchmark's named test sets (their keys: eval/benchmark_sets.py)
BENCHMARK_SETS = ("bsds500", "intel_scenes", "flowers17", "samples")
# Keys that were renamed, old -> new. An old key still works wherever a key is read (command
# lines, YAML presets, saved configs in checkpoints and config.json), under its new name.
RENAMED = {"masks.eval": "masks.preview",
           "model.hints": "hints.enabled", "model.hint_fill": "hints.fill",
           "masks.hint_p": "hints.train_p", "eval.hints": "hints.eval",
           "eval.baselines": "hints.baselines"}
# ... except these, whose old name now reads as another setting (masks.eval beside eval.masks):
# on a command line or in a preset they are an error that names the new key; saved configs load.
REFUSED = ("masks.eval",)


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
    An old key of RENAMED sets its new key; one of REFUSED is an error naming the new key, unless
    renamed_ok (saved configs)."""
    if key in RENAMED:
        if key in REFUSED and not renamed_ok:
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


def upgrade_dict(d):
    """A config dict (to_dict() output, perhaps written before a rename) with every RENAMED old
    key moved to its new name; the input is left as it is. Keys and types are not checked."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    for old, new in RENAMED.items():
        (s_old, k_old), (s_new, k_new) = old.split("."), new.split(".")
        if isinstance(out.get(s_old), dict) and k_old in out[s_old]:
            value = out[s_old].pop(k_old)
            out.setdefault(s_new, {}).setdefault(k_new, value)
    return out


def from_dict(d):
    """A Config from `to_dict()` output (checkpoints, saved config.json); validates keys and types."""
    cfg = Config()
    _apply_dict(cfg, {k: v for k, v in d.items() if k != "preset"}, "config dict", renamed_ok=True)
    cfg.preset = d.get("preset", "")
    return cfg


def save_config(cfg, path):
    """Write the resolved config as JSON, atomically."""
    write_atomic(path, json.dumps(cfg.to_dict(), indent=2) + "\n")
