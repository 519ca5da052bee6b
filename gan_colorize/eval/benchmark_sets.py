"""The benchmark's named test sets (`export --set NAME`): the evaluate.py keys that define each
one's samples. Plain data, no torch, so that the command line checks them before torch loads."""
from ..core.config import BENCHMARK_SETS

# the named test sets: what evaluate.py's keys are for each, unless the command line gives them;
# every set is its whole test split (data.min_ab_range 0 keeps nearly gray photos in)
SETS = {
    "bsds500": {"data.name": "bsds500", "eval.masks": "segmentation:1"},
    "intel_scenes": {"data.name": "split_folders", "eval.masks": "blobs:1,superpixels:1,rect:1"},
    "flowers17": {"data.name": "flowers17", "eval.masks": "impa:1"},
    "samples": {"data.name": "samples", "eval.masks": "blobs:1,superpixels:1,rect:1"},
}
assert tuple(SETS) == BENCHMARK_SETS   # the names checks.check accepts
SET_COMMON = {"eval.split": "test", "masks.pairing": "random", "data.min_ab_range": "0"}


def set_keys(name, given):
    """The (key, value) pairs a named set adds to a command line whose keys are `given` (none for
    an unknown name, which checks.check refuses)."""
    if name not in SETS:
        return []
    return [(k, v) for k, v in {**SETS[name], **SET_COMMON}.items() if k not in given]
