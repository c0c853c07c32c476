"""Training: :class:`CodecModule` (the LightningModule) and ``mocodec train`` (LightningCLI).

- :mod:`mocodec.training.module`: :class:`CodecModule`, a registry codec trained on
  ``bpp + λ · Σ w_i · d_i`` with CompressAI's main and auxiliary optimisers;
- :mod:`mocodec.training.checkpoints`: what its checkpoints hold (ready to code, resumable
  exactly, plain data), atomic writes, :func:`export_codec`;
- :mod:`mocodec.training.cli`: ``mocodec train`` / ``python train.py`` (:func:`cli_main`,
  :func:`run_cli`), LightningCLI configured by YAML (``configs/train/``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Each public name's submodule, imported on first use: Lightning and CompressAI take seconds, and
# code that only needs the run layout (reports, results) must not pay for them.
_SUBMODULE = {
    **dict.fromkeys(
        (
            "RNG_KEY",
            "RUN_KEY",
            "TRAINING_STATE_KEY",
            "AtomicCheckpointIO",
            "check_same_codec",
            "coding_ready_state",
            "export_codec",
            "make_codec_record",
            "plain_data",
            "rng_state",
            "set_rng_state",
            "ship_codec",
        ),
        "checkpoints",
    ),
    "checkpoint_dir": "layout",
    **dict.fromkeys(("LogConfig", "MocodecCLI", "cli_main", "default_loggers", "run_cli"), "cli"),
    **dict.fromkeys(("CodecModule", "entropy_models_in_fp32", "split_parameters"), "module"),
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value  # once: later lookups find it as a plain attribute
    return value


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
