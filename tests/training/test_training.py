"""CodecModule + LightningCLI in process: every shipped config (composition, a smoke run), resume equivalence, NaN guard, checkpoints, bf16-mixed."""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from torch.utils.data import DataLoader

from mocodec.codecs import CODECS, load_codec
from mocodec.errors import ConfigError
from mocodec.losses import DISTORTIONS
from mocodec.training import TRAINING_STATE_KEY, CodecModule, coding_ready_state, run_cli, split_parameters
from mocodec.training import cli as train_cli
from mocodec.weights import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "train").glob("*.yaml"))
VARIANTS = [c for c in CONFIGS if "config" in yaml.safe_load(c.read_text())]  # configs that start from another one
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SMALL_DATA = [
    "--data.train",
    "null",
    "--data.val",
    "null",
    "--data.crop_size",
    "64",
    "--data.val_crop_size",
    "64",
    "--data.batch_size",
    "2",
    "--data.val_batch_size",
    "2",
    "--data.num_workers",
    "0",
]


def resolved(*argv: str) -> dict:
    """The configuration ``mocodec train fit ARGV`` resolves (``--print_config``), as plain data."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit):
        run_cli(["fit", *argv, "--print_config"])
    return yaml.safe_load(printed.getvalue())


def tiny_overrides(config: Path) -> list[str]:
    """The config with its codec and distortion networks swapped for the registry's tiny test versions."""
    model = resolved("--config", str(config))["model"]
    distortions = {}
    for name, spec in model["distortions"].items():
        spec = dict(spec) if isinstance(spec, dict) else {"weight": spec}
        distortions[name] = {**spec, **DISTORTIONS.meta(name).get("test_kwargs", {})}
    return [
        "--model.codec_kwargs",
        json.dumps(CODECS.meta(model["codec"])["test_kwargs"]),
        "--model.init_weights",
        "null",
        "--model.distortions",
        json.dumps(distortions),
    ]


def test_every_config_is_shipped():
    assert [c.stem for c in CONFIGS] == [
        "ddp_example",
        "fast_cpu",
        "hyperprior_lpips",
        "hyperprior_mlclipsim",
        "hyperprior_mse",
        "hyperprior_msssim",
        "mbt2018_mean_small",
        "mbt2018_mean_small_finetune",
        "mlicpp_mlclipsim",
        "tiny_cpu",
    ]


@pytest.mark.parametrize("config", VARIANTS, ids=[c.stem for c in VARIANTS])
def test_a_variant_is_its_base_then_its_keys(config):
    """``config: BASE`` then dotted keys resolves as ``--config BASE --config KEYS`` (Lightning's merge, key by key) does.

    jsonargparse applies a ``config`` key inside a config file as it applies the ``--config`` flag (its
    documentation does not say so: this pins it). A nested block after ``config:`` would replace the
    base's whole section instead of changing single keys: this catches it.
    """
    keys = yaml.safe_load(config.read_text())
    base = config.parent / keys.pop("config")
    changes: dict = {}
    for dotted, value in keys.items():
        *sections, key = dotted.split(".")
        branch = changes
        for section in sections:
            branch = branch.setdefault(section, {})
        branch[key] = value
    assert resolved("--config", str(config)) == resolved("--config", str(base), "--config", json.dumps(changes))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_fast_dev_run_of_every_config(config, tmp_path):
    cli = run_cli(
        [
            "fit",
            "--config",
            str(config),
            *tiny_overrides(config),
            *SMALL_DATA,
            *QUIET,
            "--trainer.fast_dev_run",
            "true",
            "--trainer.accelerator",
            "cpu",
            "--trainer.default_root_dir",
            str(tmp_path),
            # One process here (the DDP example runs in 2 processes in tests/distributed); its precision stays as configured.
            "--trainer.devices",
            "1",
            "--trainer.strategy",
            "auto",
        ]
    )
    module, metrics = cli.model, cli.trainer.callback_metrics
    assert cli.trainer.global_step == 1 and math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/bpp"])
    expected_terms = {name.replace("-", "_") for name in resolved("--config", str(config))["model"]["distortions"]}
    assert set(module.loss.terms) == expected_terms and all(f"val/{t}" in metrics for t in expected_terms)
    # Optimisers hold exactly the codec's parameters: quantiles in the aux one, never a distortion network's.
    main, aux = (set(map(id, (p for g in opt.param_groups for p in g["params"]))) for opt in cli.trainer.optimizers)
    codec_main, codec_aux = (set(map(id, ps)) for ps in split_parameters(module.codec))
    assert main == codec_main and aux == codec_aux and codec_aux
    # Frozen distortion networks stay out of checkpoints (they are rebuilt from their names).
    assert {k for k in module.state_dict() if not k.startswith("codec.")} == {"skipped_steps", "loss.term_means", "loss.balance_steps"}
    assert all(not p.requires_grad for p in module.loss.parameters())


