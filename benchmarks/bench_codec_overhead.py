"""Encode+decode time of mocodec's bmshj2018-hyperprior q3 (through the file container)
against CompressAI's own ``bmshj2018_hyperprior(quality=3)``, same weights, same run.

    .venv/bin/python benchmarks/bench_codec_overhead.py [--repeats 7]

Runs are interleaved (A, B, A, B, ...) so background load hits both alike; medians reported.
Also reports the container's overhead in bytes and bpp.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore", category=FutureWarning)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import skimage.data
    from compressai.zoo import bmshj2018_hyperprior

    from mocodec import bitstream
    from mocodec.codecs import load_codec

    photo = skimage.data.retina()[:512, :768]  # a real 512 x 768 photograph crop
    x = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1).float().div(255)

    ours = load_codec("bmshj2018-hyperprior", 3)
    ref = bmshj2018_hyperprior(quality=3).eval()
    ref.load_state_dict(ours.state_dict())
    ours.update(force=True)
    ref.update(force=True)

    def run_ours() -> int:
        data = bitstream.encode(ours, x)
        bitstream.decode(ours, data)
        return len(data)

    def run_ref() -> int:
        with torch.no_grad():
            out = ref.compress(x.unsqueeze(0))
            ref.decompress(out["strings"], out["shape"])
        return sum(len(s[0]) for s in out["strings"])

    run_ours(), run_ref()  # warm-up
    t_ours, t_ref = [], []
    for _ in range(args.repeats):
        for fn, times in ((run_ours, t_ours), (run_ref, t_ref)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    file_bytes, payload = run_ours(), run_ref()
    m_ours, m_ref = statistics.median(t_ours), statistics.median(t_ref)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"mocodec encode+decode (container):  {m_ours * 1000:8.1f} ms (median of {args.repeats})")
    print(f"compressai encode+decode:           {m_ref * 1000:8.1f} ms")
    print(f"ratio mocodec / compressai:         {m_ours / m_ref:8.3f}  (target <= 1.05)")
    print(
        f"container overhead: {file_bytes - payload} bytes = {8 * (file_bytes - payload) / (512 * 768):.5f} bpp "
        f"on {file_bytes} bytes ({8 * file_bytes / (512 * 768):.4f} bpp)"
    )


if __name__ == "__main__":
    main()
