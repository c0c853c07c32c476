"""Encode/decode time and peak memory of MLIC++ (default size) against mbt2018 and bmshj2018-hyperprior.

    .venv/bin/python benchmarks/bench_mlicpp.py [--repeats 3] [--threads 2] [--codecs mlicpp mbt2018 ...]

Each codec runs in its own child process (so its peak memory is its own): seeded random
weights at quality 3 (weights do not change the work done, only the bits), CDF tables
built, one warm-up encode + decode of a 512 x 768 photograph, then ``--repeats`` timed
runs; medians are reported. Peak memory is the child's peak resident set size after
building the model (Python, torch and the weights) and after coding; their difference is
what coding one image adds. Against the reference implementations (the official MLIC++,
CompressAI's own mbt2018 coder), same weights and input: ``bench_coding_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

CODECS = ["bmshj2018-hyperprior", "mbt2018", "mlicpp"]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(name: str, repeats: int, threads: int) -> dict:
    """Time ``compress`` and ``decompress`` of one codec in this process."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    import numpy as np
    import skimage.data
    import torch

    from mocodec.codecs import load_codec

    torch.set_num_threads(threads)
    photo = skimage.data.retina()[:512, :768]  # a real 512 x 768 photograph crop
    x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float().div(255).unsqueeze(0)
    codec = load_codec(name, 3)
    codec.update(force=True)
    loaded = peak_rss_mib()

    def run() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        coded = codec.compress(x)
        t1 = time.perf_counter()
        codec.decompress(coded["strings"], coded["shape"])
        return t1 - t0, time.perf_counter() - t1, sum(len(s[0]) for s in coded["strings"])

    run()  # warm-up
    encode, decode = [], []
    for _ in range(repeats):
        e, d, _ = run()
        encode.append(e)
        decode.append(d)
    return {
        "codec": name,
        "parameters": sum(p.numel() for p in codec.parameters()),
        "encode_s": statistics.median(encode),
        "decode_s": statistics.median(decode),
        "rss_loaded_mib": loaded,
        "rss_peak_mib": peak_rss_mib(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--codecs", nargs="+", default=CODECS)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one codec, print JSON
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeats, args.threads)))
        return

    rows = []
    for name in args.codecs:
        cmd = [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"measured {name}", file=sys.stderr, flush=True)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {rows[0]['threads']} threads, "
        f"torch {rows[0]['torch']}; 512x768 retina crop, quality 3, random weights; median of {args.repeats}"
    )
    print(f"load average (1/5/15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("| codec | parameters | encode (s) | decode (s) | peak RSS after load (MiB) | peak RSS while coding (MiB) | coding adds (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['codec']} | {r['parameters']:,} | {r['encode_s']:.2f} | {r['decode_s']:.2f} | "
            f"{r['rss_loaded_mib']:.0f} | {r['rss_peak_mib']:.0f} | {r['rss_peak_mib'] - r['rss_loaded_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
