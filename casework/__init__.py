"""Casework: the store of runs, flags and decisions, and the caseworkers' review."""
