"""``eval-task``: code a dataset at many rates with many codecs and judge it with a task.

**Plan.** A *curve* is one codec at several rate points: a registry codec at several
qualities (``jpeg`` at 10, 30, 50; ``bmshj2018-hyperprior@pretrained`` at 1-8), or a
series of trained checkpoints, one point each (``mse=ckpt:runs/mse/*.ckpt``). Command
line syntax (:func:`plan_curves`)::

    --codecs jpeg,webp,avif,ckpt:runs/x.ckpt,mse=ckpt:runs/mse/*.ckpt
    --qualities jpeg=10,30,50 --qualities classic=5-95 --qualities 1-8

A ``LABEL=`` prefix names a curve (default: the codec name, or the checkpoint's file
stem). ``--qualities [KEY=]LIST`` is looked up by the curve's label, then its codec
name, then its family (``classic`` for JPEG/WebP/AVIF, ``learned``), then a bare LIST;
the defaults are :data:`DEFAULT_QUALITIES`. Checkpoint curves take their points from
their files (the quality recorded in each), never from ``--qualities``.

**Loop.** Images are read once per run, in chunks (memory flat in dataset size): for a
chunk, the task's outputs on the originals are computed once (``Task.reference``) and
reused at every rate point; each image is then coded through the real container
(:func:`~mocodec.evaluation.coding.code_image`, so bpp counts every byte of the file),
decoded, rounded to 8 bits as a PNG of it would hold, and judged
(``Task.compare``); the record also holds the decoded image's PSNR against the original
(``psnr-rgb``, CompressAI's name), so every rate–task curve has its rate–distortion curve
beside it. Images of equal size go through the task as one batch.

**Resume.** Every per-image record is keyed by (curve, point, sample id). Rerunning
with the same ``--out`` skips every record already there, so a finished point is never
recomputed and an interrupted one continues where it stopped; the file is rewritten
atomically at most every ``save_interval`` seconds, at the end, and on interruption.
A point whose codec, quality or weights changed (a retrained checkpoint) is recomputed.
A file written for another task, model or dataset is refused unless ``--force``.
Chunking decides which images share a batch; batched inference may change the last
float bits of a record, so a task run with batch size 1 gives bit-identical records
however the images are chunked or sharded.

**Shards.** ``evaluate_task(shard=Shard(I, N))`` judges every N-th sample only and
marks the file as shard I/N; :mod:`mocodec.evaluation.distributed` runs the shards in
processes (``--devices``, ``torchrun``) and merges them into the single-process file.

**Results file** (JSON; each entry is a CompressAI results dict, so its curves plot
beside CompressAI's published ones)::

    {
      "mocodec": "eval-task", "version": 2,
      "task": {"name": "classification", "model": "efficientnet-lite0", "weights": "pretrained"},
      "dataset": {"root": "path" | null, "options": {...}, "num_samples": 45},
      "metrics": {"agreement": {"label": "...", "higher_is_better": true, "reference": false}, ...,
                  "psnr-rgb": {"label": "PSNR (RGB) [dB]", "higher_is_better": true, "reference": false}},
      "skipped": [{"id": ..., "path": ..., "reason": ...}],   # unreadable images, retried on resume
      "entries": [
        {"name": "jpeg", "description": "...", "codec": "jpeg",
         "points": {"10": {"codec": "jpeg", "quality": 10, "weights": "0000000000000000"}, ...},
         "results": {"point": ["10", ...], "quality": [10, ...], "num_images": [45, ...],
                     "bpp": [...], "psnr-rgb": [...], "encoding_time": [...], "decoding_time": [...],
                     "<each task metric>": [...]},            # one value per point, sorted by bpp
         "per_image": [{"id", "point", "quality", "bytes", "bpp", "psnr-rgb", "encoding_time",
                        "decoding_time", <the task's record fields>}, ...]}
      ]
    }

Means in ``results`` are recomputed from ``per_image`` by ``Task.summarize``, so files
of disjoint image sets merge exactly. Entries of earlier runs that the current command
does not list are kept.
"""

from __future__ import annotations