TINY_CONFIG = """
seed_everything: 3
trainer:
  accelerator: cpu
  logger: false
  limit_val_batches: 1
model:
  codec: bmshj2018-hyperprior
  quality: 2
  codec_kwargs: {N: 8, M: 12}
  lmbda: 0.01
  distortions: {mse: 1.0, msssim: 0.5}
  balance_warmup: 2
  lr_scheduler:
    class_path: torch.optim.lr_scheduler.StepLR
    init_args: {step_size: 1, gamma: 0.5}
data:
  crop_size: 48
  val_crop_size: 64
  batch_size: 4
  val_batch_size: 2
  embedded_repeats: 1   # 11 crops, batch 4: 3 steps per epoch
"""


def train(config: Path, run_dir: Path, epochs: int, *extra: str):
    return run_cli(
        ["fit", "--config", str(config), *QUIET, "--trainer.default_root_dir", str(run_dir), "--trainer.max_epochs", str(epochs), *extra]
    )


def training_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The module's state as training left it (checkpoints hold coding-ready tables and quantiles)."""
    return {**ckpt["state_dict"], **ckpt[TRAINING_STATE_KEY]}


def test_resume_continues_exactly(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    train(config, tmp_path / "straight", 2)
    train(config, tmp_path / "resumed", 1)
    resumed = train(config, tmp_path / "resumed", 2, "--ckpt_path", "last")
    assert resumed.trainer.global_step == 6
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 6
    sa, sb = training_state(a), training_state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # weights, quantiles, balancing
    assert int(sb["loss.balance_steps"]) == 6
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"]):
        assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"])
    assert a["lr_schedulers"] == b["lr_schedulers"] and b["lr_schedulers"][0]["last_epoch"] == 2


def test_last_checkpoint_holds_the_final_step_between_validations(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    # validation (and a checkpoint) every 2 steps, across epochs; fitting stops at step 5
    run_cli(
        ["fit", "--config", str(config), *QUIET, "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.max_epochs", "-1"]
        + ["--trainer.max_steps", "5", "--trainer.val_check_interval", "2", "--trainer.check_val_every_n_epoch", "null"]
    )
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 5
    # saved under Lightning's ModelCheckpoint key, so checkpoints of either resume with their state (last.ckpt in place)
    assert [key.split("{")[0] for key in ckpt["callbacks"]] == ["ModelCheckpoint"]


def test_checkpoints_code_without_a_further_step_and_keep_training_values(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    cli = train(config, tmp_path / "run", 1)
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = load_checkpoint(path)  # torch.load(weights_only=True): plain data only
    assert ckpt["mocodec_codec"] == {"name": "bmshj2018-hyperprior", "quality": 2, "kwargs": {"N": 8, "M": 12}}
    # update(update_quantiles=True) ran on a copy: the file holds bisected quantiles and their
    # tables, the training values are kept aside, and the live module was not touched.
    quantiles = "codec.entropy_bottleneck.quantiles"
    assert not torch.equal(ckpt["state_dict"][quantiles], ckpt[TRAINING_STATE_KEY][quantiles])
    assert torch.equal(cli.model.state_dict()[quantiles], ckpt[TRAINING_STATE_KEY][quantiles])
    assert cli.model.codec.entropy_bottleneck._offset.numel() == 0  # no tables in the training module
    codec = load_codec("bmshj2018-hyperprior", 2, checkpoint=path)
    assert codec.entropy_tables_ready() and torch.equal(codec.entropy_bottleneck.quantiles, ckpt["state_dict"][quantiles])


class Batches(torch.utils.data.Dataset):
    """Fixed batches (dicts as ImageDataModule yields), one per index."""

    def __init__(self, *images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "unreadable": 0}


def fit_on(*images: torch.Tensor, **kwargs) -> tuple[CodecModule, pl.Trainer]:
    pl.seed_everything(5)
    module = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12}, lmbda=0.01, distortions={"mse": 1.0}, **kwargs)
    loader = DataLoader(Batches(*images), batch_size=None)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return module, trainer


def test_nan_guard_skips_a_poisoned_batch():
    torch.manual_seed(0)
    good = torch.rand(2, 3, 64, 64)
    poisoned = good.clone()
    poisoned[0, 0, 5, 5] = float("nan")
    clean, clean_trainer = fit_on(good)
    guarded, guarded_trainer = fit_on(good, poisoned)
    assert int(guarded.skipped_steps) == 1 and guarded_trainer.global_step == clean_trainer.global_step == 1
    a, b = clean.state_dict(), guarded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k != "skipped_steps")  # the poisoned step changed nothing
    assert all(torch.isfinite(p).all() for p in guarded.parameters())


