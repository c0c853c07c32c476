"""Machine-oriented image quality assessment: the PCMP builder and metric evaluation.

- :mod:`~mocodec.iqa.distortions`, :mod:`~mocodec.iqa.pairs`, :mod:`~mocodec.iqa.voting`,
  :mod:`~mocodec.iqa.pcmp`: PSNR-matched distortion pairs labelled by the
  prediction-consistency votes of frozen models (``mocodec pcmp``); :mod:`~mocodec.iqa.pcmp_files`
  reads a build back;
- :mod:`~mocodec.iqa.records`: scored images, preference pairs and their label sets;
  :mod:`~mocodec.iqa.datasets`: LIVE, TID2013, KADID-10k, MPD and PCMP as released;
- :mod:`~mocodec.iqa.twoafc`, :mod:`~mocodec.iqa.correlation`, :mod:`~mocodec.iqa.significance`:
  2AFC, SRCC/KRCC/PLCC after the logistic fit, bootstrap intervals and paired tests;
- :mod:`~mocodec.iqa.evaluate`, :mod:`~mocodec.iqa.report`, :mod:`~mocodec.iqa.ablation`:
  any registered metric on those datasets, tables and plots (``mocodec iqa eval``), and
  ML-CLIPSim's layer ablation with fitted per-layer weights (``mocodec iqa ablate``);
- :mod:`~mocodec.iqa.study`, :mod:`~mocodec.iqa.study_report`: the held-out-voter study of
  which metric predicts machine preference (``mocodec iqa study``).
"""

from mocodec.iqa.datasets import IQA_DATASETS, load_iqa_dataset
from mocodec.iqa.records import PairDataset, ScoredDataset

__all__ = ["IQA_DATASETS", "PairDataset", "ScoredDataset", "load_iqa_dataset"]
