"""Benchmark harness for sdv-janus: datasets, synthesizers, scenarios, metrics and reports.

Run ``python -m benchmark --help`` for the command line.
"""
