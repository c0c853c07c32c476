"""The one results format of every sweep (``eval-rd`` and ``eval-task``), its one reader and its one merge.

A results file holds the curves of one sweep -- one judge (or none) on one dataset --
with every image's record, so means can be recomputed, files of disjoint images merged
exactly and an interrupted sweep resumed::

    {
      "mocodec": "results", "version": 3,
      "task": {"name": "fidelity"} | {"name": "classification", "model": "efficientnet-lite0", "weights": "pretrained"},
      "dataset": {"name": "kodak", "num_samples": 24, "digest": "16 hex digits", "options": {...}},   # mocodec.data.samples.dataset_identity
      "fidelity": ["psnr-rgb", "ms-ssim"],                      # what every record measured of the decoded image
      "metrics": {"psnr-rgb": {"label", "higher_is_better", "reference", "per_image"}, ...,   # fidelity, then the task's
                  "agreement": {...}},
      "skipped": [{"id", "reason"}],                            # unreadable images, retried on resume
      "entries": [
        {"name": "jpeg", "description": "...", "codec": "jpeg",
         "points": {"10": {"codec": "jpeg", "quality": 10, "weights": "0000000000000000"}, ...},
         "results": {"point": ["10", ...], "quality": [10, ...], "num_images": [45, ...], "bpp": [...],
                     "psnr-rgb": [...], ..., "encoding_time": [...], "decoding_time": [...], "<task metric>": [...]},
         "per_image": [{"id", "point", "quality", "bytes", "bpp", "psnr-rgb", ..., "encoding_time", "decoding_time",
                        <the task's record fields>}, ...]}
      ]
    }

Each entry is a CompressAI results dict (``name``, ``description``, ``results`` with one
value per rate point, sorted by bpp), so its curves plot beside CompressAI's published
ones, and CompressAI-schema files (published curves, a single entry without records) are
read as curves (:func:`read_curves`). Files of earlier versions are converted on reading:
``eval-task`` files of versions 1-2 and ``eval-rd`` files (CompressAI's schema with
``per_image`` records keyed by ``image`` and ``quality``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mocodec.errors import ConfigError, OutputExistsError
from mocodec.evaluation.metrics import FIDELITY, RATE, direction, mean
from mocodec.files import atomic_write_json

FORMAT, VERSION = "results", 3
SHARD_KEY = "shard"
TIMES = ("encoding_time", "decoding_time")
Summarize = Callable[[Sequence[dict[str, Any]]], Mapping[str, Any]]  # a task's metrics from its records


def new_document(
    task: Mapping[str, Any], dataset: Mapping[str, Any], fidelity: Sequence[str], metrics: Mapping[str, Any]
) -> dict[str, Any]:
    """An empty results document; ``metrics``: the task's declarations (name -> meta), stored after the fidelity metrics'."""
    table = {m: FIDELITY[m].meta() for m in fidelity}
    table.update(metrics)
    return {
        "mocodec": FORMAT,
        "version": VERSION,
        "task": dict(task),
        "dataset": dict(dataset),
        "fidelity": list(fidelity),
        "metrics": table,
        "skipped": [],
        "entries": [],
    }


def recorded_by_path(stored: Mapping[str, Any] | None, expected: Mapping[str, Any], root: str | Path | None) -> bool:
    """Whether ``stored`` is the older record of ``expected``'s dataset: by absolute folder (``root``), count and options."""
    if not stored or "root" not in stored or "digest" in stored:
        return False
    here = str(Path(root).resolve()) if root is not None else None
    return (stored["root"], stored.get("num_samples"), stored.get("options")) == (here, expected["num_samples"], expected["options"])


def task_metric_names(doc: Mapping[str, Any]) -> list[str]:
    """The task's metrics of a document (its ``metrics`` without the fidelity ones)."""
    return [m for m in doc["metrics"] if m not in FIDELITY]


