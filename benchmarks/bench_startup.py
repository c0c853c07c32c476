"""Start-up of the command line: wall time of `mocodec --help`, `list`, `compress/decompress --codec jpeg`, `report`, and the import floors.

    .venv/bin/python benchmarks/bench_startup.py [--repeats 7]

Each command runs in a fresh process (as a user types it), median of ``--repeats`` after one
untimed run (a warm file cache, as on a machine in use). The floors: `import torch` alone and
`import compressai` alone (which a learned codec needs: CompressAI imports torch_geometric).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], repeats: int) -> float:
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


REPORTED = Path(__file__).resolve().parents[1] / "docs" / "anchors" / "kodak-jpeg2000.json"  # a committed results file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    mocodec = [sys.executable, "-m", "mocodec"]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        subprocess.run(
            [sys.executable, "-c", f"import skimage.data, PIL.Image; PIL.Image.fromarray(skimage.data.astronaut()).save({str(photo)!r})"],
            check=True,
        )
        moc = Path(tmp) / "photo.moc"
        rows = [
            ("mocodec --help", mocodec + ["--help"]),
            ("mocodec list", mocodec + ["list"]),
            (
                "mocodec compress --codec jpeg (512x512)",
                mocodec + ["compress", str(photo), str(moc), "--codec", "jpeg", "--quality", "50", "--force"],
            ),
            ("mocodec decompress (jpeg)", mocodec + ["decompress", str(moc), str(Path(tmp) / "out.png"), "--force"]),
            (
                "mocodec report (one eval-rd file, --no-images)",
                mocodec + ["report", str(REPORTED), "--out", str(Path(tmp) / "page.html"), "--no-images", "--force"],
            ),
            ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
            ("python -c 'import compressai'", [sys.executable, "-W", "ignore", "-c", "import compressai"]),
            (
                "mocodec compress --codec bmshj2018-hyperprior (random init)",
                mocodec + ["compress", str(photo), str(moc), "--codec", "bmshj2018-hyperprior", "--quality", "1", "--force"],
            ),
        ]
        results = [(label, timed(cmd, args.repeats)) for label, cmd in rows]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}; "
        f"{datetime.date.today()}; median of {args.repeats} fresh processes after one untimed run"
    )
    print()
    print("| command | wall (s) |")
    print("|---|---:|")
    for label, seconds in results:
        print(f"| `{label}` | {seconds:.2f} |")


if __name__ == "__main__":
    main()
