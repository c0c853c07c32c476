"""Coding speed of mocodec's MLIC++ and mbt2018 against their reference implementations: same weights, same input.

    .venv/bin/python benchmarks/bench_coding_speed.py [--repeats 5] [--threads 1 2] [--official-mlicpp DIR]

References:

* MLIC++: the official implementation (github.com/JiangWeibeta/MLIC, the 2024-04 release), imported
  from the ``MLIC++`` folder of a checkout given by ``--official-mlicpp`` (``git clone
  https://github.com/JiangWeibeta/MLIC /tmp/MLIC`` then ``--official-mlicpp /tmp/MLIC/MLIC++``), for
  timing only. Two shims let it run on CPU with CompressAI 1.2.8, in this process only:
  ``compressai.ops.ste_round`` (renamed ``quantize_ste``) and ``torch.cuda.synchronize`` (it times
  itself with it) as a no-op without CUDA. Without the folder, the MLIC++ rows time mocodec alone.
* mbt2018: CompressAI's own ``JointAutoregressiveHierarchicalPriors.compress`` / ``decompress``
  (the installed CompressAI), its serial coder included.

Both sides get the same seeded random weights at quality 3 (CDF tables built; the official model
takes mocodec's state dict with its keys renamed to the official layout) and the same crop of
scikit-image's retina photograph, a multiple of 64 so neither side pads. Random weights code few
bits but do all the work: every latent position is coded either way. Reference and mocodec
alternate (one pair of encode + decode each, interleaved, so a change of machine load hits both),
after one warm-up pair; medians of ``--repeats``. "bytes identical": the y and z strings of both
are equal; "decoded max |diff|": between the two decoded images (0 means float for float).
Ratios are mocodec's time over the reference's (below 1: mocodec is faster).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

# (codec, image height, image width): the sizes the coding-speed goal names.
CONFIGS = [("mlicpp", 256, 256), ("mbt2018", 256, 256), ("mbt2018", 512, 768)]


@dataclass
class Coder:
    """One implementation under test: ``encode(x) -> (strings, shape)``, ``decode(strings, shape) -> x_hat``."""

    encode: Callable[[Tensor], tuple[list, tuple[int, int]]]
    decode: Callable[[list, tuple[int, int]], Tensor]


def photo(height: int, width: int) -> Tensor:
    import skimage.data

    crop = skimage.data.retina()[:height, :width]
    return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def mocodec_coder(codec: torch.nn.Module) -> Coder:
    def encode(x: Tensor) -> tuple[list, tuple[int, int]]:
        out = codec.compress(x)
        return out["strings"], out["shape"]

    return Coder(encode, lambda strings, shape: codec.decompress(strings, shape)["x_hat"])


def compressai_mbt2018(codec: torch.nn.Module) -> Coder:
    """CompressAI's own mbt2018 with ``codec``'s weights and CDF tables."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    reference = JointAutoregressiveHierarchicalPriors(codec.N, codec.M).eval()
    reference.load_state_dict(codec.state_dict())

    def encode(x: Tensor) -> tuple[list, tuple[int, int]]:
        out = reference.compress(x)
        return out["strings"], out["shape"]

    return Coder(encode, lambda strings, shape: reference.decompress(strings, shape)["x_hat"])


def official_mlicpp(codec: torch.nn.Module, folder: Path) -> Coder:
    """The official MLIC++ (imported from ``folder``) with ``codec``'s weights and CDF tables."""
    import compressai.ops

    from mocodec.codecs.mlicpp import official_state_dict

    compressai.ops.ste_round = compressai.ops.quantize_ste  # renamed in CompressAI 1.2
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None  # it times itself with it
    sys.path.insert(0, str(folder))
    from config.config import model_config
    from models.mlicpp import MLICPlusPlus

    config = model_config()
    config.N, config.M, config.slice_num = codec.N, codec.M, codec.num_slices
    reference = MLICPlusPlus(config).eval()
    weights = official_state_dict(codec.state_dict())
    # The window attention's relative position index is derived, not learned: the official model's own.
    weights.update({k: v for k, v in reference.state_dict().items() if k.endswith("relative_position_index")})
    reference.load_state_dict(weights)

    def encode(x: Tensor) -> tuple[list, tuple[int, int]]:
        out = reference.compress(x)
        return out["strings"], out["shape"]

    return Coder(encode, lambda strings, shape: reference.decompress(strings, shape)["x_hat"].clamp(0, 1))


