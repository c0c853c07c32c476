"""What a report page shows of a results document: its curves, its facts, and the decoded crops its sweep kept.

Everything here is plain data (numbers exactly as the results file holds them, so a page
can be checked against its file), turned into HTML by :mod:`mocodec.report.page` and into
figures by :mod:`mocodec.report.figures`.

The comparison (:func:`comparison`) takes the images whose crops the sweep kept
(:mod:`mocodec.evaluation.crops`), best first: the images named by the user in their order,
else those where the curves disagree most (scored again from the results file's records),
and for each the original crop and, per curve and rate point, the decoded crop with the
record fields a caption needs (rate, fidelity, the judge's prediction and confidence).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mocodec.errors import ConfigError
from mocodec.evaluation.crops import crops_folder, image_score, rank, read_index
from mocodec.evaluation.metrics import FIDELITY, RATE
from mocodec.evaluation.plots import rate_task_panels
from mocodec.evaluation.sweep import summarizer
from mocodec.report.figures import Panel, Point, Series

# matplotlib's default cycle, so a curve has the colour of the PNG figures
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# what a caption under a decoded crop may show, as a per-image record holds it
CAPTION_FIELDS = (
    "point",
    "quality",
    "bytes",
    RATE,
    *FIDELITY,
    "label",
    "pred",
    "pred_original",
    "pred_confidence",
    "confidence",
    "agreement",
    "top1",
)
DEFAULT_IMAGES = 8


def curve_colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per curve name, in order of first appearance (the same curve has it in every section)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(names))}


def metric_label(doc: Mapping[str, Any], metric: str) -> str:
    """A metric's axis label with its direction arrow, from the file's declaration."""
    meta = doc["metrics"].get(metric, {})
    return f"{meta.get('label', metric)} {'↑' if meta.get('higher_is_better', True) else '↓'}"


def point_label(quality: Any, point: Any) -> str:
    """How a rate point is named: ``quality 30``, or the checkpoint's name when that is not its quality."""
    return f"quality {quality}" if str(point) == str(quality) else f"{point} (quality {quality})"


def panels(doc: Mapping[str, Any], metrics: Sequence[str] | None = None) -> list[Panel]:
    """One panel per metric of ``doc`` that varies with the rate and has values (those of :func:`~mocodec.evaluation.plots.plot_results`)."""
    task = doc.get("task", {})
    title_of_task = " ".join(str(task[k]) for k in ("name", "model") if task.get(k))
    out = []
    for _, metric in rate_task_panels([dict(doc)], metrics):
        series = []
        for entry in doc["entries"]:
            res = entry["results"]
            rows = zip(res.get(RATE, []), res.get(metric, []), res.get("quality", []), res.get("point", []))
            series.append(Series(entry["name"], [Point(x, y, point_label(q, p)) for x, y, q, p in rows]))
        out.append(Panel(metric, metric_label(doc, metric), f"{doc['metrics'][metric].get('label', metric)} — {title_of_task}", series))
    return out


def facts(doc: Mapping[str, Any], path: str | Path) -> list[str]:
    """One line each: the file, the judge, the dataset, the curves."""
    task, dataset = doc.get("task", {}), doc.get("dataset", {})
    judge = "no judge (fidelity only)" if task.get("name") == "fidelity" else f"{task.get('name')} judged by {task.get('model', '?')}"
    judge += f" (weights: {task['weights']})" if task.get("weights") else ""
    images = {r["id"] for e in doc["entries"] for r in e["per_image"]}
    lines = [
        f"results file: {Path(path).name}",
        f"judge: {judge}",
        f"dataset: {dataset.get('name') or 'not recorded'}, {len(images)} images judged"
        + (f" of {dataset['num_samples']}" if dataset.get("num_samples") not in (None, len(images)) else "")
        + (f", digest {dataset['digest']}" if dataset.get("digest") else ""),
        "curves: " + "; ".join(f"{e['name']} ({len(e['points'])} rate points)" for e in doc["entries"]),
    ]
    if doc.get("skipped"):
        lines.append(f"skipped (unreadable): {len(doc['skipped'])} image(s)")
    return lines


