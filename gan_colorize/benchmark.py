"""Thin entry module: `python -m gan_colorize.benchmark export|fill|score` runs the benchmark's command line (apps/benchmark_cli.py); nothing else lives here."""
import sys

from .apps.benchmark_cli import main

if __name__ == "__main__":
    sys.exit(main())
