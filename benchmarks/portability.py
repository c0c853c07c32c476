"""Do files written here decode under other arithmetic? The portability matrix of RELIABILITY.md.

Files are written in this process, with the default settings (its thread count, this CPU's
kernels); then every file is decoded in fresh processes under 1 and 2 threads x
ONEDNN_MAX_CPU_ISA {native, AVX2, SSE41} x ATEN_CPU_CAPABILITY {native, avx2, default}
(a value equal to the native one is run once). Per environment, codec and arithmetic it counts
files refused (and why), files whose decoded symbols differ from the encoder's (the latent
check's CRC, recomputed from what was decoded), silent garbage (a decode that passed but
whose symbols differ: must never happen), and files whose decoded pixels differ from the
writer's decode.

    .venv/bin/python benchmarks/portability.py --tiny --out outputs/portability-tiny
    .venv/bin/python benchmarks/portability.py --dataset ../shared/data/kodak --codec mbt2018-mean-small \\
        --pretrained --qualities 1-4 --out outputs/portability-kodak

``--tiny``: every learned codec of the registry at its test size, seeded weights scaled so the
latents exercise the coder (many symbols, many CDF rows), each arithmetic it has, on crops of
scikit-image's photographs. Prints a Markdown table and writes it, with every record, to --out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Weights scaled so random-init latents exercise the coder (as tests/codecs/test_coding_exactness.py does).
LATENT_GAIN, SCALE_GAIN = 30.0, 20.0


def environments(native_capability: str) -> list[dict[str, str]]:
    """The matrix: threads x oneDNN ISA x ATen capability, a value equal to the native one run once."""
    aten = [None, "avx2", "default"]
    aten = [a for a in aten if a is None or a.upper() != native_capability.upper()]
    out = []
    for threads, onednn, capability in itertools.product(("1", "2"), (None, "AVX2", "SSE41"), aten):
        env = {"OMP_NUM_THREADS": threads}
        if onednn:
            env["ONEDNN_MAX_CPU_ISA"] = onednn
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        out.append(env)
    return out


def quick_environments(native_capability: str) -> list[dict[str, str]]:
    """Four environments that hold every value of each axis (the default test suite's share of the matrix)."""
    avx2 = "avx2" if native_capability.upper() != "AVX2" else "default"
    return [
        {"OMP_NUM_THREADS": "1"},
        {"OMP_NUM_THREADS": "2", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
        {"OMP_NUM_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": avx2},
        {"OMP_NUM_THREADS": "2", "ATEN_CPU_CAPABILITY": "default"},
    ]


def label(env: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in env.items() if k != "OMP_NUM_THREADS") or "native kernels"


def build_codec(spec: dict[str, Any]) -> torch.nn.Module:
    """The codec a file record names: registry name, quality, weights (pretrained, or seeded and scaled), arithmetic."""
    from mocodec.codecs import load_codec

    codec = load_codec(spec["name"], spec["quality"], pretrained=spec.get("pretrained", False), **spec.get("kwargs", {}))
    if spec.get("scaled"):
        with torch.no_grad():
            codec.g_a[-1].weight.mul_(LATENT_GAIN)
            for net in scale_networks(codec):
                [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1].weight.mul_(SCALE_GAIN)
    codec.set_arithmetic(spec.get("arithmetic"))
    return codec


def scale_networks(codec: torch.nn.Module) -> list[torch.nn.Module]:
    """The networks whose last layer predicts y's scales (none for the factorized prior)."""
    if hasattr(codec, "slices"):
        return [net for s in codec.slices for net in (s.anchor_parameters, s.non_anchor_parameters)]
    if hasattr(codec, "entropy_parameters"):
        return [codec.entropy_parameters]
    return [codec.h_s] if hasattr(codec, "h_s") else []


def tiny_jobs() -> list[dict[str, Any]]:
    """Every learned codec at its test size, in each arithmetic it has (seeded, scaled weights)."""
    from mocodec.codecs import CODECS, create_codec, is_classic, list_codecs

    jobs = []
    for name in list_codecs():
        if is_classic(name):
            continue
        kwargs = CODECS.meta(name).get("test_kwargs", {})
        for arithmetic in create_codec(name, quality=1, **kwargs).arithmetics:
            jobs.append({"name": name, "quality": 1, "kwargs": kwargs, "scaled": True, "arithmetic": arithmetic})
    return jobs


def tiny_images() -> dict[str, np.ndarray]:
    """Two crops of scikit-image photographs, one not a multiple of any stride."""
    import skimage.data

    return {"astronaut-37x50": skimage.data.astronaut()[40:77, 160:210], "coffee-64x96": skimage.data.coffee()[100:164, 200:296]}


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)


def write(folder: Path, jobs: list[dict[str, Any]], images: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Encode every image with every job's codec here; keep the file, the writer's decode and the encoder's check."""
    from mocodec import bitstream

    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, spec in enumerate(jobs):
        codec = build_codec(spec)
        for image_name, image in images.items():
            data = bitstream.encode(codec, as_tensor(image))
            x_hat, _ = bitstream.decode(codec, data)
            stem = f"{i:02d}-{spec['name']}-q{spec['quality']}-{spec.get('arithmetic') or 'default'}-{image_name}"
            (folder / f"{stem}.moc").write_bytes(data)
            np.save(folder / f"{stem}.npy", x_hat.mul(255).round().byte().numpy())
            records.append({"file": f"{stem}.moc", "codec": spec, "image": image_name, "check": bitstream.unpack(data).check})
    (folder / "files.json").write_text(json.dumps(records, indent=1))
    return records


def decode_here(folder: Path) -> list[dict[str, Any]]:
    """Decode every file of ``folder`` in this process: refused (why), symbols equal (the check), pixels equal."""
    from mocodec import bitstream
    from mocodec.errors import BitstreamError

    out, codecs = [], {}
    for record in json.loads((folder / "files.json").read_text()):
        key = json.dumps(record["codec"], sort_keys=True)
        codec = codecs.get(key) or codecs.setdefault(key, build_codec(record["codec"]))
        bs = bitstream.unpack((folder / record["file"]).read_bytes())
        result = {"file": record["file"], "arithmetic": bs.arithmetic}
        try:
            x_hat, _ = bitstream.decode(codec, bs)
        except BitstreamError as exc:
            result.update(refused=str(exc))
            try:  # what would the entropy decoder have recovered? (the refusal bypassed)
                with bitstream.coding_arithmetic(codec, bs):
                    decoded = codec.decompress([[s] for s in bs.strings], (bs.height, bs.width))
                result.update(symbols_equal=decoded["check"][0] == record["check"])
            except (RuntimeError, ValueError, IndexError):
                result.update(symbols_equal=False)
        else:
            reference = np.load(folder / record["file"].replace(".moc", ".npy"))
            pixels = x_hat.mul(255).round().byte().numpy()
            largest = int(np.abs(pixels.astype(np.int16) - reference).max())
            result.update(symbols_equal=True, pixels_equal=largest == 0, largest_pixel_difference=largest)
        out.append(result)
    return out


def decode_in(folder: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """:func:`decode_here` in a fresh process with ``env`` on top of this one's."""
    run = subprocess.run(
        [sys.executable, __file__, "--decode", str(folder)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if run.returncode != 0:
        raise RuntimeError(f"decoding under {env} failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_matrix(folder: Path, processes: int = 2, quick: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Every environment's records (``quick``: :func:`quick_environments`), ``processes`` fresh processes at a time."""
    envs = (quick_environments if quick else environments)(torch.backends.cpu.get_cpu_capability())
    with ThreadPoolExecutor(processes) as pool:
        results = list(pool.map(lambda env: decode_in(folder, env), envs))
    return {json.dumps(env): records for env, records in zip(envs, results)}


def summarize(matrix: dict[str, list[dict[str, Any]]], written: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per environment and (codec, arithmetic): files, refused, differing symbols, silent garbage, differing pixels."""
    codec_of = {r["file"]: f"{r['codec']['name']} ({r['codec'].get('arithmetic') or 'default'})" for r in written}
    rows = []
    for env_text, records in matrix.items():
        env = json.loads(env_text)
        for codec in sorted(set(codec_of.values())):
            mine = [r for r in records if codec_of[r["file"]] == codec]
            rows.append(
                {
                    "threads": env["OMP_NUM_THREADS"],
                    "kernels": label(env),
                    "codec": codec,
                    "files": len(mine),
                    "refused": sum("refused" in r for r in mine),
                    "symbols differ": sum(not r["symbols_equal"] for r in mine),
                    "garbage": sum("refused" not in r and not r["symbols_equal"] for r in mine),
                    "pixels differ": sum(r.get("pixels_equal") is False for r in mine),
                    "largest pixel difference": max((r.get("largest_pixel_difference", 0) for r in mine), default=0),
                    "reasons": sorted({r["refused"].split(" (")[0] for r in mine if "refused" in r}),
                }
            )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| threads | kernels | codec (arithmetic) | files | refused | symbols differ | silent garbage | pixels differ (largest, of 255) |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['kernels']} | {r['codec']} | {r['files']} | {r['refused']} | {r['symbols differ']} | "
            f"{r['garbage']} | {r['pixels differ']} ({r['largest pixel difference']}) |"
        )
    return "\n".join(lines)


def dataset_images(folder: Path, limit: int | None) -> dict[str, np.ndarray]:
    from PIL import Image

    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:limit]
    return {p.stem: np.array(Image.open(p).convert("RGB")) for p in paths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decode", type=Path, help=argparse.SUPPRESS)  # the child process: decode a folder, print JSON
    parser.add_argument("--tiny", action="store_true", help="every learned codec at test size on two photo crops")
    parser.add_argument("--dataset", type=Path, help="a folder of images (e.g. ../shared/data/kodak)")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of --dataset")
    parser.add_argument("--codec", default="mbt2018-mean-small")
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--qualities", default="1-4")
    parser.add_argument("--arithmetic", default=None, help="exact or float (default: the codec's default)")
    parser.add_argument("--processes", type=int, default=2, help="fresh decoding processes at a time")
    parser.add_argument("--out", type=Path, required=False, default=Path("outputs/portability"))
    args = parser.parse_args()
    if args.decode:
        print(json.dumps(decode_here(args.decode)))
        return
    from mocodec.evaluation.coding import parse_qualities

    if args.tiny:
        jobs, images = tiny_jobs(), tiny_images()
    else:
        spec = {"name": args.codec, "pretrained": args.pretrained, "arithmetic": args.arithmetic}
        jobs, images = [{**spec, "quality": q} for q in parse_qualities(args.qualities)], dataset_images(args.dataset, args.limit)
    start = time.perf_counter()
    written = write(args.out / "files", jobs, images)
    matrix = run_matrix(args.out / "files", args.processes)
    table = markdown(summarize(matrix, written))
    (args.out / "matrix.json").write_text(json.dumps(matrix, indent=1))
    (args.out / "matrix.md").write_text(
        f"Written with {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()} kernels "
        f"({len(written)} files, {time.perf_counter() - start:.0f} s)\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
