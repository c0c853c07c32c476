"""``mocodec train`` / ``python train.py``: LightningCLI over :class:`~mocodec.training.CodecModule`.

:func:`cli_main` runs :class:`MocodecCLI`, LightningCLI over ``CodecModule`` and
:class:`~mocodec.data.datamodule.ImageDataModule`, configured by YAML (``configs/train/``).
The run folder is ``trainer.default_root_dir``: checkpoints go to ``<run>/checkpoints``
(``last.ckpt`` for ``--ckpt_path last``), and unless ``trainer.logger`` is set, metrics go
to W&B (offline unless ``WANDB_MODE`` says otherwise; files under ``<run>/wandb``) and to
CSV (``<run>/csv``). A resumed run reuses its W&B run and refuses a checkpoint of another codec.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import yaml
from jsonargparse import ArgumentError
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from mocodec.codecs import CODEC_KEY
from mocodec.data.datamodule import ImageDataModule
from mocodec.errors import ConfigError, WeightsError
from mocodec.training.checkpoints import RUN_KEY, AtomicCheckpointIO, LastStepCheckpoint, check_same_codec
from mocodec.training.layout import checkpoint_dir
from mocodec.training.module import CodecModule
from mocodec.training.stopping import StopAtDeadline
from mocodec.utils.provenance import code_version
from mocodec.weights import load_checkpoint


class LogConfig(SaveConfigCallback):
    """Saves ``config.yaml`` in the run folder and sends the full configuration and code version to every logger."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config, "code_version": code_version()})


def default_loggers(run_dir: Path, wandb_id: str | None) -> list:
    """W&B (mode from ``WANDB_MODE``; resuming ``wandb_id``) and CSV; CSV only without wandb installed."""
    csv = CSVLogger(run_dir, name="csv")
    try:
        import wandb  # noqa: F401
    except ImportError:
        warnings.warn("wandb is not installed: logging to CSV only (pip install wandb)", stacklevel=2)
        return [csv]
    run_dir.mkdir(parents=True, exist_ok=True)
    wandb_logger = WandbLogger(save_dir=str(run_dir), project=os.environ.get("WANDB_PROJECT", "mocodec"), name=run_dir.name, id=wandb_id)
    return [wandb_logger, csv]


