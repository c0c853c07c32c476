"""Training: :class:`CodecModule` (the LightningModule) and ``mocodec train`` (LightningCLI).

- :mod:`mocodec.training.module`: :class:`CodecModule`, a registry codec trained on
  ``bpp + λ · Σ w_i · d_i`` with CompressAI's main and auxiliary optimisers;
- :mod:`mocodec.training.checkpoints`: what its checkpoints hold (ready to code, resumable
  exactly, plain data), atomic writes, :func:`export_codec`;
- :mod:`mocodec.training.cli`: ``mocodec train`` / ``python train.py`` (:func:`cli_main`,
  :func:`run_cli`), LightningCLI configured by YAML (``configs/train/``).
"""

from mocodec.training.checkpoints import (
    RNG_KEY,
    RUN_KEY,
    TRAINING_STATE_KEY,
    AtomicCheckpointIO,
    check_same_codec,
    checkpoint_dir,
    coding_ready_state,
    export_codec,
    make_codec_record,
    plain_data,
    rng_state,
    set_rng_state,
    ship_codec,
)
from mocodec.training.cli import LogConfig, MocodecCLI, cli_main, default_loggers, run_cli
from mocodec.training.module import CodecModule, entropy_models_in_fp32, split_parameters

__all__ = [
    "RNG_KEY",
    "RUN_KEY",
    "TRAINING_STATE_KEY",
    "AtomicCheckpointIO",
    "CodecModule",
    "LogConfig",
    "MocodecCLI",
    "check_same_codec",
    "checkpoint_dir",
    "cli_main",
    "coding_ready_state",
    "default_loggers",
    "entropy_models_in_fp32",
    "export_codec",
    "ship_codec",
    "make_codec_record",
    "plain_data",
    "rng_state",
    "run_cli",
    "set_rng_state",
    "split_parameters",
]