import glob
import inspect
import json
import platform
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from mocodec.data.io import ImageInfo, read_image
from mocodec.errors import ConfigError, ImageReadError, OutputExistsError
from mocodec.evaluation.coding import CodecSpec, code_image, parse_qualities, quantize_8bit
from mocodec.evaluation.distributed import SHARD_KEY, Shard, restrict
from mocodec.evaluation.results import mean, write_results
from mocodec.losses.mse import psnr
from mocodec.tasks.base import Sample, Task

SCHEMA = "eval-task"
VERSION = 2  # 2: records hold psnr-rgb
DEFAULT_QUALITIES = {"classic": "5,10,20,30,50,75,95", "learned": "1-8"}
CODING_METRICS = ("bpp", "psnr-rgb", "encoding_time", "decoding_time")  # of every record, whatever the task
# Rate-dependent coding metrics an analysis may use beside the task's (aggregate, figures, BD tables).
CODING_METRIC_META = {"psnr-rgb": {"label": "PSNR (RGB) [dB]", "higher_is_better": True, "reference": False}}
_LABEL = re.compile(r"([\w.+-]+)=(.+)")  # "LABEL=codec"; a label has no ':' or '/', so paths never match

Progress = Callable[[Iterable, int, str], Iterable]


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class RatePoint:
    """One codec configuration of a curve; ``quality`` None: the one recorded in the checkpoint."""

    curve: str
    point: str  # the point's key within its curve: the quality, or the checkpoint's file stem
    spec: CodecSpec
    quality: int | None

    def load(self) -> nn.Module:
        return self.spec.load(self.quality if self.quality is not None else 1)


@dataclass(frozen=True)
class Curve:
    label: str
    codec: str  # as given on the command line
    points: tuple[RatePoint, ...]


def _split_label(text: str) -> tuple[str | None, str]:
    m = _LABEL.fullmatch(text.strip())
    return (m.group(1), m.group(2)) if m else (None, text.strip())


def _family(spec: CodecSpec) -> str:
    return "classic" if spec.classic else "learned"


def plan_curves(codecs: Sequence[str], qualities: Sequence[str] = ()) -> list[Curve]:
    """Curves from ``--codecs`` texts (comma-separated, repeatable) and ``--qualities`` texts."""
    texts = [t for item in codecs for t in (s.strip() for s in item.split(",")) if t]
    if not texts:
        raise ConfigError("no codecs given; pass e.g. --codecs jpeg,webp")
    by_key: dict[str | None, list[int]] = {}
    for item in qualities:
        key, values = _split_label(item)
        by_key[key.lower() if key else None] = parse_qualities(values)
    curves: list[Curve] = []
    for text in texts:
        label, body = _split_label(text)
        if body.startswith("ckpt:"):
            pattern = body[len("ckpt:"):]
            paths = sorted(glob.glob(pattern)) or [pattern]  # a missing file fails in CodecSpec.parse, clearly
            specs = [CodecSpec.parse(f"ckpt:{p}") for p in paths]
            label = label or (specs[0].label if len(specs) == 1 else Path(pattern).parent.name or specs[0].name)
            if label.lower() in by_key:
                raise ConfigError(f"checkpoint curve '{label}' takes its rate points from its files; drop --qualities {label}=...")
            points = tuple(RatePoint(label, Path(p).stem, s, None) for p, s in zip(paths, specs))
        else:
            spec = CodecSpec.parse(body)
            label = label or spec.label
            keys = (label.lower(), spec.name.lower(), _family(spec), None)
            chosen = next((by_key[k] for k in keys if k in by_key), None)
            qs = chosen or parse_qualities(DEFAULT_QUALITIES[_family(spec)])
            points = tuple(RatePoint(label, str(q), spec, q) for q in qs)
        if any(c.label == label for c in curves):
            raise ConfigError(f"two curves are labelled '{label}'; name them, e.g. --codecs a={text}")
        curves.append(Curve(label, text, points))
    known = {c.label.lower() for c in curves} | {p.spec.name.lower() for c in curves for p in c.points} | {"classic", "learned", None}
    stray = [k for k in by_key if k not in known]
    if stray:
        raise ConfigError(f"--qualities {stray[0]}=... matches no codec; use a curve label, a codec name, 'classic' or 'learned'")
    return curves


