"""Sweeps over codecs x rates, results files, BD-rate and plots."""
