"""Training: :class:`CodecModule` (the LightningModule) and ``mocodec train`` (LightningCLI).

``CodecModule`` wraps a codec built from the registry by name and a
:class:`~mocodec.losses.RateDistortionLoss` (``bpp + λ · Σ w_i · d_i``), and trains it
with manual optimisation as CompressAI does: a main optimiser over every codec
parameter except the entropy bottlenecks' quantiles, and an auxiliary optimiser over
those quantiles driven by ``codec.aux_loss()``. Distortion networks are never
optimised (only the codec's parameters reach an optimiser). A step whose loss or
gradient is not finite is skipped, on every rank at once, and counted
(``train/skipped_steps``), so one poisoned batch cannot corrupt the weights.

Checkpoints are ready to code and resume exactly:

- a top-level ``"mocodec_codec": {"name", "quality", "kwargs"}`` entry, so
  :func:`mocodec.codecs.load_codec` and ``CodecSpec.parse("ckpt:PATH")`` rebuild the codec;
- the codec's ``state_dict`` entries hold CDF tables computed by
  ``update(force=True, update_quantiles=True)`` on a *copy* of the codec (the bisection
  moves the quantiles, so coding never depends on how far the aux loss converged), while
  the exact training values of every entry that update changed are kept under
  ``"mocodec_training_state"`` and put back on resume: saving never perturbs training;
- the torch and Python random states, restored when training restarts, so a run resumed
  from a checkpoint written after a validation at an epoch's end (the default) continues
  exactly as if it had never stopped: same crops, same quantisation noise (a mid-epoch
  checkpoint, e.g. ``checkpoint.every_n_train_steps``, resumes the step count, optimisers
  and schedule, but Lightning restarts that epoch's data loader); and the W&B run id,
  which the resumed run's logger reuses;
- only plain data (hyper-parameters included), so ``torch.load(weights_only=True)`` reads them.

``mocodec train`` / ``python train.py`` is :func:`cli_main`: LightningCLI over
``CodecModule`` and :class:`~mocodec.data.datamodule.ImageDataModule`, configured by
YAML (``configs/``). The run folder is ``trainer.default_root_dir``: checkpoints go to
``<run>/checkpoints`` (``last.ckpt`` for ``--ckpt_path last``), and unless
``trainer.logger`` is set, metrics go to W&B (offline unless ``WANDB_MODE`` says
otherwise; files under ``<run>/wandb``) and to CSV (``<run>/csv``).
"""

from __future__ import annotations

import copy
import functools
import io
import math
import os
import random
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI, LRSchedulerCallable, OptimizerCallable, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from compressai.entropy_models import EntropyModel
from torch import Tensor, nn
from torchmetrics import MeanMetric

from mocodec.codecs import CODEC_KEY, codec_state, create_codec, load_codec
from mocodec.data.datamodule import ImageDataModule
from mocodec.errors import ConfigError, WeightsError
from mocodec.losses import RateDistortionLoss, ms_ssim, psnr
from mocodec.losses.rate_distortion import bpp_per_image
from mocodec.registry import canonical_name

TRAINING_STATE_KEY = "mocodec_training_state"  # exact training values of entries the coding update changed
RNG_KEY = "mocodec_rng"
RUN_KEY = "mocodec_run"  # {"wandb_id": ...}


# --------------------------------------------------------------------------- codec helpers


