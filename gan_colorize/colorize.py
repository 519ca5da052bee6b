"""Thin entry module: `python -m gan_colorize.colorize` runs the gan-colorize command line (apps/colorize_cli.py); nothing else lives here."""
import sys

from .apps.colorize_cli import main

if __name__ == "__main__":
    sys.exit(main())
