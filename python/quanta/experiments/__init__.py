"""Reproduction experiments.

``python -m quanta.experiments.<name>`` writes ``results/<name>.md`` (+ a PNG).
"""