def test_init_weights_starts_from_a_checkpoint(tmp_path):
    from mocodec.codecs import codec_state, create_codec

    torch.manual_seed(1)
    source = create_codec("bmshj2018-hyperprior", quality=2, N=8, M=12)
    path = tmp_path / "start.pth"
    torch.save(codec_state(source, {"N": 8, "M": 12}), path)
    module = CodecModule("bmshj2018-hyperprior", 2, init_weights=str(path))
    assert module.codec.training and (module.codec.N, module.codec.M) == (8, 12)
    assert all(torch.equal(a, b) for a, b in zip(module.codec.parameters(), source.parameters()))
    assert module.codec_record() == {"name": "bmshj2018-hyperprior", "quality": 2, "kwargs": {"N": 8, "M": 12}}
    # the weights of one quality start the training of another (a neighbouring λ): the run trains, and records, its own
    other = CodecModule("bmshj2018-hyperprior", 3, init_weights=str(path))
    assert all(torch.equal(a, b) for a, b in zip(other.codec.parameters(), source.parameters()))
    assert other.codec_record() == {"name": "bmshj2018-hyperprior", "quality": 3, "kwargs": {"N": 8, "M": 12}}


def test_python_api_checkpoints_hold_plain_hyperparameters(tmp_path):
    import functools

    sgd = functools.partial(torch.optim.SGD, lr=0.1)
    module, trainer = fit_on(torch.rand(1, 3, 64, 64), optimizer=sgd, aux_optimizer=torch.optim.Adam)
    assert isinstance(trainer.optimizers[0], torch.optim.SGD) and trainer.optimizers[0].param_groups[0]["lr"] == 0.1
    trainer.save_checkpoint(tmp_path / "api.ckpt")
    hparams = load_checkpoint(tmp_path / "api.ckpt")["hyper_parameters"]  # weights_only=True: no classes inside
    assert hparams["optimizer"] == {"class_path": "torch.optim.sgd.SGD", "init_args": {"lr": 0.1}}
    assert hparams["aux_optimizer"] == {"class_path": "torch.optim.adam.Adam"}


# --------------------------------------------------------------------------- bf16-mixed on CPU


def test_bf16_mixed_computes_the_transforms_in_bf16_and_the_rest_in_fp32():
    seen: dict[str, list[tuple[bool, bool, torch.dtype]]] = {}  # name -> (training, autocast on, output dtype) per call

    def record(name, pick):
        def hook(module, args, output):
            seen.setdefault(name, []).append((module.training, torch.is_autocast_enabled("cpu"), pick(output).dtype))

        return hook

    pl.seed_everything(5)
    module = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12}, lmbda=0.01, distortions={"mse": 1.0, "msssim": 0.5}, log_images=0)
    module.codec.g_s.register_forward_hook(record("synthesis", lambda out: out))
    module.codec.entropy_bottleneck.register_forward_hook(record("z likelihoods", lambda out: out[1]))
    module.codec.gaussian_conditional.register_forward_hook(record("y likelihoods", lambda out: out[1]))
    module.loss.register_forward_hook(record("loss", lambda out: out["loss"]))
    torch.manual_seed(0)
    images = [torch.rand(2, 3, 64, 64) for _ in range(2)]
    trainer = pl.Trainer(
        accelerator="cpu",
        precision="bf16-mixed",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, DataLoader(Batches(*images), batch_size=None), DataLoader(Batches(images[0]), batch_size=None))
    assert trainer.global_step == 2 and math.isfinite(trainer.callback_metrics["val/psnr"])
    training = {name: {call[1:] for call in calls if call[0]} for name, calls in seen.items()}
    validation = {name: {call[1:] for call in calls if not call[0]} for name, calls in seen.items()}
    # Training steps run under autocast: the transforms in bf16; likelihoods and loss in fp32 inside that region.
    assert training == {
        "synthesis": {(True, torch.bfloat16)},
        "z likelihoods": {(True, torch.float32)},
        "y likelihoods": {(True, torch.float32)},
        "loss": {(False, torch.float32)},
    }
    # Validation runs wholly in fp32, as the coding path does.
    assert validation == {name: {(False, torch.float32)} for name in seen}
    # Parameters, gradients' targets and both optimisers' states stay fp32 (bf16-true would make them bf16).
    assert {p.dtype for p in module.parameters()} == {torch.float32}
    states = [t for opt in trainer.optimizers for state in opt.state.values() for t in state.values() if t.is_floating_point()]
    assert states and {t.dtype for t in states if t.dim()} == {torch.float32}


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
def test_half_precision_parameters_are_refused(precision):
    module = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12})
    trainer = pl.Trainer(
        accelerator="cpu", precision=precision, max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    with pytest.raises(
        ConfigError,
        match=(
            rf"^trainer.precision {precision} would keep the parameters and the optimiser state in 16 bits, where small updates are lost; "
            r"use bf16-mixed \(transforms in bfloat16, parameters and Adam state in float32\)$"
        ),
    ):
        trainer.fit(module, DataLoader(Batches(torch.rand(1, 3, 64, 64)), batch_size=None))


def test_coding_tables_are_computed_in_fp32_even_under_autocast():
    torch.manual_seed(0)
    module = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12})
    plain = coding_ready_state(module.codec)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = coding_ready_state(module.codec)
    assert plain.keys() == under_autocast.keys() and all(torch.equal(plain[k], under_autocast[k]) for k in plain)
    assert {v.dtype for v in plain.values() if v.is_floating_point()} == {torch.float32}


