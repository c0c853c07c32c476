"""``make demo``: train a small codec and compare it with JPEG and WebP, offline, on CPU.

1. trains ``configs/train/tiny_cpu.yaml`` (a small hyperprior, a few minutes on 2 cores) on
   crops of the embedded training photographs, in ``OUT/train`` (resumed if interrupted,
   skipped once finished);
2. codes the held-out embedded photographs (``OUT/images``) with the trained checkpoint
   and with JPEG and WebP at several qualities, through the real bitstream files;
3. writes each results JSON (CompressAI's schema) to ``OUT/*.json`` and the RD figure
   to ``OUT/rd.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from mocodec.commands import run_guarded
from mocodec.commands.output import print_entries
from mocodec.utils.progress import progress_bar

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny_cpu.yaml"
CLASSIC_QUALITIES = [10, 30, 50, 75, 90]


def train(config: Path, run_dir: Path) -> Path:
    """Train (or finish training) ``config`` in ``run_dir``; the last checkpoint's path."""
    from mocodec.errors import ConfigError
    from mocodec.training import checkpoint_dir, cli_main

    if not config.is_file():
        raise ConfigError(f"training config {config} does not exist; pass --config configs/train/tiny_cpu.yaml from a source checkout")
    start = time.perf_counter()
    cli_main(["fit", "--config", str(config), "--trainer.default_root_dir", str(run_dir), "--ckpt_path", "last"])
    print(f"training: {time.perf_counter() - start:.0f} s (run folder {run_dir})")
    return checkpoint_dir(run_dir) / "last.ckpt"


def run(out: Path, config: Path, checkpoints: list[str], skip_training: bool) -> None:
    from mocodec.data.embedded import write_split
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.sweep import FidelityOnly, evaluate

    learned = list(checkpoints)
    if not skip_training:
        learned.insert(0, f"{config.stem}=ckpt:{train(config, out / 'train')}")
    # A checkpoint holds one codec: one quality (recorded in the file), one RD point.
    curves = plan_curves([*learned, "jpeg", "webp"], [f"classic={','.join(map(str, CLASSIC_QUALITIES))}"])
    images = out / "images"
    write_split(images, "val")
    doc = evaluate(FidelityOnly(), curves, out / "rd.json", images, fidelity=("psnr-rgb", "ms-ssim", "bpp-estimated"),
                   progress=progress_bar).doc
    print_entries(doc)
    plot = plot_results(doc, out / "rd.png", title="held-out embedded photographs")
    print(f"RD plot: {plot}\nresults: {out / 'rd.json'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mocodec.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="outputs/demo", type=Path)
    parser.add_argument("--config", default=DEFAULT_CONFIG, type=Path, help="training config (default: configs/train/tiny_cpu.yaml)")
    parser.add_argument("--skip-training", action="store_true", help="only evaluate (JPEG/WebP and any --checkpoint)")
    parser.add_argument("--checkpoint", action="append", default=[], help="further learned codec checkpoint(s) to include")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    return run_guarded(lambda: run(args.out, args.config, args.checkpoint, args.skip_training))


if __name__ == "__main__":
    sys.exit(main())
