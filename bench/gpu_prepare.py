"""Prepare, on the CPU, what bench/gpu_run.py needs on a GPU machine that sees no network and no
../shared: the training data and the albumentations wheels, in one ignored folder (.gpu_carry/)
that the device tool carries beside the working tree.

    python bench/gpu_prepare.py                       # ../shared/datasets -> .gpu_carry/
    python bench/gpu_prepare.py --no-wheels           # data only (no PyPI)

What goes in (MANIFEST.json lists it, with counts, bytes and a digest of each file list):
- data.tar.gz: the train and val images of the datasets that gpu_run's recipe mixes (its test images
  stay behind: the GPU model is scored back here, on ../shared), each in its own layout so
  that splits.py gives every carried image the split it has in ../shared:
  flowers17 (jpg/), imagenet_samples (images/, a `folder`), intel_scenes (train/ only, a
  `split_folders`; its val share is drawn from train/) and flowers102 (jpg/ with a setid.mat
  rewritten to the carried ids: its val subset and as many train images as the budget holds,
  in a fixed hash order). Images are decoded as the package decodes them (imageio.read_rgb,
  EXIF turned) and resized as its cache resizes them (cache.resize_short) to a shorter side of
  --short px (74 = the cache's side for 64 px training, so the cache on the GPU keeps them as
  they are), JPEG quality --quality with full-resolution chroma (4:4:4: the targets are
  colour). intel_scenes is copied as it is (80 px, JPEG 85). 64 px is therefore the largest
  training size this carry serves.
  One archive, not thousands of small files: what the tool counts is then what this command
  counts, and gpu_run unpacks it in a second.
- whl/: albumentations and the packages it needs that the GPU image lacks (KINDS.md's list),
  for Python 3.12 manylinux x86_64; their requirements are checked against that list.

The size limit: the device tool sends the working tree (tracked and untracked, not ignored
files) and the carried folder together, 64 MiB at most. The default budget is 64 MiB less the
tree as it is now, less --margin-mib; Flowers102's train images fill what is left. Exit status 1
when the carry does not fit.
"""
import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MiB = 1024 * 1024
LIMIT_MIB = 64          # the device tool's limit on what travels (tree + carried paths)
TRAIN_SIZE = 64         # what the carried data serves: cache side round(1.15 * 64) = 74

