"""Thin entry module: `python -m gan_colorize.masks` runs the mask preview command line (data/masks.py); nothing else lives here."""
import sys

from .data.masks import main

if __name__ == "__main__":
    sys.exit(main())
