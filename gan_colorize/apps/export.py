"""The export command line: a training checkpoint's G_ema for inference, as a small .pt
(`export`) or an ONNX file (`export-onnx`, `--int8`: quantized, quantize.py). Run as
`python -m gan_colorize.checkpoint ...`."""
import os
import sys

from ..core.parser import EXPORT, EXPORT_ONNX, cli_main, parse_commands
from ..model.checkpoint import export_generator
from .onnx_backend import export_onnx
from .quantize import export_int8

COMMANDS = {"export": EXPORT, "export-onnx": EXPORT_ONNX}


@cli_main
def main(argv=None):
    """`python -m gan_colorize.checkpoint export [--fp32] SRC DST` |
    `export-onnx [--int8 [--calib-data SPEC] [--calib-images N]] SRC DST`."""
    cmd, cfg, (src, dst) = parse_commands(sys.argv[1:] if argv is None else argv, COMMANDS,
                                          "python -m gan_colorize.checkpoint",
                                          "Export a training checkpoint's G_ema for inference.")
    x = cfg.export
    if cmd == "export-onnx" and x.int8:
        export_int8(src, dst, x.calib_data, x.calib_images)
    elif cmd == "export-onnx":
        export_onnx(src, dst)
    else:
        export_generator(src, dst, half=not x.fp32)
    print(f"wrote {dst} ({os.path.getsize(dst) / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