def time_coder(coder: Coder, x: Tensor) -> tuple[float, float, list, Tensor]:
    """Encode then decode ``x`` once: (encode s, decode s, strings, decoded image)."""
    t0 = time.perf_counter()
    strings, shape = coder.encode(x)
    t1 = time.perf_counter()
    x_hat = coder.decode(strings, shape)
    return t1 - t0, time.perf_counter() - t1, strings, x_hat


def measure(name: str, height: int, width: int, threads: int, repeats: int, official: Path | None, arithmetic: str = "float") -> dict:
    """Reference and mocodec, interleaved: medians of ``repeats`` after one warm-up pair.

    ``arithmetic``: float (CompressAI's coder: the bytes of the references) or exact (mbt2018's
    portable coder; MLIC++ has float only).
    """
    from mocodec.codecs import load_codec

    torch.set_num_threads(threads)
    x = photo(height, width)
    codec = load_codec(name, 3, arithmetic=arithmetic if name == "mbt2018" else None)  # seeded random weights
    codec.update(force=True)
    if name == "mbt2018":
        reference, reference_name = compressai_mbt2018(codec), "CompressAI 1.2.8"
    elif official is not None:
        reference, reference_name = official_mlicpp(codec, official), "official (JiangWeibeta/MLIC)"
    else:
        reference, reference_name = None, "none (no --official-mlicpp)"
    ours = mocodec_coder(codec)
    times: dict[str, list[float]] = {"ref_encode": [], "ref_decode": [], "encode": [], "decode": []}
    with torch.no_grad():
        for run in range(repeats + 1):
            encode, decode, strings, x_hat = time_coder(ours, x)
            if reference is not None:
                ref_encode, ref_decode, ref_strings, ref_x_hat = time_coder(reference, x)
            if run:  # the first pair warms up
                times["encode"].append(encode)
                times["decode"].append(decode)
                if reference is not None:
                    times["ref_encode"].append(ref_encode)
                    times["ref_decode"].append(ref_decode)
    row = {"codec": name, "size": f"{height}x{width}", "threads": torch.get_num_threads(), "reference": reference_name}
    row.update({key: statistics.median(values) if values else None for key, values in times.items()})
    if reference is not None:
        row["bytes_identical"] = [list(group) for group in strings] == [list(group) for group in ref_strings]
        row["decoded_max_diff"] = (x_hat - ref_x_hat[..., :height, :width]).abs().max().item()
    return row


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def ratio(ours: float, reference: float | None) -> str:
    return "-" if reference is None else f"{ours / reference:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--official-mlicpp", type=Path, help="the MLIC++ folder of a github.com/JiangWeibeta/MLIC checkout")
    parser.add_argument("--configs", nargs="+", help="only these rows, as codec:HxW (e.g. mbt2018:256x256)")
    parser.add_argument(
        "--arithmetic", default="float", choices=("float", "exact"), help="mbt2018's coding arithmetic (float: CompressAI's bytes)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # deprecation notices of torch, timm and the official code
    configs = [c for c in CONFIGS if not args.configs or f"{c[0]}:{c[1]}x{c[2]}" in args.configs]

    started = datetime.datetime.now().astimezone()
    rows = []
    for threads in args.threads:
        for name, height, width in configs:
            rows.append(measure(name, height, width, threads, args.repeats, args.official_mlicpp, args.arithmetic))
            print(f"measured {name} {height}x{width}, {threads} threads", file=sys.stderr, flush=True)

    import compressai

    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, CompressAI {compressai.__version__}; "
        f"threads {' and '.join(map(str, args.threads))}; {started:%Y-%m-%d %H:%M %Z}"
    )
    print(
        f"seeded random weights, quality 3, CDF tables built; retina photograph crops; interleaved, median of {args.repeats} after a warm-up"
    )
    print(f"load average (1/5/15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print(
        "| codec | image | threads | reference | ref encode (s) | ref decode (s) | encode (s) | decode (s) "
        "| encode ratio | decode ratio | encode+decode ratio | bytes identical | decoded max abs diff |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        reference_total = None if r["ref_encode"] is None else r["ref_encode"] + r["ref_decode"]
        diff = f"{r['decoded_max_diff']:.1e}" if "decoded_max_diff" in r else "-"
        print(
            f"| {r['codec']} | {r['size']} | {r['threads']} | {r['reference']} | {fmt(r['ref_encode'])} | {fmt(r['ref_decode'])} "
            f"| {fmt(r['encode'])} | {fmt(r['decode'])} | {ratio(r['encode'], r['ref_encode'])} | {ratio(r['decode'], r['ref_decode'])} "
            f"| {ratio(r['encode'] + r['decode'], reference_total)} | {r.get('bytes_identical', '-')} | {diff} |"
        )


if __name__ == "__main__":
    main()