class Results:
    """A results document being filled: which records exist, which points changed, the per-point means."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self._entries = {e["name"]: e for e in doc["entries"]}
        self._done: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in doc["entries"]:
            for r in e["per_image"]:
                self._done[(e["name"], r["point"])].add(r["id"])

    @classmethod
    def open(cls, path: str | Path, expected: Mapping[str, Any], force: bool = False, root: str | Path | None = None) -> Results:
        """Resume ``path`` if it holds a sweep of the same task, dataset and fidelity metrics; else a new document.

        ``expected``: the new document (:func:`new_document`). A file of anything else is
        refused unless ``force``. ``root``: the dataset's folder, which a file written before
        datasets were identified by digest recorded instead (it is resumed if that is the same
        folder with as many images and the same options, and then records the digest).
        """
        path = Path(path)
        if force or not path.exists():
            return cls(dict(expected))
        if path.is_dir():
            raise OutputExistsError(f"{path} is a directory; give a file path for --out")
        try:
            doc = upgrade(json.loads(path.read_text()), path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError):
            raise OutputExistsError(f"{path} exists and is not a results file; pass --force to overwrite it") from None
        if doc["fidelity"] != expected["fidelity"]:
            raise OutputExistsError(
                f"{path} holds records of the fidelity metrics {','.join(doc['fidelity']) or 'none'}; "
                f"pass --fidelity {','.join(doc['fidelity']) or 'none'} to resume it, --force to overwrite it, or choose another --out"
            )
        if recorded_by_path(doc.get("dataset"), expected["dataset"], root):
            doc["dataset"] = dict(expected["dataset"])
        for key in ("task", "dataset"):
            if doc.get(key) != expected[key]:
                raise OutputExistsError(
                    f"{path} holds results of another {key} ({json.dumps(doc.get(key), sort_keys=True)}); "
                    "pass --force to overwrite it, or choose another --out"
                )
        doc["metrics"] = dict(expected["metrics"])  # the declarations of this code version
        return cls(doc)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.doc["entries"]

    def entry(self, label: str, codec: str, description: str) -> dict[str, Any]:
        """The entry of curve ``label``, created if new; its points' records stay until :meth:`prepare` says otherwise."""
        if label not in self._entries:
            entry = {"name": label, "description": "", "codec": "", "points": {}, "results": {}, "per_image": []}
            self.entries.append(entry)
            self._entries[label] = entry
        entry = self._entries[label]
        entry.update(description=description, codec=codec)
        return entry

    def num_records(self) -> int:
        return sum(len(e["per_image"]) for e in self.entries)

    def prepare(self, curve: str, point: str, identity: dict[str, Any]) -> None:
        """Register a point; drop its old records if its codec, quality or weights changed."""
        entry = self._entries[curve]
        if entry["points"].get(point, identity) != identity:
            entry["per_image"] = [r for r in entry["per_image"] if r["point"] != point]
            self._done.pop((curve, point), None)
        entry["points"][point] = identity

    def done(self, curve: str, point: str) -> set[str]:
        return self._done[(curve, point)]

    def add(self, curve: str, point: str, records: Iterable[dict[str, Any]]) -> None:
        entry = self._entries[curve]
        for r in records:
            entry["per_image"].append(r)
            self._done[(curve, point)].add(r["id"])

    def summarize(self, summarize_task: Summarize) -> None:
        """Recompute every entry's ``results`` from its per-image records (points sorted by bpp)."""
        fidelity = list(self.doc["fidelity"])
        task_metrics = task_metric_names(self.doc)
        for entry in self.entries:
            order = {p: i for i, p in enumerate(entry["points"])}
            entry["per_image"].sort(key=lambda r: (order.get(r["point"], len(order)), r["id"]))
            by_point: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in entry["per_image"]:
                by_point[r["point"]].append(r)
            rows = []
            for point, records in by_point.items():
                row = {"point": point, "quality": entry["points"][point]["quality"], "num_images": len(records)}
                row.update({m: mean(r.get(m) for r in records) for m in (RATE, *fidelity, *TIMES)})
                row.update(summarize_task(records))
                rows.append(row)
            rows.sort(key=lambda row: row[RATE])
            keys = ["point", "quality", "num_images", RATE, *fidelity, *TIMES, *task_metrics]
            entry["results"] = {k: [row.get(k) for row in rows] for k in keys}

    def save(self, path: str | Path) -> None:
        write_results(path, self.doc)


# --------------------------------------------------------------------------- writing


def write_results(path: str | Path, doc: Mapping[str, Any]) -> None:
    atomic_write_json(path, json_safe(doc))


def json_safe(obj: Any) -> Any:
    """JSON has no inf/nan: write them as strings CompressAI-style readers can skip."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- reading (and converting earlier formats)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"results file {path} does not exist; pass the files that eval-task/eval-rd wrote") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path} is not a results file (not JSON); pass the files that eval-task/eval-rd wrote") from None


def upgrade(doc: Any, path: str | Path = "the file") -> dict[str, Any]:
    """A results document of this version from any version's, with per-image records; else a one-line error."""
    if isinstance(doc, dict) and doc.get("mocodec") == FORMAT and doc.get("version") == VERSION:
        return doc
    if (
        isinstance(doc, dict)
        and doc.get("mocodec") == "eval-task"
        and isinstance(doc.get("entries"), list)
        and {"task", "dataset"} <= set(doc)
    ):
        return _from_eval_task(doc)
    if isinstance(doc, dict) and isinstance(doc.get("per_image"), list) and isinstance(doc.get("results"), dict):
        return _from_eval_rd(doc)
    raise ConfigError(f"{path} is not an eval-task or eval-rd results file with per-image records; it cannot be merged or resumed")


