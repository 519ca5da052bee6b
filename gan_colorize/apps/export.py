"""The export command line: a training checkpoint's G_ema for inference, as a small .pt
(`export`) or an ONNX file (`export-onnx`, `--int8`: quantized, quantize.py). Run as
`python -m gan_colorize.checkpoint ...`."""
import argparse
import os
import sys

from ..core.errors import UserError
from ..model.checkpoint import export_generator
from .onnx_backend import export_onnx
from .quantize import CALIB_IMAGES, export_int8


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gan_colorize.checkpoint",
                                description="Export a training checkpoint's G_ema for inference.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="G_ema + config only, float16 by default")
    ex.add_argument("src")
    ex.add_argument("dst")
    ex.add_argument("--fp32", action="store_true", help="keep float32 weights")
    ox = sub.add_parser("export-onnx", help="G_ema as an ONNX file (float32, config in its "
                        "metadata) for onnxruntime and other runtimes; needs the [onnx] extra")
    ox.add_argument("src", help="a training checkpoint or an exported one")
    ox.add_argument("dst", help="the .onnx file to write")
    ox.add_argument("--int8", action="store_true", help="quantize to int8 (onnxruntime static "
                    "quantization, calibrated on training crops); README, ONNX: its speed and error")
    ox.add_argument("--calib-data", default="", help="--int8: data to calibrate on, as data.mix "
                    "(NAME=ROOT:WEIGHT,...); default: the checkpoint's own training data")
    ox.add_argument("--calib-images", type=int, default=CALIB_IMAGES,
                    help=f"--int8: training crops to calibrate on (default {CALIB_IMAGES})")
    args = p.parse_args(argv)
    try:
        if args.cmd == "export-onnx" and args.int8:
            export_int8(args.src, args.dst, args.calib_data, args.calib_images)
        elif args.cmd == "export-onnx":
            export_onnx(args.src, args.dst)
        else:
            export_generator(args.src, args.dst, half=not args.fp32)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst} ({os.path.getsize(args.dst) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