def check_options(fn: Callable[..., Any], options: dict[str, Any], what: str) -> None:
    """Refuse keyword options ``fn`` does not take, naming those it does (unless it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in ("self", "root")]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ConfigError(f"{what} takes no option '{unknown[0]}'; its options: {', '.join(accepted) or 'none'}")


def create_task_from_options(name: str, options: dict[str, Any]) -> Task:
    """``create_task(name, **options)``, with unknown options a one-line error instead of a TypeError."""
    from mocodec.tasks import TASKS

    check_options(TASKS.get(name), options, f"task {name}")
    return TASKS.create(name, **options)


def point_identity(codec: nn.Module) -> dict[str, Any]:
    """What a point's records depend on: a point whose identity changed is recomputed."""
    return {"codec": codec.codec_name, "quality": int(codec.quality), "weights": codec.weights_id.hex()}


# --------------------------------------------------------------------------- results document


class SweepResults:
    """The results document of one task on one dataset (see the module docstring)."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        self._entries = {e["name"]: e for e in doc["entries"]}
        self._done: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in doc["entries"]:
            for r in e["per_image"]:
                self._done[(e["name"], r["point"])].add(r["id"])

    @classmethod
    def new(cls, task: Task, dataset: dict[str, Any]) -> "SweepResults":
        labels = {**{m: m for m in task.metrics}, **task.metric_labels}
        metrics = {m: {"label": labels[m], "higher_is_better": task.higher_is_better.get(m, True),
                       "reference": m in task.reference_metrics} for m in task.metrics}
        metrics.update(CODING_METRIC_META)
        return cls({"mocodec": SCHEMA, "version": VERSION, "task": task.identity(), "dataset": dataset,
                    "metrics": metrics, "skipped": [], "entries": []})

    @classmethod
    def open(cls, path: str | Path, task: Task, dataset: dict[str, Any], force: bool = False) -> "SweepResults":
        """Resume ``path`` if it holds this task's results on this dataset; a new document otherwise.

        An existing file of anything else is refused unless ``force``.
        """
        path = Path(path)
        if force or not path.exists():
            return cls.new(task, dataset)
        if path.is_dir():
            raise OutputExistsError(f"{path} is a directory; give a file path for --out")
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("mocodec") != SCHEMA:
            raise OutputExistsError(f"{path} exists and is not an eval-task results file; pass --force to overwrite it")
        if doc.get("version") != VERSION:
            raise OutputExistsError(f"{path} is an eval-task results file of version {doc.get('version')}, not {VERSION}; pass --force to overwrite it")
        for key, want in (("task", task.identity()), ("dataset", dataset)):
            if doc.get(key) != want:
                raise OutputExistsError(
                    f"{path} holds results of another {key} ({json.dumps(doc.get(key), sort_keys=True)}); "
                    "pass --force to overwrite it, or choose another --out"
                )
        return cls(doc)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.doc["entries"]

    def entry(self, curve: Curve, description: str) -> dict[str, Any]:
        """The entry of ``curve``, created if new; its points' records stay until :meth:`prepare` says otherwise."""
        if curve.label not in self._entries:
            entry = {"name": curve.label, "description": "", "codec": "", "points": {}, "results": {}, "per_image": []}
            self.entries.append(entry)
            self._entries[curve.label] = entry
        entry = self._entries[curve.label]
        entry.update(description=description, codec=curve.codec)
        return entry

    def num_records(self) -> int:
        return sum(len(e["per_image"]) for e in self.entries)

    def prepare(self, point: RatePoint, identity: dict[str, Any]) -> None:
        """Register ``point``; drop its old records if its codec, quality or weights changed."""
        entry = self._entries[point.curve]
        if entry["points"].get(point.point, identity) != identity:
            entry["per_image"] = [r for r in entry["per_image"] if r["point"] != point.point]
            self._done.pop((point.curve, point.point), None)
        entry["points"][point.point] = identity

    def done(self, point: RatePoint) -> set[str]:
        return self._done[(point.curve, point.point)]

    def add(self, point: RatePoint, records: Iterable[dict[str, Any]]) -> None:
        entry = self._entries[point.curve]
        for r in records:
            entry["per_image"].append(r)
            self._done[(point.curve, point.point)].add(r["id"])

    def summarize(self, task: Task) -> None:
        """Recompute every entry's ``results`` from its per-image records (points sorted by bpp)."""
        for entry in self.entries:
            order = {p: i for i, p in enumerate(entry["points"])}
            entry["per_image"].sort(key=lambda r: (order.get(r["point"], len(order)), r["id"]))
            by_point: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in entry["per_image"]:
                by_point[r["point"]].append(r)
            rows = []
            for point, records in by_point.items():
                row = {"point": point, "quality": entry["points"][point]["quality"], "num_images": len(records)}
                row.update({m: mean(r[m] for r in records) for m in CODING_METRICS})
                row.update(task.summarize(records))
                rows.append(row)
            rows.sort(key=lambda row: row["bpp"])
            keys = ["point", "quality", "num_images", *CODING_METRICS, *task.metrics]
            entry["results"] = {k: [row.get(k) for row in rows] for k in keys}

    def save(self, path: str | Path) -> None:
        write_results(path, self.doc)


