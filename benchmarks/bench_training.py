"""Training throughput of ``mocodec train`` (CodecModule under Lightning) against a minimal
plain-PyTorch CompressAI loop, same run: bmshj2018-hyperprior quality 3, MSE, λ 0.0130,
batches of 8 random 256 x 256 crops of the embedded photographs. Target ratio >= 0.9.

    .venv/bin/python benchmarks/bench_training.py [--steps 10 --warmup 2 --repeats 3 --threads 2]

Both loops draw crops from the same dataset and loader settings, use Adam (1e-4 main,
1e-3 aux), clip the gradient norm at 1.0 and step the aux optimiser every step, so the
ratio measures what mocodec and Lightning add (manual optimisation, the NaN/Inf guard,
logging). Runs are interleaved (plain, mocodec, plain, ...) so background load hits both
alike; the median of the timed windows (after warm-up steps) is reported, in wall-clock
steps/s and in steps per CPU-second of this process (steadier on a shared machine, where
waiting for a core is not counted). A first, untimed round warms the process.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import torch

warnings.filterwarnings("ignore")


def loader(crop: int, batch: int):
    from torch.utils.data import DataLoader

    from mocodec.data.datasets import EmbeddedPhotos, collate_images, random_crop

    return DataLoader(EmbeddedPhotos("train", random_crop(crop), repeats=64), batch_size=batch, shuffle=True, collate_fn=collate_images)


class Clock:
    """Wall-clock and process CPU time of a window."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, steps: int) -> tuple[float, float]:
        """(wall seconds, CPU seconds) per step."""
        return (time.perf_counter() - self.wall) / steps, (time.process_time() - self.cpu) / steps


def plain_compressai(steps: int, warmup: int, crop: int, batch: int) -> tuple[float, float]:
    """CompressAI's examples/train.py loop, stripped to its core; (wall, CPU) seconds per step."""
    from compressai.losses import RateDistortionLoss
    from compressai.zoo import bmshj2018_hyperprior

    torch.manual_seed(0)
    net = bmshj2018_hyperprior(quality=3).train()
    main = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    optimizer, aux_optimizer = torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)
    criterion = RateDistortionLoss(lmbda=0.0130)
    clock = Clock()
    for i, batch_ in enumerate(loader(crop, batch)):
        if i == warmup:
            clock.start()
        if i == warmup + steps:
            break
        x = batch_["image"]
        optimizer.zero_grad()
        aux_optimizer.zero_grad()
        loss = criterion(net(x), x)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        optimizer.step()
        net.aux_loss().backward()
        aux_optimizer.step()
    return clock.stop(steps)


def mocodec_lightning(steps: int, warmup: int, crop: int, batch: int) -> tuple[float, float]:
    """CodecModule + ImageDataModule under a Lightning Trainer, as `mocodec train` runs them; (wall, CPU) seconds per step."""
    import pytorch_lightning as pl

    from mocodec.data.datamodule import ImageDataModule
    from mocodec.training import CodecModule

    class Window(pl.Callback):
        clock = Clock()

        def on_train_batch_start(self, trainer, module, batch_, batch_idx):
            if batch_idx == warmup:
                self.clock.start()

        def on_train_end(self, trainer, module):
            self.per_step = self.clock.stop(steps)

    torch.manual_seed(0)
    module = CodecModule("bmshj2018-hyperprior", 3, lmbda=0.0130, distortions={"mse": 1.0}, clip_max_norm=1.0, log_images=0)
    data = ImageDataModule(crop_size=crop, batch_size=batch, embedded_repeats=64)
    window = Window()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=warmup + steps,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[window],
        log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=data)
    return window.per_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)

    plain, ours = [], []
    for run in range(args.repeats + 1):  # run 0 warms the process (allocator, oneDNN kernels) and is dropped
        timings = (
            plain_compressai(args.steps, args.warmup, args.crop, args.batch),
            mocodec_lightning(args.steps, args.warmup, args.crop, args.batch),
        )
        if run:
            plain.append(timings[0])
            ours.append(timings[1])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"bmshj2018-hyperprior q3, MSE, batch {args.batch} of {args.crop}x{args.crop} crops, {args.steps} timed steps x {args.repeats} runs"
    )
    for i, unit in enumerate(("steps/s (wall clock)", "steps per CPU-second")):
        p, o = statistics.median(r[i] for r in plain), statistics.median(r[i] for r in ours)
        print(f"{unit}:")
        print(f"  plain CompressAI loop : {1 / p:.3f}  (runs: {', '.join(f'{1 / r[i]:.3f}' for r in plain)})")
        print(f"  mocodec (Lightning)   : {1 / o:.3f}  (runs: {', '.join(f'{1 / r[i]:.3f}' for r in ours)})")
        print(f"  ratio mocodec / plain : {p / o:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