def read_document(path: str | Path) -> dict[str, Any]:
    """A results file with per-image records (any version), as a document of this version."""
    path = Path(path)
    return upgrade(_load_json(path), path)


def _from_eval_task(doc: dict[str, Any]) -> dict[str, Any]:
    """eval-task files of versions 1 and 2: the same layout, without the fidelity list (version 2 recorded PSNR)."""
    fidelity = ["psnr-rgb"] if doc.get("version") == 2 else []
    metrics = {m: {**meta, "per_image": meta.get("per_image", True)} for m, meta in doc.get("metrics", {}).items()}
    out = {
        "mocodec": FORMAT,
        "version": VERSION,
        "task": doc["task"],
        "dataset": doc["dataset"],
        "fidelity": fidelity,
        "metrics": {**{m: FIDELITY[m].meta() for m in fidelity}, **{m: v for m, v in metrics.items() if m not in FIDELITY}},
        "skipped": doc.get("skipped", []),
        "entries": doc["entries"],
    }
    if SHARD_KEY in doc:
        out[SHARD_KEY] = doc[SHARD_KEY]
    return out


def _from_eval_rd(doc: dict[str, Any]) -> dict[str, Any]:
    """eval-rd files (CompressAI's schema + ``per_image`` keyed by image and quality): one entry, no judge."""
    fidelity = [m for m in FIDELITY if m in doc["results"]]
    records = [{"id": r["image"], "point": str(r["quality"]), **{k: v for k, v in r.items() if k != "image"}} for r in doc["per_image"]]
    name = str(doc.get("name", "?"))
    points = {str(q): {"codec": name, "quality": q, "weights": "unknown"} for q in sorted({r["quality"] for r in records})}
    skipped = [{"id": Path(p).name, "reason": why} for p, why in doc.get("skipped", [])]
    entry = {
        "name": name,
        "description": doc.get("description", ""),
        "codec": name,
        "points": points,
        "results": doc["results"],
        "per_image": records,
    }
    ids = {r["id"] for r in records}
    out = {
        "mocodec": FORMAT,
        "version": VERSION,
        "task": {"name": "fidelity"},
        "dataset": {"name": None, "num_samples": len(ids) + len(skipped), "digest": None, "options": {}},  # not recorded then
        "fidelity": fidelity,
        "metrics": {m: FIDELITY[m].meta() for m in fidelity},
        "skipped": skipped,
        "entries": [entry],
    }
    if SHARD_KEY in doc:
        out[SHARD_KEY] = doc[SHARD_KEY]
    return out


