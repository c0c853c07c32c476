"""Datasets, transforms and image I/O."""
