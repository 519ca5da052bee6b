"""Thin entry module: `python -m gan_colorize.dedup` runs the duplicate finder's command line (data/dedup.py); nothing else lives here."""
import sys

from .data.dedup import main

if __name__ == "__main__":
    sys.exit(main())