# --------------------------------------------------------------------------- loop


@dataclass
class _Loaded:
    sample: Sample
    x: Tensor
    info: ImageInfo
    todo: list[RatePoint]


def _read(samples: Iterable[tuple[Sample, list[RatePoint]]], skipped: list[dict[str, str]]) -> Iterator[_Loaded]:
    for sample, todo in samples:
        try:
            x, info = read_image(sample.path)
        except ImageReadError as exc:
            skipped.append({"id": sample.id, "path": str(sample.path), "reason": str(exc)})
            continue
        yield _Loaded(sample, x, info, todo)


def _chunks(items: Iterable[_Loaded], size: int) -> Iterator[list[_Loaded]]:
    chunk: list[_Loaded] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def judge_chunk(task: Task, chunk: Sequence[_Loaded], codecs: dict[RatePoint, nn.Module]) -> dict[RatePoint, list[dict[str, Any]]]:
    """Code, decode and judge every pending (image, point) of ``chunk``; the records per point."""
    by_size: dict[tuple[int, ...], list[_Loaded]] = defaultdict(list)
    for item in chunk:
        by_size[tuple(item.x.shape)].append(item)
    out: dict[RatePoint, list[dict[str, Any]]] = defaultdict(list)
    for group in by_size.values():
        originals = torch.stack([item.x for item in group])
        references = task.reference(originals)  # once per image, for every rate
        for point in dict.fromkeys(p for item in group for p in item.todo):
            members = [i for i, item in enumerate(group) if point in item.todo]
            coded = [code_image(codecs[point], group[i].x, group[i].info, estimate=False) for i in members]
            decoded = torch.stack([quantize_8bit(c.x_hat) for c in coded])
            records = task.compare([references[i] for i in members], decoded, [group[i].sample.target for i in members])
            psnrs = psnr(decoded, originals[members]).tolist()
            for i, c, value, record in zip(members, coded, psnrs, records):
                out[point].append({
                    "id": group[i].sample.id, "point": point.point, "quality": int(codecs[point].quality),
                    "bytes": c.num_bytes, "bpp": c.bpp, "psnr-rgb": value,
                    "encoding_time": c.encoding_time, "decoding_time": c.decoding_time, **record,
                })
    return out


def load_codecs(curves: Sequence[Curve]) -> dict[RatePoint, nn.Module]:
    """Every point's codec, loaded before any image is touched so a bad checkpoint fails first."""
    return {p: p.load() for c in curves for p in c.points}


