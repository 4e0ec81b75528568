"""Reproducible experiments: ``python -m quanta.experiments.<name>`` writes ``results/``."""