def read_curves(paths: Sequence[str | Path]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every curve of results files of any version and of CompressAI-schema files (published curves).

    Returns the entries (CompressAI results dicts) and the metric declarations the files state.
    """
    entries: list[dict[str, Any]] = []
    metrics: dict[str, dict[str, Any]] = {}
    for path in map(Path, paths):
        doc = _load_json(path)
        if isinstance(doc, dict) and isinstance(doc.get("per_image"), list) or isinstance(doc, dict) and "entries" in doc:
            doc = upgrade(doc, path)
            entries += doc["entries"]
            metrics = {**doc["metrics"], **metrics}
        elif isinstance(doc, dict) and isinstance(doc.get("results"), dict):  # one published CompressAI curve
            entries.append(doc)
        else:
            raise ConfigError(f"results file {path} is neither a mocodec results file nor in CompressAI's schema")
    return entries, metrics


def higher_is_better(metrics: Mapping[str, Mapping[str, Any]], metric: str) -> bool:
    """The direction of ``metric``: as a file declares it, or as mocodec declares it, else higher is better."""
    meta = metrics.get(metric) or (FIDELITY[metric].meta() if metric in FIDELITY else None)
    return direction(meta)


# --------------------------------------------------------------------------- merging


def _check_shards(named: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Shard files of one run: all of them, each once, of one count; or no shard files at all."""
    shards = [(name, doc.get(SHARD_KEY)) for name, doc in named]
    if all(s is None for _, s in shards):
        return
    loose = [name for name, s in shards if s is None]
    if loose:
        raise ConfigError(f"{loose[0]} is not a shard file but the others are; merge the shard files of one run")
    counts = {s["count"] for _, s in shards}
    if len(counts) > 1:
        raise ConfigError(
            f"the files are shards of runs split in {' and '.join(map(str, sorted(counts)))}; merge the shard files of one run"
        )
    (count,) = counts
    seen: dict[int, str] = {}
    for name, s in shards:
        if s["index"] in seen:
            raise ConfigError(f"{seen[s['index']]} and {name} are both shard {s['index']}/{count}; give each shard once")
        seen[s["index"]] = name
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise ConfigError(f"shard {missing[0]}/{count} is missing ({len(seen)} of {count} given); pass every shard's file")


def _same(named: Sequence[tuple[str, dict[str, Any]]], key: str, what: str) -> None:
    (first, doc0), *rest = named
    for name, doc in rest:
        if doc.get(key) != doc0.get(key):
            raise ConfigError(
                f"{first} and {name} hold results of different {what} "
                f"({json.dumps(doc0.get(key), sort_keys=True)} vs {json.dumps(doc.get(key), sort_keys=True)}); merge files of one run"
            )


def merge_documents(named: Sequence[tuple[str, dict[str, Any]]], summarize_task: Summarize) -> dict[str, Any]:
    """One document from ``(source name, document)`` pairs of disjoint images: the file one process would have written.

    The means are recomputed from the merged per-image records (never averaged from the
    parts' means); ``summarize_task`` computes the task's metrics from records.
    """
    if not named:
        raise ConfigError("no results files to merge")
    _check_shards(named)
    for key, what in (("task", "tasks"), ("dataset", "datasets"), ("fidelity", "fidelity metrics"), ("metrics", "metrics")):
        _same(named, key, what)
    (first_name, first_doc), *rest = named
    for name, doc in rest:
        mine, theirs = [e["name"] for e in first_doc["entries"]], [e["name"] for e in doc["entries"]]
        if mine != theirs:
            raise ConfigError(
                f"{first_name} and {name} hold different curves ({', '.join(mine)} vs {', '.join(theirs)}); merge files of one run"
            )
    first = named[0][1]
    merged = {k: v for k, v in first.items() if k not in (SHARD_KEY, "entries", "skipped")}
    entries: dict[str, dict[str, Any]] = {}
    owner: dict[tuple[str, str, str], str] = {}  # (curve, point, id) -> the file holding it
    point_owner: dict[tuple[str, str], str] = {}  # (curve, point) -> the first file describing it
    skipped: dict[str, dict[str, Any]] = {}
    for name, doc in named:
        for s in doc["skipped"]:
            skipped[s["id"]] = s
        for entry in doc["entries"]:
            into = entries.setdefault(entry["name"], {**entry, "points": dict(entry["points"]), "per_image": []})
            for point, identity in entry["points"].items():
                first_file = point_owner.setdefault((entry["name"], point), name)
                if into["points"].setdefault(point, identity) != identity:
                    raise ConfigError(
                        f"curve '{entry['name']}' point {point} was coded with different codecs in {first_file} "
                        f"and {name} ({identity['codec']} weights {identity['weights']}); merge files of one run"
                    )
            for r in entry["per_image"]:
                key = (entry["name"], r["point"], r["id"])
                if key in owner:
                    raise ConfigError(
                        f"{owner[key]} and {name} both hold image '{r['id']}' of curve '{entry['name']}' point {r['point']}: "
                        "the files overlap; give each shard once"
                    )
                owner[key] = name
                into["per_image"].append(r)
    merged["skipped"] = sorted(skipped.values(), key=lambda s: s["id"])
    merged["entries"] = list(entries.values())
    results = Results(merged)
    results.summarize(summarize_task)
    return {k: results.doc[k] for k in first if k != SHARD_KEY}  # the key order of a single-process file


def restrict(doc: dict[str, Any], ids: set[str]) -> dict[str, Any]:
    """A copy of a document holding only the records (and skipped images) of ``ids``."""
    out = json.loads(json.dumps(doc))
    for entry in out["entries"]:
        entry["per_image"] = [r for r in entry["per_image"] if r["id"] in ids]
    out["skipped"] = [s for s in out["skipped"] if s["id"] in ids]
    return out


__all__ = [
    "FORMAT",
    "VERSION",
    "SHARD_KEY",
    "Results",
    "new_document",
    "task_metric_names",
    "write_results",
    "read_document",
    "read_curves",
    "upgrade",
    "higher_is_better",
    "merge_documents",
    "restrict",
    "mean",
]
