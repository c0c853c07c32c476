"""The LightningModule: :class:`CodecModule` trains a registry codec on ``bpp + λ · Σ w_i · d_i``.

``CodecModule`` wraps a codec built from the registry by name and a
:class:`~mocodec.losses.RateDistortionLoss` (``bpp + λ · Σ w_i · d_i``), and trains it
with manual optimisation as CompressAI does: a main optimiser over every codec
parameter except the entropy bottlenecks' quantiles, and an auxiliary optimiser over
those quantiles driven by ``codec.aux_loss()``. Distortion networks are never
optimised (only the codec's parameters reach an optimiser). A step whose loss or
gradient is not finite is skipped, on every rank at once, and counted
(``train/skipped_steps``), so one poisoned batch cannot corrupt the weights.
What its checkpoints hold: :mod:`mocodec.training.checkpoints`.

**Mixed precision** (``trainer.precision: bf16-mixed``, on CPU as on GPUs): Lightning runs
each step under ``torch.autocast``, so the transforms compute in bfloat16, while the
entropy models (likelihoods, quantisation: :func:`entropy_models_in_fp32`), the loss and
the aux loss compute in float32, and parameters, gradients and optimiser states stay
float32. Validation runs wholly in float32, as the coding path does (CDF tables are
computed in float32, never under autocast), so a checkpoint trained under ``bf16-mixed``
is validated, saved, exported and codes like one trained in float32. ``bf16-true`` and
``16-true`` (half-precision parameters and Adam state) are refused.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Mapping
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from compressai.entropy_models import EntropyModel
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor, nn
from torchmetrics import MeanMetric

from mocodec.codecs import CODEC_KEY, create_codec, load_codec
from mocodec.errors import ConfigError
from mocodec.losses import RateDistortionLoss, ms_ssim, psnr
from mocodec.losses.rate_distortion import bpp_per_image
from mocodec.training.checkpoints import (
    RNG_KEY,
    RUN_KEY,
    TRAINING_STATE_KEY,
    check_same_codec,
    coding_ready_state,
    make_codec_record,
    plain_data,
    rng_state,
    set_rng_state,
)

# --------------------------------------------------------------------------- codec helpers


def split_parameters(codec: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """CompressAI's split: (main parameters, entropy-bottleneck quantiles for the aux optimiser)."""
    main, aux = [], []
    for name, param in codec.named_parameters():
        if param.requires_grad:
            (aux if name.endswith("quantiles") else main).append(param)
    return main, aux


def float32(value: Any) -> Any:
    """``value`` (a tensor, or dicts / lists / tuples of them) with floating-point tensors in float32."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, Mapping):
        return {k: float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(float32(v) for v in value)
    return value


def _forward_in_fp32(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """An entropy model's own forward, in float32 whatever autocast region it is called from."""
    device_type = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
    with torch.autocast(device_type, enabled=False):
        return type(self).forward(self, *map(float32, args), **float32(kwargs))


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


# --------------------------------------------------------------------------- the LightningModule


class CodecModule(pl.LightningModule):
    """A registry codec trained on ``bpp + λ · Σ_i w_i · d_i`` (see the module docstring).

    DDP (``strategy: ddp``, any devices/nodes) needs nothing special: the rate-distortion
    and auxiliary losses are backpropagated as one sum (they reach disjoint parameters),
    so every parameter has a gradient each step and the quantiles are averaged across
    ranks like the rest. The aux loss is a sum over channels of a function of the
    quantiles alone: it does not grow with the batch or the world size. Under
    ``bf16-mixed`` only the transforms compute in bfloat16 (module docstring).

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
        channels_last: keep the codec's 4-D weights and the training batches in channels-last
            (NHWC) memory format, the layout oneDNN's CPU convolutions prefer (under bf16-mixed a
            step took 0.75x the time on a Xeon with AMX); what is learned changes only by float rounding.
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
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.codec_kwargs = dict(codec_kwargs or {})
        self.codec = entropy_models_in_fp32(self._build_codec(codec, quality, init_weights))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.codec.to(memory_format=torch.channels_last)
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
        # The run trains this quality, whatever quality the starting weights were trained at (a
        # neighbouring λ's weights are the usual start): checkpoints and files record this one.
        codec.set_identity(codec.codec_name, quality)
        return codec.train()

    def forward(self, x: Tensor) -> dict[str, Any]:
        return self.codec(x)

    def setup(self, stage: str) -> None:
        """Refuse precisions that would train 16-bit parameters (module docstring)."""
        precision = str(self.trainer.precision)
        if precision in ("bf16-true", "16-true"):
            raise ConfigError(
                f"trainer.precision {precision} would keep the parameters and the optimiser state in 16 bits, where small "
                "updates are lost; use bf16-mixed (transforms in bfloat16, parameters and Adam state in float32)"
            )

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
        x = batch["image"].contiguous(memory_format=self.memory_format)
        n = x.shape[0]
        self.log(
            "train/unreadable_images",
            float(batch["unreadable"]),
            on_step=False,
            on_epoch=True,
            reduce_fx="sum",
            batch_size=1,
            sync_dist=True,
        )
        out = self.codec(x) if n else None  # under bf16-mixed: transforms in bf16, entropy models in fp32
        with torch.autocast(x.device.type, enabled=False):  # the losses in fp32, whatever the precision
            terms = self.loss(float32(out), x) if n else None
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
        with torch.autocast(x.device.type, enabled=False):  # validated in fp32, as it will code, whatever the training precision
            self._validate(x, batch_idx)

    def _validate(self, x: Tensor, batch_idx: int) -> None:
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
        state = checkpoint["state_dict"]
        state.update(checkpoint.get(TRAINING_STATE_KEY, {}))
        # CDF tables have no fixed size: give the live entropy models' table buffers the checkpoint's shapes
        # (CompressAI's own load_state_dict does this, but Lightning loads the whole module at once).
        for name, module in self.codec.named_modules():
            if isinstance(module, EntropyModel):
                for buffer, _ in module.named_buffers(recurse=False):
                    stored = state.get(f"codec.{name}.{buffer}")
                    if stored is not None and stored.shape != getattr(module, buffer).shape:
                        setattr(module, buffer, torch.empty_like(stored, device=getattr(module, buffer).device))
        self._resume_rng = checkpoint.get(RNG_KEY)

    def on_train_start(self) -> None:
        # Restored here, not in on_load_checkpoint: the sanity-check validation in between
        # draws random numbers that the uninterrupted run did not draw at this point.
        if self._resume_rng is not None:
            set_rng_state(self._resume_rng)
            self._resume_rng = None
