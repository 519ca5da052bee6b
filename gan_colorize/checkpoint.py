"""Thin entry module: `python -m gan_colorize.checkpoint` runs the export command line (apps/export.py); nothing else lives here."""
import sys

from .apps.export import main

if __name__ == "__main__":
    sys.exit(main())