# (pinned wheel, why): albumentations 2.x and what the GPU image lacks. stringzilla 3.12 rather
# than 5.x: albucore accepts >= 3.10.4, and its wheel is 0.3 MB instead of 4.2 MB (checked here:
# albucore's LUT path, the only one that uses it, gives the same bytes).
WHEELS = (
    "albumentations==2.0.8",
    "albucore==0.0.24",
    "pydantic==2.13.4",
    "pydantic-core==2.46.4",
    "annotated-types==0.7.0",
    "typing-inspection==0.4.2",
    "typing-extensions==4.16.0",   # the image has it, maybe older than pydantic-core's >= 4.14.1
    "stringzilla==3.12.6",
    "simsimd==6.5.16",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64")
# Python packages of the GPU machines' image ('cuda'), as /work/.library/device/KINDS.md lists them
GPU_IMAGE = set("""absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio
attrs botorch build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops
equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11
h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax
jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning
lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib
mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc
nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver
nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink
nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax
opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout
pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors
scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools
shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch
torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash
yarl zipp""".split())

# The datasets of gpu_run's mixture (results/hints.sh's), as ../shared/datasets names them
DATASETS = ("flowers17", "imagenet_samples", "intel_scenes", "flowers102")


def canon(name):
    return name.lower().replace("_", "-").replace(".", "-")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sizes

def tree_bytes(repo=REPO):
    """Bytes of what the device tool sends besides carried paths: tracked and untracked files
    that git does not ignore (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=repo, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    total = 0
    for name in filter(None, out.decode(errors="replace").split("\0")):
        p = repo / name
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# --------------------------------------------------------------------------- wheels

def download_wheels(dest, specs=WHEELS):
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + list(specs), check=True)
    wanted = {canon(s.split("==")[0]): s.split("==")[1] for s in specs}
    for whl in dest.glob("*.whl"):   # one version of each: two stop the whole install there
        name, version = whl.name.split("-")[:2]
        if wanted.get(canon(name)) != version:
            log(f"  removing {whl.name} (not in the pinned list)")
            whl.unlink()


def wheel_requirements(whl):
    """[Requires-Dist lines] of a wheel, from its METADATA."""
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode()
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def check_wheels(dest, provided=GPU_IMAGE):
    """Every requirement of the carried wheels, for CPython 3.12 on Linux without extras, is
    met by a carried wheel (name and version) or named in the GPU image -> [problems]."""
    from packaging.requirements import Requirement
    from packaging.version import Version
    env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    have = {}
    for whl in dest.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        have[canon(name)] = Version(version)
    problems = []
    for whl in sorted(dest.glob("*.whl")):
        for line in wheel_requirements(whl):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            n = canon(req.name)
            if n in have:
                if not req.specifier.contains(have[n], prereleases=True):
                    problems.append(f"{whl.name}: needs {line}, carries {n} {have[n]}")
            elif n not in provided:
                problems.append(f"{whl.name}: needs {line}, neither carried nor in the GPU image")
    return problems


# --------------------------------------------------------------------------- data

def _digest(names):
    return hashlib.sha1("\n".join(sorted(names)).encode()).hexdigest()[:16]


def _order(key):
    """A fixed order that does not depend on which other files exist."""
    return hashlib.sha1(f"gpu_carry:{key}".encode()).hexdigest()


def _records(name, root, split):
    from gan_colorize.core.parser import load_config
    from gan_colorize.data.splits import list_split
    data_name = {"imagenet_samples": "folder", "intel_scenes": "split_folders"}.get(name, name)
    cfg = load_config(["--data.name", data_name, "--data.root", str(root),
                       "--data.flowers102_split", "train+test"], check_paths=False)
    return list_split(cfg.data, split)


def _write_small(src, dst, short, quality):
    import cv2
    from gan_colorize.core.imageio import read_rgb, resize_short
    rgb = resize_short(read_rgb(src), short)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality),
                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise RuntimeError(f"cannot encode {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(buf.tobytes())
    return dst.stat().st_size


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst.stat().st_size


def build_dataset(name, src_root, dst_root, short, quality, val_max=None):
    """Carry `name`'s train and val images from src_root into dst_root (its own layout) ->
    manifest entry (with "_train_files": [(key, bytes)] in carrying order). For flowers102:
    val_max val images, then every train image in a fixed hash order (trim_flowers102 cuts it
    to the budget), and a setid.mat of the carried ids."""
    src_root, dst_root = Path(src_root), Path(dst_root)
    train, val = _records(name, src_root, "train"), _records(name, src_root, "val")
    entry = {"source": str(src_root), "short_side": short if name != "intel_scenes" else "as is",
             "quality": quality if name != "intel_scenes" else "as is",
             "train_available": len(train), "val_available": len(val)}
    write = ((lambda r: _copy(r.path, dst_root / r.key)) if name == "intel_scenes"
             else (lambda r: _write_small(r.path, dst_root / r.key, short, quality)))
    if name == "flowers102":
        val = sorted(val, key=lambda r: _order(r.key))[:val_max] if val_max else val
        train = sorted(train, key=lambda r: _order(r.key))
    entry["_val_files"] = [(r.key, write(r)) for r in val]
    entry["_train_files"] = [(r.key, write(r)) for r in train]
    if name == "flowers102":
        if (src_root / "imagelabels.mat").is_file():
            _copy(src_root / "imagelabels.mat", dst_root / "imagelabels.mat")
    return _tally(name, src_root, dst_root, entry)


def _tally(name, src_root, dst_root, entry):
    kept = {"train": [k for k, _ in entry["_train_files"]], "val": [k for k, _ in entry["_val_files"]]}
    if name == "flowers102":
        _write_setid(src_root, dst_root, kept)
    entry.update(train_images=len(kept["train"]), val_images=len(kept["val"]),
                 bytes=sum(b for k, b in entry["_train_files"] + entry["_val_files"]),
                 digest=_digest(kept["train"] + kept["val"]))
    return entry


def trim_flowers102(src_root, dst_root, entry, keep):
    """Keep the first `keep` carried Flowers102 train images (delete the rest, rewrite setid.mat)."""
    for key, _ in entry["_train_files"][keep:]:
        (Path(dst_root) / key).unlink()
    entry["_train_files"] = entry["_train_files"][:keep]
    return _tally("flowers102", Path(src_root), Path(dst_root), entry)


def _write_setid(src_root, dst_root, kept):
    """setid.mat of the carried Flowers102 ids, each in its official list (trnid, tstid, valid),
    so that list_split's train+test scheme lists exactly the carried files."""
    import numpy as np
    from scipy.io import loadmat, savemat
    official = loadmat(str(src_root / "setid.mat"))
    ids = {int(k.split("_")[-1].split(".")[0]) for s in kept.values() for k in s}
    out = {}
    for key in ("trnid", "valid", "tstid"):
        have = [int(v) for v in np.asarray(official[key]).ravel() if int(v) in ids]
        out[key] = np.asarray(have, dtype=np.uint16).reshape(1, -1)
    savemat(str(dst_root / "setid.mat"), out)


def verify_dataset(name, dst_root, entry):
    """The carried copy's own splits hold exactly what was carried -> [problems]."""
    problems = []
    for split in ("train", "val"):
        try:
            got = len(_records(name, dst_root, split))
        except Exception as err:   # e.g. an empty split: the package's UserError
            problems.append(f"{name}/{split}: {err}")
            continue
        if got != entry[f"{split}_images"]:
            problems.append(f"{name}/{split}: splits.py lists {got}, carried {entry[f'{split}_images']}")
    return problems


def pack(folder, dst):
    """folder's contents -> dst (.tar.gz, members relative to folder, sorted, fixed metadata)."""
    import tarfile

    def clean(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 1767225600   # 2026-01-01: fixed, and not so old that tar warns
        return info
    with tarfile.open(dst, "w:gz", compresslevel=6) as tar:
        for p in sorted(Path(folder).rglob("*")):
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False, filter=clean)
    return dst


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", default=str(REPO.parent / "shared" / "datasets"),
                   help="where flowers17/, flowers102/, imagenet_samples/, intel_scenes/ are")
    p.add_argument("--out", default=str(REPO / ".gpu_carry"), help="the carried folder (emptied first)")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, of " + ", ".join(DATASETS))
    p.add_argument("--short", type=int, default=round(1.15 * TRAIN_SIZE),
                   help="shorter side of the re-encoded images, px (74: the cache's for 64 px)")
    p.add_argument("--quality", type=int, default=85, help="JPEG quality (4:4:4 chroma)")
    p.add_argument("--flowers102-val", type=int, default=300, help="Flowers102 val images (of 1020)")
    p.add_argument("--budget-mib", type=float, default=0,
                   help="the carry's size limit; 0: 64 MiB less the working tree less --margin-mib")
    p.add_argument("--margin-mib", type=float, default=3.0,
                   help="room left for the tree to grow before the GPU call")
    p.add_argument("--no-wheels", action="store_true", help="carry no wheels (no PyPI needed)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out, shared = Path(args.out), Path(args.shared)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    bad = [n for n in names if n not in DATASETS]
    if bad:
        raise SystemExit(f"error: unknown dataset {bad[0]} (known: {', '.join(DATASETS)})")
    missing = [n for n in names if not (shared / n).is_dir()]
    if missing:
        raise SystemExit(f"error: {shared} has no {', '.join(missing)}")
    tree = tree_bytes()
    budget = (args.budget_mib * MiB if args.budget_mib
              else (LIMIT_MIB - args.margin_mib) * MiB - (tree or 0))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = {"train_size": TRAIN_SIZE, "short_side": args.short, "quality": args.quality,
                "chroma": "4:4:4", "tree_bytes": tree, "budget_bytes": int(budget),
                "wheels": [], "datasets": {}}
    problems = []
    stage = out / "data"
    if not args.no_wheels:
        log(f"wheels: pip download {len(WHEELS)} pinned wheels for CPython 3.12 manylinux x86_64")
        download_wheels(out / "whl")
        manifest["wheels"] = sorted(w.name for w in (out / "whl").glob("*.whl"))
        problems += check_wheels(out / "whl")
    # every train and val image of each dataset, Flowers102's val subset and all its train
    # images; then Flowers102's train images are cut, from the end of their fixed order, until
    # the packed carry fits the budget
    entries = {}
    for name in names:
        log(f"data: {name} from {shared / name}")
        entries[name] = build_dataset(name, shared / name, stage / name, args.short, args.quality,
                                      val_max=args.flowers102_val)
    archive = out / "data.tar.gz"
    for attempt in range(8 if entries else 0):
        pack(stage, archive)
        over = folder_bytes(out) - folder_bytes(stage) - (budget - 4096)   # room for MANIFEST.json
        f102 = entries.get("flowers102")
        if over <= 0 or f102 is None or not f102["_train_files"]:
            break
        # packed bytes per raw byte, from this pack; drop a little more than the excess
        ratio = archive.stat().st_size / max(1, folder_bytes(stage))
        drop, n = 0, len(f102["_train_files"])
        while n > 0 and drop * ratio < over * 1.02 + 1024:
            n -= 1
            drop += f102["_train_files"][n][1]
        log(f"  {archive.name} is {over / MiB:.2f} MiB over the budget: carrying {n} Flowers102 train images")
        trim_flowers102(shared / "flowers102", stage / "flowers102", f102, n)
    for name, entry in entries.items():
        problems += verify_dataset(name, stage / name, entry)
        log(f"  {name}: train {entry['train_images']} / {entry['train_available']}, "
            f"val {entry['val_images']} / {entry['val_available']}, {entry['bytes'] / MiB:.1f} MiB")
        manifest["datasets"][name] = {k: v for k, v in entry.items() if not k.startswith("_")}
    shutil.rmtree(stage, ignore_errors=True)
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    carry = folder_bytes(out)
    manifest["carry_bytes"] = carry
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = carry + (tree or 0)
    print(f"carry: {out} {carry / MiB:.1f} MiB (wheels {folder_bytes(out / 'whl') / MiB:.1f} MiB, "
          f"data.tar.gz {folder_bytes(out) / MiB - folder_bytes(out / 'whl') / MiB:.1f} MiB); working tree "
          f"{(tree or 0) / MiB:.1f} MiB; together {total / MiB:.1f} MiB of {LIMIT_MIB} MiB")
    if carry > budget or carry > LIMIT_MIB * MiB or total > LIMIT_MIB * MiB:
        problems.append(f"too large: carry {carry / MiB:.1f} MiB (budget {budget / MiB:.1f}), "
                        f"with the tree {total / MiB:.1f} MiB (limit {LIMIT_MIB})")
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"ok: run it with the device tool's run, carry [\"{out.name}\"], command "
          "'bash bench/gpu_run.sh part1' (then part2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
