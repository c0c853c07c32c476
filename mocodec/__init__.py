"""mocodec: machine-oriented learned image compression.

Codecs (``mocodec.codecs``), distortion terms and ML-CLIPSim (``mocodec.losses``),
downstream tasks (``mocodec.tasks``), evaluation sweeps (``mocodec.evaluation``) and
training (``mocodec.training``). Importing this package imports nothing heavy.
"""

__version__ = "0.1.0"