class MocodecCLI(LightningCLI):
    """LightningCLI with mocodec's run-folder conventions (module docstring) and resumable W&B runs."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "validate")}

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(LastStepCheckpoint, "checkpoint")
        # Written after each validation and at the last step (never at a train-epoch end, which Lightning
        # replays on resume).
        # No monitor by default: with one, Lightning refreshes last.ckpt only when the monitored
        # value improves, so `--ckpt_path last` would resume from the best, not the latest, state.
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.monitor": None,
                "checkpoint.save_top_k": 1,
                "checkpoint.save_on_train_epoch_end": False,
                # One last.ckpt per run, always: a run resumed in another folder (a state restored on
                # another machine) does not know the old file's path and would write last-v1.ckpt beside it.
                "checkpoint.enable_version_counter": False,
            }
        )
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=lambda root: str(checkpoint_dir(root)))
        parser.add_lightning_class_args(StopAtDeadline, "stop_at")  # --stop_at.deadline: train until then, resumable

    def _parse_ckpt_path(self) -> None:
        # LightningCLI torch.loads --ckpt_path itself to read its hyper-parameters; check the
        # file first, so a damaged or code-carrying checkpoint is one clear line, not a traceback.
        ckpt = self.config.get(self.config.get("subcommand") or "", {}).get("ckpt_path")
        if ckpt and Path(ckpt).is_file():
            load_checkpoint(ckpt)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Read the checkpoint to resume (if any): its codec record, and its W&B run id for the logger."""
        self.resume_record: dict[str, Any] | None = None
        self.resume_wandb_id: str | None = None
        ckpt = self._get(self.config, "ckpt_path")
        if ckpt == "last":  # Lightning's own "last" lookup, in our checkpoint folder
            ckpt = checkpoint_dir(self._get(self.config, "trainer").get("default_root_dir")) / "last.ckpt"
            ckpt = ckpt if ckpt.is_file() else None  # no checkpoint yet: Lightning starts afresh
        if ckpt is None:
            return
        state = load_checkpoint(ckpt)
        if not isinstance(state.get(CODEC_KEY), dict) or "pytorch-lightning_version" not in state:
            raise WeightsError(
                f"{ckpt} is not a mocodec training checkpoint; to start from its weights, "
                "pass --model.init_weights PATH instead of --ckpt_path"
            )
        self.resume_record = state[CODEC_KEY]
        self.resume_wandb_id = state.get(RUN_KEY, {}).get("wandb_id")

    def before_fit(self) -> None:
        # Before fitting writes anything (config.yaml, loggers) into the run folder.
        if self.resume_record is not None:
            check_same_codec(self.resume_record, self.model.codec_record())

    before_validate = before_fit

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = self._get(self.config_init, "trainer", {})
        if trainer.get("logger") is None:
            kwargs["logger"] = default_loggers(Path(trainer.get("default_root_dir") or "."), self.resume_wandb_id)
        if not trainer.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        kwargs["precision"] = effective_precision(trainer.get("precision"), trainer.get("accelerator", "auto"))
        return super().instantiate_trainer(**kwargs)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 or AMX, through oneDNN)."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def effective_precision(precision: Any, accelerator: Any) -> Any:
    """``precision``, or ``"32-true"`` where ``bf16-mixed`` would run on a CPU without native bfloat16.

    Why: without AVX512-BF16/AMX, PyTorch falls back to a generic bf16 convolution, measured
    9-15x *slower* per training step than float32 on an AMD EPYC (Zen 2, see BENCHMARKS.md),
    so a recipe written for a bf16 CPU (``fast_cpu.yaml``) or a GPU would crawl. Float32 trains
    the same model (bf16-mixed keeps parameters and optimiser state in float32 anyway).
    """
    import torch

    on_cpu = str(accelerator) == "cpu" or (str(accelerator) == "auto" and not torch.cuda.is_available())
    if str(precision) in ("bf16-mixed", "bf16") and on_cpu and not cpu_has_native_bf16():
        warnings.warn(
            f"trainer.precision {precision}: this CPU has no native bfloat16 (AVX512-BF16 or AMX), where bf16 runs "
            "9-15x slower than float32 (BENCHMARKS.md); training in 32-true instead",
            stacklevel=2,
        )
        return "32-true"
    return precision


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def run_cli(argv: Sequence[str]) -> MocodecCLI:
    """Run ``mocodec train ARGV`` in this process; the finished CLI (``.model``, ``.trainer``, ``.datamodule``)."""
    os.environ.setdefault("WANDB_MODE", "offline")  # online only when the user asks for it
    no_exit = {"exit_on_error": False}  # parse errors raise, and become one-line ConfigErrors
    try:
        with warnings.catch_warnings():
            # We always pass ``args``; Lightning warns about that whenever sys.argv is not empty.
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            # Lightning's own use of a deprecated torch API: noise for a CLI user.
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            return MocodecCLI(
                CodecModule,
                ImageDataModule,
                args=list(argv),
                save_config_callback=LogConfig,
                save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config.yaml
                seed_everything_default=0,
                parser_kwargs={**no_exit, "fit": no_exit, "validate": no_exit},
            )
    except ArgumentError as exc:
        raise ConfigError(_one_line(exc)) from None
    finally:
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()  # the next run in this process must not attach to this one


def cli_main(argv: Sequence[str] | None = None) -> None:
    """``mocodec train {fit,validate} --config configs/train/NAME.yaml [--section.key value ...]``."""
    run_cli(sys.argv[1:] if argv is None else argv)
