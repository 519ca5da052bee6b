"""Where and in what precision the networks run: one meaning of `device` and `precision` for
training, evaluation, colorizing and the benchmarks.

precision auto = bf16 autocast wherever it was measured faster than fp32: on CUDA devices that
support bf16, and on CPUs with AMX or AVX-512 bf16 units (1.4-3.3x for our training steps and
about 2x for inference on a 2-core AVX-512 bf16 EPYC; README, Performance). Elsewhere fp32.
evaluate.py pins fp32 by its own default (eval.precision) so that its numbers are exact and
reproducible across machines; it still goes through `resolve_precision`.
"""
import contextlib

import torch

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


def cpu_bf16_units():
    """The bf16 matrix units of this CPU, from /proc/cpuinfo: a subset of ('amx_bf16',
    'avx512_bf16'); () where the file cannot be read (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((ln for ln in f if ln.startswith("flags")), "").split())
    except OSError:
        return ()
    return tuple(u for u in ("amx_bf16", "avx512_bf16") if u in flags)


def resolve_device(name="auto", local_rank=0, key="device"):
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device. auto: CUDA when available. A bare
    'cuda' means the local rank's GPU (torchrun), which also becomes the current device.
    CUDA asked for but absent -> UserError naming `key` (the option or config key)."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"{key}: {name!r} was asked for but no CUDA device is available "
                            f"(use cpu)")
        dev = torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
        torch.cuda.set_device(dev)
        return dev
    raise UserError(f"{key}: {name!r} is not one of auto, cpu, cuda, cuda:N")


def resolve_precision(precision, device, key="precision"):
    """'auto' | 'fp32' | 'bf16' -> the autocast dtype: None (fp32) or torch.bfloat16. auto: bf16
    on CUDA with bf16 support and on CPUs with AMX or AVX-512 bf16 units, else fp32."""
    if precision not in PRECISIONS:
        raise UserError(f"{key}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and cpu_bf16_units() else None


def autocast(device, amp_dtype):
    """torch.autocast for `amp_dtype` on `device`; a no-op context for fp32 (None)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype)
