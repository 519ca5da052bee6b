"""Thin entry module: `python -m gan_colorize.demo` runs the web demo (apps/demo.py); nothing else lives here."""
import sys

from .apps.demo import main

if __name__ == "__main__":
    sys.exit(main())
