"""Estimates: arithmetic from formulas checked against real models, not measurements."""
