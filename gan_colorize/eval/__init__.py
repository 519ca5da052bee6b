"""Scoring: the metrics, the one scoring core (scoring.py), evaluate.py's run, contact sheets."""