def curve_numbers(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each curve's per-point results exactly as the file holds them (the page's numbers, checkable against the file)."""
    return {e["name"]: {"codec": e.get("codec", ""), "results": e["results"]} for e in doc["entries"]}


# --------------------------------------------------------------------------- the decoded images


def data_uri(path: Path) -> str:
    """A crop file inlined: the page then needs nothing beside itself."""
    try:
        payload = path.read_bytes()
    except OSError:
        raise ConfigError(
            f"{path} is missing from its crops folder; rerun the sweep into a new --out with --keep-crops N, or pass --no-images"
        ) from None
    return f"data:image/webp;base64,{base64.b64encode(payload).decode('ascii')}"


def kept_images(doc: Mapping[str, Any], results_path: str | Path) -> tuple[dict[str, Any] | None, dict[str, list[float]]]:
    """The crops index beside ``results_path`` (None without one), and the scores of its images that the results file
    has records of, best first.

    Best first: pinned images, then those where the curves disagree most on the index's
    selection metrics, scored from the file's records (the sweep scored them as it went).
    """
    index = read_index(crops_folder(results_path))
    if index is None:
        return None, {}
    by_image: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for entry in doc["entries"]:
        for record in entry["per_image"]:
            if record["id"] in index["images"]:
                by_image.setdefault(record["id"], []).append((entry["name"], record))
    summarize = summarizer(doc.get("task", {}))
    scores = {i: image_score(records, index.get("selection", []), summarize) for i, records in by_image.items()}
    return index, dict(sorted(scores.items(), key=lambda kv: rank(kv[0], kv[1], index["images"][kv[0]]["pinned"])))


def comparison(
    doc: Mapping[str, Any],
    results_path: str | Path,
    images: Sequence[str] | None = None,
    limit: int = DEFAULT_IMAGES,
    anchor: str | None = None,
) -> dict[str, Any] | None:
    """The visual comparison's data for ``doc`` (None when its sweep kept no crops): see the module docstring.

    ``images``: ids to show, in order (each must have crops; ids this file has no records of
    are left to the other files of the page); else the best ``limit``. ``anchor``: the curve
    whose rate points the matched rates follow (default: the first).
    """
    index, scores = kept_images(doc, results_path)
    if index is None:
        return None
    ranked = list(scores)
    if images is not None:
        held = {r["id"] for e in doc["entries"] for r in e["per_image"]}
        chosen = [i for i in images if i in held]
        missing = [i for i in chosen if i not in ranked]
        if missing:
            shown = ", ".join(ranked[:5]) + (", ..." if len(ranked) > 5 else "")
            raise ConfigError(
                f"image '{missing[0]}' of {Path(results_path).name} has no decoded crops (kept: {shown or 'none'}); "
                f"rerun the sweep into a new --out with --keep-images '{missing[0]}'"
            )
    else:
        chosen = ranked[: max(limit, 0)]
    folder = crops_folder(results_path)
    names = [e["name"] for e in doc["entries"]]
    wanted = set(chosen)
    records = {(e["name"], r["id"], r["point"]): r for e in doc["entries"] for r in e["per_image"] if r["id"] in wanted}
    out_images, class_names = [], {}
    for image_id in chosen:
        kept = index["images"][image_id]
        class_names.update(kept.get("names", {}))
        points: dict[str, list[dict[str, Any]]] = {}
        for curve, by_point in kept["points"].items():
            rows = []
            for point, crop in by_point.items():
                record = records.get((curve, image_id, point))
                if record is None:  # a point the results no longer hold (recomputed, or dropped by a --force run)
                    continue
                rows.append({**{k: record[k] for k in CAPTION_FIELDS if k in record}, "src": data_uri(folder / crop["file"])})
            if rows:
                points[curve] = sorted(rows, key=lambda r: r[RATE])
        if not points:  # every point it was kept at has been recomputed since: nothing to compare
            continue
        out_images.append(
            {
                "id": image_id,
                "pinned": kept["pinned"],
                "score": scores[image_id],
                "size": kept["size"],
                "box": kept["box"],
                "original": data_uri(folder / kept["original"]),
                "points": points,
            }
        )
    return {
        "anchor": anchor if anchor in names else names[0],
        "curves": names,
        "crop_size": index["crop_size"],
        "selection": index.get("selection", []),
        "fidelity": [m for m in doc.get("fidelity", []) if m in ("psnr-rgb", "ms-ssim")],
        "names": class_names,
        "images": out_images,
    }


__all__ = [
    "PALETTE",
    "CAPTION_FIELDS",
    "DEFAULT_IMAGES",
    "curve_colours",
    "metric_label",
    "point_label",
    "panels",
    "facts",
    "curve_numbers",
    "data_uri",
    "kept_images",
    "comparison",
]
