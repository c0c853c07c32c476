"""How a report page of a large sweep opens: its size, and its load time in headless Chromium.

    .venv/bin/python benchmarks/bench_report.py [--images 500] [--codecs 3] [--points 6] [--keep 8] [--show 8] [--repeats 5]

A classification results file of IMAGES images x CODECS curves x POINTS rate points, with
records as a sweep writes them (rates, PSNR, the judge's predictions and confidences; drawn
at random around plausible curves), and the crops folder a sweep keeps for KEEP images, made
of real decoded crops (192 px centre crops of the embedded photographs through JPEG at each
point's quality). Then, timed:

- writing the page (``mocodec report``'s library call: curves, BD tables with 1000 bootstrap
  resamples over the images, the comparison of the SHOW best kept images; ``--keep 0``: none);
- the page's size in bytes: plotly.js, the crops, the rest;
- opening it from disk in headless Chromium, network off (medians of REPEATS loads in one
  browser): DOMContentLoaded, the load event and the curves drawn, in ms since navigation;
  every load must be free of console errors, requests and broken images.

The page's size does not grow with the number of images (only per-point means and the kept
crops are on it); that is the point of the measurement. Needs chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import datetime
import io
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def synthetic_results(out: Path, images: int, codecs: int, points: int, keep: int, seed: int = 0) -> None:
    """A results file and its crops folder (see the module docstring) at ``out``."""
    from mocodec.data.embedded import write_split
    from mocodec.data.samples import dataset_identity
    from mocodec.evaluation.crops import CropKeeper, selection_metrics
    from mocodec.evaluation.metrics import metric_table
    from mocodec.evaluation.results import Results, new_document
    from mocodec.tasks.base import Sample
    from mocodec.tasks.classification import ClassificationTask

    rng = np.random.default_rng(seed)
    photos = out.parent / "photos"
    write_split(photos, "val")
    files = sorted(photos.glob("*.png"))
    samples = [Sample(f"n{i:05d}.JPEG", files[i % len(files)], int(rng.integers(1000))) for i in range(images)]
    identity = {"name": "classification", "model": "efficientnet-lite0", "weights": "pretrained"}
    doc = new_document(identity, dataset_identity(samples, None, {}), ["psnr-rgb"], metric_table(ClassificationTask.metrics))
    results = Results(doc)
    qualities = np.linspace(10, 90, points).round().astype(int)
    names = [f"codec{c}" for c in range(codecs)]
    for c, name in enumerate(names):
        entry = results.entry(name, name, f"{name}: synthetic")
        for q in qualities:
            entry["points"][str(q)] = {"codec": name, "quality": int(q), "weights": "0000000000000000"}
        for s in samples:
            pred_original = int(rng.integers(1000))
            records = []
            for q in qualities:
                bpp = float((0.1 + 0.025 * q) * (1 - 0.15 * c) * rng.lognormal(0, 0.2))
                keeps = rng.random() < min(0.98, 0.45 + 0.5 * bpp)
                pred = pred_original if keeps else int(rng.integers(1000))
                records.append(
                    {
                        "id": s.id,
                        "point": str(q),
                        "quality": int(q),
                        "bytes": int(bpp * 288 * 288 / 8),
                        "bpp": bpp,
                        "psnr-rgb": float(25 + 6 * np.log2(1 + bpp) + rng.normal(0, 1)),
                        "encoding_time": 0.01,
                        "decoding_time": 0.01,
                        "label": s.target,
                        "pred_original": pred_original,
                        "pred": pred,
                        "agreement": keeps,
                        "top1": pred == s.target,
                        "top5": keeps and pred_original == s.target,
                        "top1_original": pred_original == s.target,
                        "kl": float(rng.exponential(0.05 / (0.1 + bpp))),
                        "top5_overlap": float(min(1.0, 0.6 + 0.3 * bpp + rng.normal(0, 0.05))),
                        "confidence": float(rng.uniform(0.3, 0.95)),
                        "pred_confidence": float(rng.uniform(0.2, 0.95)),
                    }
                )
            results.add(name, str(q), records)
    results.summarize(ClassificationTask.summarize)
    results.save(out)
    # the crops a sweep would keep: real JPEG decodes of real photographs
    class_names = {str(i): f"class {i}" for i in range(1000)}
    keeper = CropKeeper.open(
        out, keep, fresh=True, selection=selection_metrics(doc), summarize=ClassificationTask.summarize, names=lambda _: class_names
    )
    by_id = {(e["name"], r["id"], r["point"]): r for e in results.entries for r in e["per_image"]}
    for s in samples[:keep]:
        photo = Image.open(s.path).convert("RGB")
        original = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float().div(255)
        decoded = []
        for name in names:
            for q in qualities:
                buffer = io.BytesIO()
                photo.save(buffer, format="JPEG", quality=int(q))
                pixels = torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1)
                decoded.append((name, str(q), pixels, by_id[(name, s.id, str(q))], {"codec": name, "quality": int(q), "weights": "0" * 16}))
        keeper.offer(s.id, original, decoded, complete=True)
    keeper.save()


def main() -> None:
    from mocodec.report.browser import headless_chromium, open_page
    from mocodec.report.build import write_report
    from mocodec.report.figures import plotly_js

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--codecs", type=int, default=3)
    parser.add_argument("--points", type=int, default=6)
    parser.add_argument("--keep", type=int, default=8, help="images whose crops the sweep kept (0: a page without images)")
    parser.add_argument("--show", type=int, default=8, help="of those, images on the page (mocodec report --num-images)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "task.json"
        synthetic_results(results, args.images, args.codecs, args.points, args.keep)
        start = time.perf_counter()
        page = write_report([results], Path(tmp) / "page.html", anchor="codec0", num_images=args.show, with_images=args.keep > 0)
        written = time.perf_counter() - start
        size = page.stat().st_size
        plotly = len(plotly_js().encode())
        crops = sum(p.stat().st_size for p in (Path(tmp) / "task.crops").glob("*.webp"))
        shown = min(args.show, args.keep)
        loads = []
        with headless_chromium() as driver:
            for _ in range(args.repeats + 1):  # the first load warms the browser and is dropped
                driver.get("about:blank")
                check = open_page(driver, page)
                if check.problems:
                    raise SystemExit(f"the page loaded with problems: {check.problems[:3]}")
                loads.append(check.timings)
        loads = loads[1:]

    def median(key: str) -> float:
        return statistics.median(t[key] for t in loads)

    print(
        f"# report page: {args.images} images x {args.codecs} codecs x {args.points} points, crops of {args.keep} images kept, {shown} shown"
    )
    print(f"- machine: {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} threads; {datetime.date.today()}")
    print(f"- results file: {results.name}, {args.images * args.codecs * args.points} per-image records")
    print(f"- writing the page: {written:.1f} s (BD with 1000 bootstrap resamples)")
    print(
        f"- page: {size / 1e6:.2f} MB (plotly.js {plotly / 1e6:.2f} MB; {shown * (1 + args.codecs * args.points)} crops inlined, base64; "
        f"the crops folder: {args.keep * (1 + args.codecs * args.points)} files, {crops / 1e6:.2f} MB)"
    )
    print(
        f"- headless Chromium, median of {len(loads)} loads: DOMContentLoaded {median('dom_content_loaded'):.0f} ms, "
        f"load {median('load'):.0f} ms, curves drawn {median('plots_drawn'):.0f} ms"
    )


if __name__ == "__main__":
    main()