def split_parameters(codec: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """CompressAI's split: (main parameters, entropy-bottleneck quantiles for the aux optimiser)."""
    main, aux = [], []
    for name, param in codec.named_parameters():
        if param.requires_grad:
            (aux if name.endswith("quantiles") else main).append(param)
    return main, aux


def _forward_in_fp32(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """An entropy model's own forward, in float32 whatever autocast region it is called from."""
    def up(v: Any) -> Any:
        return v.float() if isinstance(v, Tensor) and v.is_floating_point() else v

    device_type = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
    with torch.autocast(device_type, enabled=False):
        return type(self).forward(self, *map(up, args), **{k: up(v) for k, v in kwargs.items()})


def entropy_models_in_fp32(codec: nn.Module) -> nn.Module:
    """Run ``codec``'s entropy models (likelihoods, quantisation) in float32 under mixed precision.

    A likelihood is a difference of two CDF values, ``c(y + 1/2) - c(y - 1/2)``: in bfloat16
    (8 mantissa bits) it cancels for likely symbols and underflows for unlikely ones, so the
    rate term would train on rounding noise; the transforms around them stay in bf16. The
    forward is bound per instance, so state dicts are unchanged and deep copies keep it.
    """
    for module in codec.modules():
        if isinstance(module, EntropyModel):
            module.forward = types.MethodType(_forward_in_fp32, module)
    return codec


@torch.no_grad()
def coding_ready_state(codec: nn.Module) -> dict[str, Tensor]:
    """The state dict of a copy of ``codec`` with fresh CDF tables (quantiles re-derived by bisection)."""
    ready = copy.deepcopy(codec)
    ready.update(force=True, update_quantiles=True)
    return ready.state_dict()


def make_codec_record(codec: nn.Module, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What ``load_codec`` needs to rebuild ``codec``: registry name, quality, architecture kwargs."""
    kwargs = dict(kwargs)
    infer = getattr(codec, "infer_kwargs", None)
    if infer is not None:  # e.g. N/M taken from a checkpoint the codec started from
        kwargs.update({k: int(v) for k, v in infer(codec.state_dict()).items()})
    return {"name": codec.codec_name, "quality": int(codec.quality), "kwargs": kwargs}


def _describe(record: Mapping[str, Any]) -> str:
    kwargs = ", ".join(f"{k}={v}" for k, v in sorted(record.get("kwargs", {}).items()))
    return f"{record.get('name')} quality {record.get('quality')}" + (f" ({kwargs})" if kwargs else "")


def check_same_codec(recorded: Any, expected: Mapping[str, Any]) -> None:
    """Refuse to resume a checkpoint whose codec record differs from the codec this run builds."""
    if not isinstance(recorded, Mapping):
        raise WeightsError(
            "the checkpoint is not a mocodec training checkpoint (no 'mocodec_codec' entry); "
            "to start from its weights, pass --model.init_weights PATH instead of --ckpt_path"
        )
    same = (
        canonical_name(str(recorded.get("name"))) == canonical_name(expected["name"])
        and recorded.get("quality") == expected["quality"]
        and dict(recorded.get("kwargs", {})) == dict(expected["kwargs"])
    )
    if not same:
        raise WeightsError(
            f"the checkpoint holds a {_describe(recorded)} codec but this run builds {_describe(expected)}; "
            "resume with the configuration it was trained with"
        )


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA) and Python random states, as plain data (tensors and tuples)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(tuple(tuple(s) if isinstance(s, list) else s for s in state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def plain_data(value: Any) -> Any:
    """``value`` with classes and partials as ``{"class_path", "init_args"}`` dicts (checkpoint-safe)."""
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, functools.partial):
        return {"class_path": plain_data(value.func)["class_path"], "init_args": plain_data(value.keywords)}
    if isinstance(value, type) or callable(value):
        return {"class_path": f"{value.__module__}.{value.__qualname__}"}
    return value


def code_version() -> str:
    """The git commit of this mocodec checkout (``+dirty`` with local changes), else the package version."""
    from mocodec import __version__

    root = Path(__file__).resolve().parents[1]
    try:
        git = functools.partial(subprocess.run, capture_output=True, text=True, check=True, timeout=10)
        commit = git(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
        dirty = git(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"mocodec {__version__}"
    return f"{commit}+dirty" if dirty else commit


# --------------------------------------------------------------------------- the LightningModule


class CodecModule(pl.LightningModule):
    """A registry codec trained on ``bpp + λ · Σ_i w_i · d_i`` (see the module docstring).

    DDP (``strategy: ddp``, any devices/nodes) needs nothing special: the rate-distortion
    and auxiliary losses are backpropagated as one sum (they reach disjoint parameters),
    so every parameter has a gradient each step and the quantiles are averaged across
    ranks like the rest. The aux loss is a sum over channels of a function of the
    quantiles alone: it does not grow with the batch or the world size. Under
    ``bf16-mixed`` the entropy models run in float32 (:func:`entropy_models_in_fp32`).

    Args:
        codec: codec registry name (``mocodec list``), e.g. ``bmshj2018-hyperprior``.
        quality: the codec's quality index (selects its channel widths).
        codec_kwargs: architecture arguments, e.g. ``{N: 64, M: 96}``.
        init_weights: start from these weights: a checkpoint file (CompressAI, mocodec
            export or training checkpoint) or ``pretrained`` (the published MSE weights).
        lmbda: λ (CompressAI's scale for ``mse``: 0.0018 ... 0.18 for qualities 1 ... 8).
        distortions: name -> weight or ``{weight: w, **kwargs}``, e.g.
            ``{mse: 1.0, ml-clipsim: {weight: 0.5, model: ViT-B-32}}``.
        balance_warmup: balance the terms after this many steps (``RateDistortionLoss``); null: off.
        balance_momentum: momentum of the balancing running means.
        optimizer: main optimiser (default Adam, lr 1e-4: CompressAI's).
        aux_optimizer: optimiser of the quantiles (default Adam, lr 1e-3: CompressAI's).
        lr_scheduler: learning-rate schedule of the main optimiser (ReduceLROnPlateau follows val/loss).
        scheduler_interval: step the schedule every ``epoch`` or every ``step``.
        clip_max_norm: clip the main gradient to this norm; null: no clipping.
        log_images: reconstructions to log at each validation (loggers with ``log_image``, e.g. W&B).
    """

    def __init__(
        self,
        codec: str = "bmshj2018-hyperprior",
        quality: int = 3,
        codec_kwargs: dict[str, Any] | None = None,
        init_weights: str | None = None,
        lmbda: float = 0.0130,
        distortions: dict[str, float | dict[str, Any]] | None = None,
        balance_warmup: int | None = None,
        balance_momentum: float = 0.99,
        optimizer: OptimizerCallable | None = None,
        aux_optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        clip_max_norm: float | None = 1.0,
        log_images: int = 4,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.codec_kwargs = dict(codec_kwargs or {})
        self.codec = entropy_models_in_fp32(self._build_codec(codec, quality, init_weights))
        self.loss = RateDistortionLoss(lmbda, distortions, balance_warmup, balance_momentum)
        self.optimizer_factory = optimizer or functools.partial(torch.optim.Adam, lr=1e-4)
        self.aux_optimizer_factory = aux_optimizer or functools.partial(torch.optim.Adam, lr=1e-3)
        self.scheduler_factory = lr_scheduler
        self.scheduler_interval = scheduler_interval
        if clip_max_norm is not None and not clip_max_norm > 0:
            raise ConfigError(f"clip_max_norm must be > 0 or null, got {clip_max_norm}")
        self.clip_max_norm = clip_max_norm
        self.log_images = log_images
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))
        self.val_loss = MeanMetric()  # the epoch's validation loss, synchronised across ranks, for plateau schedules
        self._resume_rng: Mapping[str, Any] | None = None

    def _build_codec(self, name: str, quality: int, init_weights: str | None) -> nn.Module:
        if init_weights is None:
            return create_codec(name, quality=quality, **self.codec_kwargs)
        if init_weights == "pretrained":
            codec = load_codec(name, quality, pretrained=True, **self.codec_kwargs)
        else:
            codec = load_codec(name, quality, checkpoint=init_weights, **self.codec_kwargs)
        return codec.train()

    def forward(self, x: Tensor) -> dict[str, Any]:
        return self.codec(x)

    # ---- optimisation

    def configure_optimizers(self):
        main, aux = split_parameters(self.codec)
        optimizer = self.optimizer_factory(main)
        aux_optimizer = self.aux_optimizer_factory(aux)
        if self.scheduler_factory is None:
            return [optimizer, aux_optimizer]
        return [optimizer, aux_optimizer], [self.scheduler_factory(optimizer)]

    def _agreed(self, ok: bool) -> bool:
        """``ok`` on every rank (all ranks must skip a step together, or DDP would hang)."""
        return bool(self.trainer.strategy.reduce_boolean_decision(ok, all=True))

    def _skip_step(self) -> None:
        self.skipped_steps += 1
        self.log("train/skipped_steps", self.skipped_steps.float(), on_step=True, on_epoch=False)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        optimizer, aux_optimizer = self.optimizers()
        x = batch["image"]
        n = x.shape[0]
        self.log("train/unreadable_images", float(batch["unreadable"]), on_step=False, on_epoch=True, reduce_fx="sum", batch_size=1, sync_dist=True)
        terms = self.loss(self.codec(x), x) if n else None
        if not self._agreed(terms is not None and bool(torch.isfinite(terms["loss"]))):
            return self._skip_step()
        # aux_loss() detaches all but the quantiles, which the rate-distortion loss never
        # reaches: one backward of the sum gives each optimiser exactly its own gradients,
        # and gives DDP a gradient for every parameter (no unused-parameter search).
        aux_loss = self.codec.aux_loss()
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        self.manual_backward(terms["loss"] + aux_loss)
        main, aux = split_parameters(self.codec)
        # (precision 32/bf16; 16-mixed's GradScaler skips inf steps on its own)
        grad_norm = torch.nn.utils.clip_grad_norm_(main, self.clip_max_norm or math.inf)
        if not self._agreed(bool(torch.isfinite(grad_norm))):
            optimizer.zero_grad(set_to_none=True)
            aux_optimizer.zero_grad(set_to_none=True)
            return self._skip_step()
        optimizer.step()
        # Lightning counts every LightningOptimizer.step as a global step in manual
        # optimisation; stepping the aux optimiser directly keeps global_step = main steps.
        # Quantile gradients are averaged across ranks, so every rank takes the same decision.
        if all(bool(torch.isfinite(p.grad).all()) for p in aux if p.grad is not None):
            aux_optimizer.optimizer.step()
        logs = {f"train/{k}": v.detach() for k, v in terms.items()}
        logs.update({"train/aux_loss": aux_loss.detach(), "train/grad_norm": grad_norm, "train/lr": optimizer.param_groups[0]["lr"]})
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=n)
        self.log("train/skipped_steps", self.skipped_steps.float(), on_step=True, on_epoch=False)
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=n)
        self.log("bpp", terms["bpp"].detach(), prog_bar=True, logger=False, batch_size=n)

    # Epoch schedules step after an epoch's last batch, plateau schedules when validation
    # ends: both before the checkpoint of that point is written, and in no hook that
    # Lightning replays when it resumes from an epoch-end checkpoint (on_train_epoch_end).
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        scheduler = self._scheduler(plateau=False)
        if scheduler is not None and (self.scheduler_interval == "step" or self.trainer.is_last_batch):
            scheduler.step()

    def on_validation_epoch_end(self) -> None:
        val_loss = self.val_loss.compute() if self.val_loss.update_called else None
        self.val_loss.reset()
        scheduler = self._scheduler(plateau=True)
        if scheduler is not None and val_loss is not None and not self.trainer.sanity_checking:
            scheduler.step(val_loss)

    def _scheduler(self, plateau: bool):
        """The schedule if there is one of that kind (ReduceLROnPlateau or not), else None."""
        scheduler = self.lr_schedulers() if self.scheduler_factory is not None else None
        is_plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        return scheduler if scheduler is not None and is_plateau == plateau else None

    # ---- validation

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        x = batch["image"]
        n = x.shape[0]
        if not n:
            return
        out = self.codec(x)
        terms = self.loss(out, x)
        x_hat = out["x_hat"].clamp(0, 1)
        metrics = {f"val/{k}": v for k, v in terms.items() if not k.startswith(("share_", "scale_"))}
        metrics["val/psnr"] = psnr(x_hat, x).mean()
        h, w = x.shape[-2:]
        if min(h, w) > 32:  # MS-SSIM's smallest size (mocodec.losses.msssim.window_for)
            metrics["val/ms_ssim"] = ms_ssim(x_hat, x).mean()
        self.log_dict(metrics, on_step=False, on_epoch=True, sync_dist=True, batch_size=n)
        self.val_loss.update(terms["loss"], n)
        if batch_idx == 0 and self.log_images > 0 and not self.trainer.sanity_checking:
            self._log_reconstructions(x, x_hat, bpp_per_image(out["likelihoods"], h, w))

    def _log_reconstructions(self, x: Tensor, x_hat: Tensor, bpp: Tensor) -> None:
        loggers = [lg for lg in self.loggers if callable(getattr(lg, "log_image", None))]
        if not loggers:
            return
        k = min(self.log_images, x.shape[0])
        pairs = [torch.cat([x[i], x_hat[i]], dim=-1).float().cpu() for i in range(k)]  # original | decoded
        captions = [f"{float(b):.3f} bpp, {float(p):.2f} dB" for b, p in zip(bpp[:k], psnr(x_hat[:k], x[:k]))]
        for logger in loggers:
            logger.log_image("val/reconstructions", pairs, step=self.global_step, caption=captions)

    # ---- checkpoints

    def codec_record(self) -> dict[str, Any]:
        """``{"name", "quality", "kwargs"}`` of the codec, as checkpoints record it."""
        return make_codec_record(self.codec, self.codec_kwargs)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CODEC_KEY] = self.codec_record()
        if self._trainer is not None and not self.trainer.is_global_zero:
            return  # only rank 0 writes checkpoints; parameters are equal on every rank, so would its tables be
        state = checkpoint["state_dict"]
        training_values = {}
        for key, value in coding_ready_state(self.codec).items():
            full = f"codec.{key}"
            current = state[full]
            if current.shape != value.shape or not torch.equal(current, value):
                training_values[full] = current
                state[full] = value
        checkpoint[TRAINING_STATE_KEY] = training_values
        checkpoint[RNG_KEY] = rng_state()
        wandb_ids = [lg.version for lg in self.loggers if isinstance(lg, WandbLogger)]
        checkpoint[RUN_KEY] = {"wandb_id": wandb_ids[0] if wandb_ids else None}
        if "hyper_parameters" in checkpoint:  # only plain data, for torch.load(weights_only=True)
            checkpoint["hyper_parameters"] = plain_data(dict(checkpoint["hyper_parameters"]))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_same_codec(checkpoint.get(CODEC_KEY), self.codec_record())
        checkpoint["state_dict"].update(checkpoint.get(TRAINING_STATE_KEY, {}))
        self._resume_rng = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        # Restored here, not in on_load_checkpoint: the sanity-check validation in between
        # draws random numbers that the uninterrupted run did not draw at this point.
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
            self._resume_rng = None


# --------------------------------------------------------------------------- export


def export_codec(checkpoint: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Write the codec of a training checkpoint as a mocodec export (``codec_state``); returns its record."""
    from mocodec.files import atomic_write_bytes
    from mocodec.weights import load_checkpoint

    recorded = load_checkpoint(checkpoint).get(CODEC_KEY)
    if not isinstance(recorded, dict):
        raise WeightsError(f"{checkpoint} is not a mocodec training checkpoint (no 'mocodec_codec' entry); give a .ckpt written by `mocodec train`")
    codec = load_codec(recorded["name"], recorded["quality"], checkpoint=checkpoint)
    buffer = io.BytesIO()
    torch.save(codec_state(codec, recorded.get("kwargs", {})), buffer)
    atomic_write_bytes(out, buffer.getvalue())
    return recorded


# --------------------------------------------------------------------------- command line


class LogConfig(SaveConfigCallback):
    """Saves ``config.yaml`` in the run folder and sends the full configuration and code version to every logger."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import yaml

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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place.

    Lightning writes checkpoints in place, so a run killed mid-write (SIGKILL, OOM, a
    pre-empted node) can leave a truncated ``last.ckpt`` that cannot resume. With a rename,
    the file is always either the previous complete checkpoint or the new complete one.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        from mocodec.files import atomic_write_bytes

        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def checkpoint_dir(run_dir: str | os.PathLike | None) -> Path:
    """Where ``mocodec train`` writes the checkpoints of the run in ``run_dir``."""
    return Path(run_dir or ".") / "checkpoints"


class MocodecCLI(LightningCLI):
    """LightningCLI with mocodec's run-folder conventions (module docstring) and resumable W&B runs."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {k: v for k, v in LightningCLI.subcommands().items() if k in ("fit", "validate")}

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # Written after each validation (never at a train-epoch end, which Lightning replays on resume).
        # No monitor by default: with one, Lightning refreshes last.ckpt only when the monitored
        # value improves, so `--ckpt_path last` would resume from the best, not the latest, state.
        parser.set_defaults({
            "checkpoint.save_last": True, "checkpoint.monitor": None, "checkpoint.save_top_k": 1,
            "checkpoint.save_on_train_epoch_end": False,
        })
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=lambda root: str(checkpoint_dir(root)))

    def _parse_ckpt_path(self) -> None:
        # LightningCLI torch.loads --ckpt_path itself to read its hyper-parameters; check the
        # file first, so a damaged or code-carrying checkpoint is one clear line, not a traceback.
        from mocodec.weights import load_checkpoint

        ckpt = self.config.get(self.config.get("subcommand") or "", {}).get("ckpt_path")
        if ckpt and Path(ckpt).is_file():
            load_checkpoint(ckpt)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Read the checkpoint to resume (if any): its codec record, and its W&B run id for the logger."""
        from mocodec.weights import load_checkpoint

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
        return super().instantiate_trainer(**kwargs)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def run_cli(argv: Sequence[str]) -> MocodecCLI:
    """Run ``mocodec train ARGV`` in this process; the finished CLI (``.model``, ``.trainer``, ``.datamodule``)."""
    from jsonargparse import ArgumentError

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
    """``mocodec train {fit,validate} --config configs/NAME.yaml [--section.key value ...]``."""
    run_cli(sys.argv[1:] if argv is None else argv)
