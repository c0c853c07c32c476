"""``make demo``: the codec mocodec ships against JPEG and WebP, for people and for a machine; offline, on CPU, in minutes.

1. **Rate-distortion**: the six held-out embedded photographs (scikit-image's, never trained on)
   coded by ``mbt2018-mean-small`` with the weights shipped in the package (4 qualities), JPEG
   and WebP (6 qualities each), through real files: ``OUT/rd.json``, ``OUT/rd.png``.
2. **Rate-task**: the same codecs on 62 tiles of those photographs, every decoded tile judged by
   EfficientNet-Lite0 (real ImageNet weights, offline) against its judgement of the original:
   top-1 agreement, KL divergence, top-5 overlap (``OUT/task.json``, ``OUT/task.png``).

Each prints its table and the BD-rate against JPEG. Both sweeps keep the decoded crops of the
images where the codecs disagree most, and ``OUT/report.html`` shows it all on one page: the
curves (interactive), the BD tables with bootstrap intervals, and the decoded images at matched
rates side by side, each with the classifier's top-1 class (``mocodec report``). Rerunning
resumes (nothing already coded is coded again); ``--force`` starts afresh.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from mocodec.commands import run_guarded
from mocodec.commands.bd import print_bd_table
from mocodec.commands.output import print_entries
from mocodec.utils.memory import keep_freed_memory
from mocodec.utils.progress import progress_bar

CODECS = ["mocodec=mbt2018-mean-small@pretrained", "jpeg", "webp"]
QUALITIES = ["mocodec=1-4", "classic=10,20,30,50,75,90"]
KEEP_CROPS = 8  # images whose decoded crops the page compares, per sweep
# The page's BD tables: one fidelity and two task metrics, 200 resamples: seconds, not a minute, of the demo's budget
PAGE_BD = {"bd_metrics": ["psnr-rgb", "agreement", "kl"], "bootstrap": 200}


def run(out: Path, force: bool) -> None:
    from mocodec.data.embedded import write_split
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.sweep import FidelityOnly, evaluate
    from mocodec.report.build import write_report
    from mocodec.tasks import create_task

    start = time.perf_counter()
    curves = plan_curves(CODECS, QUALITIES)
    images = out / "images"
    write_split(images, "val")
    print("== rate-distortion: six held-out photographs, PSNR and MS-SSIM of the decoded files", flush=True)
    rd = evaluate(
        FidelityOnly(),
        curves,
        out / "rd.json",
        images,
        fidelity=("psnr-rgb", "ms-ssim"),
        force=force,
        progress=progress_bar,
        keep_crops=KEEP_CROPS,
    ).doc
    print_entries(rd)
    print_bd_table(rd["entries"], "jpeg", "psnr-rgb", "pchip", True)
    plot_results(rd, out / "rd.png", title="held-out embedded photographs: the shipped codec vs JPEG and WebP")
    print("\n== rate-task: 62 tiles judged by EfficientNet-Lite0 (real weights) on the decoded vs the original image", flush=True)
    judge = create_task("classification", model="efficientnet_lite0")
    task = evaluate(judge, curves, out / "task.json", fidelity=("psnr-rgb",), force=force, progress=progress_bar, keep_crops=KEEP_CROPS).doc
    print_entries(task)
    print_bd_table(task["entries"], "jpeg", "kl", "pchip", False)
    plot_results(
        task,
        out / "task.png",
        metrics=["agreement", "kl", "top5-overlap"],
        title="what a classifier keeps: EfficientNet-Lite0 on decoded tiles",
    )
    page = write_report(
        [out / "rd.json", out / "task.json"],
        out / "report.html",
        title="make demo: the shipped codec against JPEG and WebP",
        anchor="jpeg",
        **PAGE_BD,
    )
    print(
        f"\nfigures: {out / 'rd.png'}, {out / 'task.png'}; results: {out / 'rd.json'}, {out / 'task.json'} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(f"page: {page} (open it in a browser: curves, BD tables, decoded images side by side)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mocodec.demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="outputs/demo", type=Path)
    parser.add_argument("--force", action="store_true", help="code everything again instead of resuming the results in --out")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    keep_freed_memory()  # as the commands do
    return run_guarded(lambda: run(args.out, args.force))


if __name__ == "__main__":
    sys.exit(main())
