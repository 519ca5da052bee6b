"""Training: one step (steps.py), the loop (loop.py), validation while training, the run folder."""
