"""The training checkpoint contract: ready to code, resumable exactly, plain data only.

A checkpoint written by :class:`~mocodec.training.CodecModule` holds:

- a top-level ``"mocodec_codec": {"name", "quality", "kwargs"}`` entry (:func:`make_codec_record`),
  so :func:`mocodec.codecs.load_codec` and ``CodecSpec.parse("ckpt:PATH")`` rebuild the codec,
  and a resumed run refuses a checkpoint of another codec (:func:`check_same_codec`);
- the codec's ``state_dict`` entries with CDF tables computed by
  ``update(force=True, update_quantiles=True)`` on a *copy* of the codec (:func:`coding_ready_state`:
  the bisection moves the quantiles, so coding never depends on how far the aux loss converged),
  while the exact training values of every entry that update changed are kept under
  ``"mocodec_training_state"`` and put back on resume: saving never perturbs training;
- the torch and Python random states (:func:`rng_state`), restored when training restarts, so a
  run resumed from a checkpoint written after a validation at an epoch's end (the default)
  continues exactly as if it had never stopped: same crops, same quantisation noise (a mid-epoch
  checkpoint, e.g. ``checkpoint.every_n_train_steps``, resumes the step count, optimisers and
  schedule, but Lightning restarts that epoch's data loader); and the W&B run id, which the
  resumed run's logger reuses;
- only plain data (hyper-parameters included, :func:`plain_data`), so ``torch.load(weights_only=True)`` reads them.

Checkpoints are written atomically (:class:`AtomicCheckpointIO`) to ``<run>/checkpoints``
(:func:`mocodec.training.layout.checkpoint_dir`); :func:`export_codec` turns one into a codec file for ``compress --checkpoint``.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import random
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from compressai.entropy_models import EntropyModel
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO
from torch import Tensor, nn

from mocodec.codecs import CODEC_KEY, codec_state, create_codec, load_codec, shipped
from mocodec.errors import ConfigError, WeightsError
from mocodec.files import atomic_write_bytes
from mocodec.registry import canonical_name
from mocodec.weights import load_checkpoint

TRAINING_STATE_KEY = "mocodec_training_state"  # exact training values of entries the coding update changed
RNG_KEY = "mocodec_rng"
RUN_KEY = "mocodec_run"  # {"wandb_id": ...}


# --------------------------------------------------------------------------- the codec record


@torch.no_grad()
def coding_ready_state(codec: nn.Module) -> dict[str, Tensor]:
    """The state dict of a copy of ``codec`` with fresh CDF tables (quantiles re-derived by bisection), computed in float32."""
    ready = copy.deepcopy(codec)
    device_type = next(ready.parameters()).device.type
    with torch.autocast(device_type, enabled=False):  # tables must not depend on the precision a run trains in
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


# --------------------------------------------------------------------------- random state and plain data


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA) and Python random states, as plain data (tensors and tuples)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the random states :func:`rng_state` recorded."""
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


# --------------------------------------------------------------------------- files


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file and renames it into place.

    Lightning writes checkpoints in place, so a run killed mid-write (SIGKILL, OOM, a
    pre-empted node) can leave a truncated ``last.ckpt`` that cannot resume. With a rename,
    the file is always either the previous complete checkpoint or the new complete one.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


class LastStepCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` also holds the final step.

    Lightning writes ``last.ckpt`` after each validation and, at the end of fitting, only if none
    was written yet; a run whose ``max_steps`` falls between validations would leave its last
    steps out of ``last.ckpt`` (what ``export`` ships and an experiment evaluates). This writes
    it again when fitting ends at a step no checkpoint holds.
    """

    @property
    def state_key(self) -> str:
        # Lightning's own key (it names the class): checkpoints written by ModelCheckpoint resume with their
        # state, so last.ckpt is written again in place, not beside it as last-v1.ckpt.
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        else:
            super().on_train_end(trainer, pl_module)


def export_codec(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    half: bool = False,
    compact: bool = False,
    name: str | None = None,
    quality: int | None = None,
) -> dict[str, Any]:
    """Write the codec of a training checkpoint as a mocodec export (``codec_state``); returns its record.

    ``half``: the transforms' floating-point weights stored as float16 (half the file; loading
    turns them back into float32), the entropy models' parameters kept exact, so the CDF tables
    stay those the weights were trained with. ``compact`` (what mocodec ships): the CDF tables
    left out, since loading derives them from the parameters (a fifth of a half-precision file),
    and the archive's entries deflated; ``torch.load`` reads it as any other. ``name``/``quality``:
    the registry codec and quality the file names instead of those it was trained as, e.g. a run
    shipped as a quality of a codec of its own (:func:`ship_codec`); same architecture only.
    """
    recorded = training_codec_record(load_checkpoint(checkpoint), checkpoint)
    codec = load_codec(recorded["name"], recorded["quality"], checkpoint=checkpoint)
    if name is not None or quality is not None:
        codec = renamed(codec, recorded, name or recorded["name"], int(quality or recorded["quality"]))
    state = codec_state(codec, recorded.get("kwargs", {}))
    if half:
        exact = tuple(f"{prefix}." for prefix, module in codec.named_modules() if isinstance(module, EntropyModel))
        state["state_dict"] = {
            k: v.half() if v.is_floating_point() and not k.startswith(exact) else v for k, v in state["state_dict"].items()
        }
    if compact:
        tables = codec.coder_table_keys()
        state["state_dict"] = {k: v for k, v in state["state_dict"].items() if k not in tables}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(out, deflated_archive(buffer.getvalue()) if compact else buffer.getvalue())
    return {**recorded, "name": codec.codec_name, "quality": codec.quality}


def training_codec_record(ckpt: Mapping[str, Any], checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The codec record of a mocodec training checkpoint (refused in one line if it has none)."""
    recorded = ckpt.get(CODEC_KEY)
    if not isinstance(recorded, dict):
        raise WeightsError(
            f"{checkpoint} is not a mocodec training checkpoint (no 'mocodec_codec' entry); give a .ckpt written by `mocodec train`"
        )
    return recorded


def renamed(codec: nn.Module, recorded: Mapping[str, Any], name: str, quality: int) -> nn.Module:
    """``codec``'s weights as codec ``name`` at ``quality``, which must build the same architecture (one line if not)."""
    target = create_codec(name, quality=quality, **recorded.get("kwargs", {}))
    try:
        target.load_state_dict(codec.state_dict())
    except RuntimeError:
        raise ConfigError(
            f"{name} quality {quality} is another architecture than the {_describe(recorded)} this checkpoint trained; "
            "name a codec of the same architecture"
        ) from None
    target.set_identity(canonical_name(name), quality)
    return target.eval()


def deflated_archive(archive: bytes) -> bytes:
    """A ``torch.save`` archive with every entry deflated, names, order and dates kept (the same bytes every time)."""
    stored = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as deflated:
        for info in stored.infolist():
            entry = zipfile.ZipInfo(info.filename, info.date_time)
            entry.compress_type = zipfile.ZIP_DEFLATED
            deflated.writestr(entry, stored.read(info), compresslevel=9)
    return out.getvalue()


def ship_codec(
    checkpoint: str | os.PathLike, folder: Path | None = None, *, name: str | None = None, quality: int | None = None
) -> dict[str, Any]:
    """Ship a training checkpoint's codec with mocodec: a compact half-precision export in the package's weights folder.

    The file is ``<codec>-q<quality>.pth``, as the checkpoint trained it unless ``name``/``quality``
    say which registry codec and quality it ships as (a run of an experiment becomes, say, quality 1
    of a codec of its own); the manifest (:mod:`mocodec.codecs.shipped`) records its SHA-256 and how
    it was trained (λ, distortions, steps, starting weights, the identity it trained as), read from
    the checkpoint. ``--pretrained`` then loads it, offline. Returns the manifest entry.
    """
    folder = Path(folder or shipped.WEIGHTS_DIR)
    ckpt = load_checkpoint(checkpoint)
    trained_as = training_codec_record(ckpt, checkpoint)
    name, quality = canonical_name(name or trained_as["name"]), int(quality or trained_as["quality"])
    path = folder / f"{name}-q{quality}.pth"
    export_codec(checkpoint, path, half=True, compact=True, name=name, quality=quality)
    hp = ckpt.get("hyper_parameters", {})
    facts = {
        "lmbda": hp.get("lmbda"),
        "distortions": hp.get("distortions"),
        "steps": int(ckpt.get("global_step", -1)),
        "init_weights": hp.get("init_weights"),
        "architecture": trained_as.get("kwargs", {}),
        "trained_as": f"{trained_as['name']} quality {trained_as['quality']}",
    }
    return shipped.record(name, quality, path, facts, folder)