def test_channels_last_computes_the_same_codec_and_saves_plain_checkpoints(tmp_path):
    torch.manual_seed(0)
    images = [torch.rand(2, 3, 64, 64) for _ in range(2)]
    pl.seed_everything(1)
    plain = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12}).eval()
    pl.seed_everything(1)
    nhwc = CodecModule("bmshj2018-hyperprior", 1, {"N": 8, "M": 12}, channels_last=True).eval()
    assert nhwc.codec.g_a[0].weight.is_contiguous(memory_format=torch.channels_last)
    a, b = plain(images[0]), nhwc(images[0].contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(b["x_hat"], a["x_hat"], atol=1e-5, rtol=1e-4)  # the same function, up to float rounding
    torch.testing.assert_close(b["likelihoods"], a["likelihoods"], atol=1e-6, rtol=1e-4)
    module, trainer = fit_on(*images, channels_last=True)
    assert trainer.global_step == 2 and module.codec.g_a[0].weight.is_contiguous(memory_format=torch.channels_last)
    trainer.save_checkpoint(tmp_path / "nhwc.ckpt")
    codec = load_codec("bmshj2018-hyperprior", checkpoint=tmp_path / "nhwc.ckpt")
    trained = dict(module.codec.named_parameters())
    assert codec.entropy_tables_ready()  # the quantiles are the checkpoint's bisected ones, the weights the trained ones
    assert all(torch.equal(p, trained[name]) for name, p in codec.named_parameters() if not name.endswith("quantiles"))


@pytest.mark.parametrize(
    ("precision", "accelerator", "native_bf16", "expected"),
    [
        ("bf16-mixed", "cpu", False, "32-true"),  # the generic bf16 kernels: ~10x slower than fp32
        ("bf16-mixed", "auto", False, "32-true"),  # "auto" on a machine without CUDA is the CPU
        ("bf16-mixed", "cpu", True, "bf16-mixed"),  # AVX512-BF16 / AMX: bf16 is the fast path
        ("32-true", "cpu", False, "32-true"),
        ("bf16-mixed", "gpu", False, "bf16-mixed"),  # GPUs are not this CPU's business
    ],
)
def test_bf16_mixed_falls_back_to_fp32_only_on_cpus_without_native_bf16(monkeypatch, precision, accelerator, native_bf16, expected):
    monkeypatch.setattr(train_cli, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert train_cli.effective_precision(precision, accelerator) == expected
    fell_back = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(fell_back) == (expected != precision)


def test_a_checkpoint_whose_live_codec_held_tables_resumes_into_a_fresh_module():
    """Tables built in the training codec (a float mbt2018 validation builds them) are saved as training values; a fresh
    module, whose table buffers are empty, takes them anyway (Lightning loads the whole module, not CompressAI's method)."""
    torch.manual_seed(0)
    trained = CodecModule("mbt2018", 1, {"N": 8, "M": 12})
    trained.codec.update(force=True)
    checkpoint = {"state_dict": trained.state_dict()}
    trained.on_save_checkpoint(checkpoint)
    fresh = CodecModule("mbt2018", 1, {"N": 8, "M": 12})
    assert fresh.codec.gaussian_conditional._quantized_cdf.numel() == 0
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(fresh.codec.gaussian_conditional._quantized_cdf, trained.codec.gaussian_conditional._quantized_cdf)