def run_sweep(
    task: Task,
    samples: Sequence[Sample],
    curves: Sequence[Curve],
    results: SweepResults,
    out: str | Path | None = None,
    *,
    codecs: dict[RatePoint, nn.Module] | None = None,
    chunk_size: int = 16,
    save_interval: float = 30.0,
    progress: Progress | None = None,
) -> SweepResults:
    """Fill ``results`` with every (curve, point, sample) record it lacks; save to ``out`` as it goes."""
    if not samples:
        raise ConfigError("the dataset holds no samples")
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be >= 1, got {chunk_size}")
    codecs = codecs if codecs is not None else load_codecs(curves)
    where = results.doc["dataset"].get("root") or "its offline default set"
    for curve in curves:
        results.entry(curve, f"{curve.label}: {task.name} {json.dumps(task.identity(), sort_keys=True)} on {where} "
                             f"(mocodec eval-task, {platform.machine()}, torch {torch.__version__})")
        for point in curve.points:
            results.prepare(point, point_identity(codecs[point]))
    points = [p for c in curves for p in c.points]
    work = [(s, todo) for s in samples if (todo := [p for p in points if s.id not in results.done(p)])]
    skipped: list[dict[str, str]] = []
    items: Iterable[tuple[Sample, list[RatePoint]]] = work
    if progress is not None:
        items = progress(work, len(work), f"{task.name}: {len(points)} rate points")
    last_save = time.monotonic()
    try:
        for chunk in _chunks(_read(items, skipped), chunk_size):
            for point, records in judge_chunk(task, chunk, codecs).items():
                results.add(point, records)
            if out is not None and time.monotonic() - last_save > save_interval:
                _finish(results, task, skipped, out)
                last_save = time.monotonic()
    finally:  # an interrupted run keeps every finished record
        _finish(results, task, skipped, out)
    return results


def _finish(results: SweepResults, task: Task, skipped: list[dict[str, str]], out: str | Path | None) -> None:
    results.doc["skipped"] = sorted({s["id"]: s for s in skipped}.values(), key=lambda s: s["id"])
    results.summarize(task)
    if out is not None:
        results.save(out)


def evaluate_task(
    task: Task,
    curves: Sequence[Curve],
    out: str | Path,
    dataset: str | Path | None = None,
    dataset_options: dict[str, Any] | None = None,
    force: bool = False,
    shard: Shard | None = None,
    resume_from: str | Path | None = None,
    **kwargs: Any,
) -> SweepResults:
    """The whole ``eval-task`` run: samples, codecs, resume-or-new results, the loop; returns the results.

    With ``shard`` only that shard's samples are judged and the file records the shard
    (``mocodec merge`` joins the shards); a new shard file starts from the records of its
    samples in ``resume_from`` (the merged file of an earlier, interrupted split run).
    """
    options = dict(dataset_options or {})
    check_options(task.dataset, options, f"the {task.name} dataset")
    samples = task.dataset(dataset, **options)
    codecs = load_codecs(curves)
    root = str(Path(dataset).resolve()) if dataset is not None else None  # the same folder from any working directory
    info = {"root": root, "options": options, "num_samples": len(samples)}  # of the whole dataset, shard or not
    if shard is not None:
        samples = shard.select(samples, key=lambda s: s.id)
    if shard is not None and resume_from is not None and not force and not Path(out).exists() and Path(resume_from).is_file():
        results = SweepResults(restrict(SweepResults.open(resume_from, task, info).doc, {s.id for s in samples}))
    else:
        results = SweepResults.open(out, task, info, force)
    wanted = shard.as_dict() if shard is not None else None
    if results.num_records() and results.doc.get(SHARD_KEY) != wanted:
        held = results.doc.get(SHARD_KEY)
        raise OutputExistsError(
            f"{out} holds the results of {'shard {index}/{count}'.format(**held) if held else 'a whole dataset'}, "
            f"not {shard or 'the whole dataset'}; pass --force to overwrite it, or choose another --out"
        )
    if wanted is not None:
        results.doc[SHARD_KEY] = wanted
    return run_sweep(task, samples, curves, results, out, codecs=codecs, **kwargs)


def evaluate_task_shard(make_task: Callable[[], Task], curves: Sequence[Curve], out: str | Path, dataset: str | Path | None,
                        dataset_options: dict[str, Any] | None, force: bool, shard: Shard, part: Path,
                        progress: Progress | None = None, **kwargs: Any) -> None:
    """One shard of a split ``eval-task`` run (a job of ``run_sharded``): results in ``part``, progress on shard 0."""
    evaluate_task(make_task(), curves, part, dataset, dataset_options, force, shard=shard, resume_from=out,
                  progress=progress if shard.index == 0 else None, **kwargs)


__all__ = [
    "Curve", "RatePoint", "SweepResults", "DEFAULT_QUALITIES", "plan_curves", "load_codecs", "check_options",
    "create_task_from_options", "run_sweep", "evaluate_task", "evaluate_task_shard", "judge_chunk", "point_identity",
]
