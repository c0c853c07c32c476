"""What the exact (integer) entropy parameters cost: the choice of the fixed-point widths, rate, and time.

    .venv/bin/python benchmarks/bench_exact_arithmetic.py --photos ../shared/data/photos --kodak ../shared/data/kodak

Three parts, with the shipped mbt2018-mean-small weights at qualities 1-4:

* ``format``: on training photographs (``--photos``; never Kodak), the largest activation of every
  layer of ``h_s`` in float (what the activation range must hold), and for each candidate format
  (weight bits / fraction bits) the bits of the coded strings and the PSNR of the decoded images
  against the float arithmetic's (the same images, the same weights).
* ``kodak``: the 24 Kodak images coded through the real container in each arithmetic: BD-rate of
  the exact files against the float files (whole-file bpp, PSNR-RGB of the 8-bit decodes), and
  the bytes the version 2 container adds to a file.
* ``time``: decode and encode time of one Kodak image per quality: CompressAI's own
  ``decompress`` / ``compress`` on the same strings (what mocodec ran before the exact arithmetic),
  the float arithmetic and the exact arithmetic, interleaved (one round of each, ``--repeats``
  rounds, medians), after a warm-up; and, for exact decoded pixels (not done: measured), the
  synthesis transform ``g_s`` in float32 against float64 -- the floor of an exact ``g_s`` computed
  like the entropy-parameter networks (integers in float64), before any rescaling or exact GDN.

Prints Markdown; BENCHMARKS.md and RELIABILITY.md record it. Run it alone (speed figures).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

from compressai.models import MeanScaleHyperprior  # noqa: E402

from mocodec import bitstream  # noqa: E402
from mocodec.codecs import load_codec  # noqa: E402
from mocodec.codecs.base import pad_to_multiple  # noqa: E402
from mocodec.codecs.entropy_parameters import ExactArithmetic, FloatArithmetic  # noqa: E402
from mocodec.codecs.exact import FixedPoint  # noqa: E402
from mocodec.data.io import read_image  # noqa: E402
from mocodec.evaluation.bd import RateCurve, compare  # noqa: E402

CANDIDATES = [FixedPoint(8, 8, 24), FixedPoint(10, 10, 26), FixedPoint(12, 12, 28), FixedPoint(14, 14, 30), FixedPoint(16, 16, 32)]
QUALITIES = (1, 2, 3, 4)


def images(folder: Path, limit: int | None = None) -> list[torch.Tensor]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:limit]
    return [read_image(p)[0] for p in paths]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.mul(255).round() - b.mul(255).round()).pow(2).mean().item()
    return 10 * np.log10(255**2 / mse)


def code(codec, x: torch.Tensor, arithmetic) -> tuple[int, torch.Tensor]:
    """Bits of the strings, and the decoded image, of one image in ``arithmetic`` (any fixed-point format)."""
    with torch.no_grad():
        padded = pad_to_multiple(x.unsqueeze(0), codec.stride)
        strings, _ = codec.encode_image(padded, arithmetic)
        y_hat, _ = codec.decode_image([s + bytes(1 << 16) for s in strings], tuple(padded.shape[-2:]), arithmetic)
        x_hat = codec.g_s(y_hat).clamp(0, 1)[0, :, : x.shape[1], : x.shape[2]]
    return 8 * sum(map(len, strings)), x_hat


def activation_ranges(codec, photos: list[torch.Tensor]) -> list[float]:
    """The largest |activation| of ẑ and of every layer of ``h_s`` (float), over the photographs."""
    peaks = None
    with torch.no_grad():
        for x in photos:
            y = codec.g_a(pad_to_multiple(x.unsqueeze(0), 64))
            medians = codec.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
            a = torch.round(codec.h_a(y) - medians) + medians
            values = [a.abs().max().item()]
            for layer in codec.h_s:
                a = layer(a)
                values.append(a.abs().max().item())
            peaks = values if peaks is None else [max(p, v) for p, v in zip(peaks, values)]
    return peaks


def part_format(photos: list[torch.Tensor]) -> str:
    lines = ["### Fixed-point widths on training photographs", ""]
    lines.append("| quality | largest |activation| (ẑ, then each layer of h_s) |")
    lines.append("|---|---|")
    codecs = {q: load_codec("mbt2018-mean-small", q, pretrained=True) for q in QUALITIES}
    for q, codec in codecs.items():
        lines.append(f"| {q} | {', '.join(f'{v:.1f}' for v in activation_ranges(codec, photos))} |")
    lines += ["", "| format (weight / fraction / activation bits) | bits vs float | PSNR vs float (dB) |", "|---|---|---|"]
    reference = {}
    for q, codec in codecs.items():
        reference[q] = [code(codec, x, FloatArithmetic(codec)) for x in photos]
    for fmt in CANDIDATES:
        bits, delta = 0, []
        for q, codec in codecs.items():
            for x, (ref_bits, ref_hat) in zip(photos, reference[q]):
                b, x_hat = code(codec, x, ExactArithmetic(codec, fmt))
                bits += b - ref_bits
                delta.append(psnr(x, x_hat) - psnr(x, ref_hat))
        total = sum(b for q in QUALITIES for b, _ in reference[q])
        lines.append(
            f"| {fmt.weight_bits} / {fmt.fraction_bits} / {fmt.activation_bits} | {100 * bits / total:+.3f} % | {statistics.mean(delta):+.4f} |"
        )
    return "\n".join(lines)


def part_kodak(kodak: list[torch.Tensor]) -> str:
    curves: dict[str, RateCurve] = {}
    extra = {}
    version_1 = []  # the float strings in a version 1 container: what mocodec wrote before (10 bytes less)
    for arithmetic in ("float", "exact"):
        rates, psnrs = [], []
        for q in QUALITIES:
            codec = load_codec("mbt2018-mean-small", q, pretrained=True, arithmetic=arithmetic)
            bpp, quality = [], []
            for x in kodak:
                data = bitstream.encode(codec, x)
                x_hat, _ = bitstream.decode(codec, data)
                bpp.append(8 * len(data) / (x.shape[1] * x.shape[2]))
                quality.append(psnr(x, x_hat))
                extra[arithmetic] = len(data) - sum(map(len, bitstream.unpack(data).strings))
            rates.append(statistics.mean(bpp))
            psnrs.append(statistics.mean(quality))
            if arithmetic == "float":
                version_1.append(statistics.mean(b - 80 / (x.shape[1] * x.shape[2]) for b, x in zip(bpp, kodak)))
        curves[arithmetic] = RateCurve(arithmetic, rates, psnrs)
    result = compare(curves["float"], curves["exact"], min_points=4)
    against_v1 = compare(RateCurve("version 1", version_1, curves["float"].metric), curves["exact"], min_points=4)
    lines = ["### Kodak: the exact arithmetic against the float arithmetic (whole files)", ""]
    lines += ["| quality | float bpp | float PSNR | exact bpp | exact PSNR |", "|---|---|---|---|---|"]
    for i, q in enumerate(QUALITIES):
        f, e = curves["float"], curves["exact"]
        lines.append(f"| {q} | {f.rate[i]:.4f} | {f.metric[i]:.3f} | {e.rate[i]:.4f} | {e.metric[i]:.3f} |")
    lines += [
        "",
        f"BD-rate (exact vs float, PSNR-RGB, pchip): **{result.bd_rate:+.3f} %**, BD-PSNR {result.bd_metric:+.4f} dB {result.note}",
        f"BD-rate (exact version 2 files vs the float strings in version 1 files, as before): **{against_v1.bd_rate:+.3f} %**",
        f"Container bytes besides the strings: exact {extra['exact']}, float {extra['float']} (version 1 files: "
        f"{extra['exact'] - 5}; the latent check is 4 bytes and the arithmetic 1, float files add the writer's fingerprint and threads).",
    ]
    return "\n".join(lines)


def coding_times(q: int, x: torch.Tensor, repeats: int) -> dict[tuple[str, str], float]:
    """Median ms of encode and decode at quality ``q``: CompressAI's coder ("before"), float and exact, interleaved."""
    exact = load_codec("mbt2018-mean-small", q, pretrained=True)
    floating = load_codec("mbt2018-mean-small", q, pretrained=True, arithmetic="float")
    padded = pad_to_multiple(x.unsqueeze(0), 64)
    shape = (padded.shape[-2] // 64, padded.shape[-1] // 64)
    with torch.no_grad():
        theirs = MeanScaleHyperprior.compress(floating, padded)
    files = {"float": bitstream.encode(floating, x), "exact": bitstream.encode(exact, x)}
    jobs = {
        "before": (
            lambda: MeanScaleHyperprior.compress(floating, padded),
            lambda: MeanScaleHyperprior.decompress(floating, theirs["strings"], shape),
        ),
        "float": (lambda: bitstream.encode(floating, x), lambda: bitstream.decode(floating, files["float"])),
        "exact": (lambda: bitstream.encode(exact, x), lambda: bitstream.decode(exact, files["exact"])),
    }
    times: dict[tuple[str, str], list[float]] = {(name, step): [] for name in jobs for step in ("encode", "decode")}
    with torch.no_grad():
        for round_ in range(repeats + 1):  # round 0 warms up
            for name, (encode, decode) in jobs.items():
                for step, fn in (("encode", encode), ("decode", decode)):
                    start = time.perf_counter()
                    fn()
                    if round_:
                        times[(name, step)].append(1000 * (time.perf_counter() - start))
    return {key: statistics.median(values) for key, values in times.items()}


def part_time(kodak: list[torch.Tensor], repeats: int) -> str:
    x = kodak[0]
    lines = ["### Coding time of one Kodak image (768x512), medians", ""]
    lines += [
        "| quality | | CompressAI's coder (before) | float arithmetic | exact arithmetic | exact / before |",
        "|---|---|---|---|---|---|",
    ]
    synthesis = []
    for q in QUALITIES:
        ms = coding_times(q, x, repeats)
        for step in ("decode", "encode"):
            before, floating, exact = (ms[(name, step)] for name in ("before", "float", "exact"))
            lines.append(f"| {q} | {step} | {before:.0f} ms | {floating:.0f} ms | {exact:.0f} ms | {exact / before:.2f} |")
        synthesis.append(
            (q, synthesis_times(load_codec("mbt2018-mean-small", q, pretrained=True), pad_to_multiple(x.unsqueeze(0), 64), repeats))
        )
    lines += ["", "| quality | g_s float32 | g_s float64 | float64 / float32 |", "|---|---|---|---|"]
    for q, (single, double) in synthesis:
        lines.append(f"| {q} | {single:.0f} ms | {double:.0f} ms | {double / single:.2f} |")
    return "\n".join(lines)


def synthesis_times(codec, padded: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median ms of ``g_s`` on one image's ŷ in float32 and in float64 (a float64 copy), interleaved."""
    import copy

    with torch.no_grad():
        y_hat = codec.g_a(padded).round()
        single, double = codec.g_s, copy.deepcopy(codec.g_s).double()
        times = {"single": [], "double": []}
        for round_ in range(repeats + 1):
            for name, net, x in (("single", single, y_hat), ("double", double, y_hat.double())):
                start = time.perf_counter()
                net(x)
                if round_:
                    times[name].append(1000 * (time.perf_counter() - start))
    return statistics.median(times["single"]), statistics.median(times["double"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    parser.add_argument("--photo-limit", type=int, default=None)
    parser.add_argument("--parts", nargs="+", default=["format", "kodak", "time"], choices=["format", "kodak", "time"])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    kodak = images(args.kodak) if {"kodak", "time"} & set(args.parts) else []
    if "format" in args.parts:
        print(part_format(images(args.photos, args.photo_limit)), "\n", flush=True)
    if "kodak" in args.parts:
        print(part_kodak(kodak), "\n", flush=True)
    if "time" in args.parts:
        print(part_time(kodak, args.repeats), flush=True)


if __name__ == "__main__":
    main()
