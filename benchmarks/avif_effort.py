"""How much of the gap between ``avif-444`` and CompressAI's published AV1 curve is encoder effort.

The published curve is aomenc at ``--cpu-used=0``; ``avif-444`` runs libaom at speed 6 so that a Kodak
sweep takes minutes, not hours. This codes every fourth Kodak image at four qualities with the
``avif-444`` settings at speed 6 and at speed 0 and prints the BD-rate of speed 0 against speed 6
(docs/anchors.md: -10.2 %). About 15 minutes on 2 cores, most of it at speed 0.

    python benchmarks/avif_effort.py --dataset ../shared/data/kodak
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mocodec.codecs.classic import avif_444_options
from mocodec.data.io import list_images
from mocodec.evaluation.bd import bd_rate

QUALITIES = (25, 40, 55, 70)


def curve(images: list[np.ndarray], speed: int) -> tuple[list[float], list[float]]:
    """Mean bpp and PSNR-RGB of ``images`` at each of :data:`QUALITIES`, with the avif-444 settings at ``speed``."""
    rates, psnrs = [], []
    for quality in QUALITIES:
        bpp, psnr = [], []
        for rgb in images:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="AVIF", **{**avif_444_options(quality), "speed": speed})
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float64)
            bpp.append(8 * len(buf.getvalue()) / (rgb.shape[0] * rgb.shape[1]))
            psnr.append(10 * np.log10(255**2 / np.mean((decoded - rgb) ** 2)))
        rates.append(float(np.mean(bpp)))
        psnrs.append(float(np.mean(psnr)))
        print(f"speed {speed} quality {quality}: {rates[-1]:.3f} bpp, {psnrs[-1]:.2f} dB", flush=True)
    return rates, psnrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="the Kodak folder")
    args = parser.parse_args()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in list_images(args.dataset)[::4]]
    start = time.perf_counter()
    fast = curve(images, 6)
    slow = curve(images, 0)
    print(f"BD-rate of speed 0 against speed 6 ({len(images)} images): {bd_rate(*fast, *slow):.2f} % ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
