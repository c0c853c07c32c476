"""The one sweep engine: code a dataset at many rates with many codecs, measure fidelity, judge with a task.

``eval-rd`` is this sweep without a judge (:class:`FidelityOnly`); ``eval-task`` is the
same sweep with a downstream task judging every decoded image. Both write the results
format of :mod:`mocodec.evaluation.results`; the curves come from
:mod:`mocodec.evaluation.plan`.

**Loop.** Images are read once per run, in chunks (memory flat in dataset size): for a
chunk, the task's outputs on the originals are computed once (``Task.reference``) and
reused at every rate point; each image is then coded through the real container
(:func:`~mocodec.evaluation.coding.code_image`, so bpp counts every byte of the file),
decoded, rounded to 8 bits as a PNG of it would hold, measured against the original
(the chosen fidelity metrics: PSNR, MS-SSIM, the likelihood rate) and judged
(``Task.compare``). Images of equal size go through the task as one batch.

**Resume.** Every per-image record is keyed by (curve, point, sample id). Rerunning
with the same ``--out`` skips every record already there, so a finished point is never
recomputed and an interrupted one continues where it stopped; the file is rewritten
atomically at most every ``save_interval`` seconds, at the end, and on interruption.
A point whose codec, quality or weights changed (a retrained checkpoint) is recomputed.
A file written for another task, dataset or set of fidelity metrics is refused unless
``--force``. Chunking decides which images share a batch; batched inference may change
the last float bits of a record, so a task run with batch size 1 gives bit-identical
records however the images are chunked or sharded.

**Crops.** With ``keep_crops`` (``--keep-crops``) the sweep also keeps, beside the results
file, the centre crops of the original and decoded images of the few images where the
curves disagree most (:mod:`mocodec.evaluation.crops`): what ``mocodec report`` shows.

**Shards.** ``evaluate(shard=Shard(I, N))`` judges every N-th sample only and marks the
file as shard I/N; :func:`evaluate_split` runs all shards in processes (``--devices``,
``torchrun``, :mod:`mocodec.evaluation.shards`) and merges them into the single-process
file (:func:`merge_files`).
"""

from __future__ import annotations

import functools
import json
import pickle
import platform
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mocodec.codecs.base import device_of
from mocodec.data.io import list_images, read_image
from mocodec.data.samples import DatasetSpec, read_dataset
from mocodec.errors import ConfigError, ImageReadError, MocodecError, OutputExistsError
from mocodec.evaluation.coding import code_image, levels_8bit
from mocodec.evaluation.crops import CropKeeper, clear_crops, crops_folder, merge_crops, selection_metrics
from mocodec.evaluation.metrics import FIDELITY, FidelityMeter, metric_table
from mocodec.evaluation.plan import Curve, RatePoint, load_codecs, point_identity
from mocodec.evaluation.results import SHARD_KEY, Results, Summarize, merge_documents, new_document, read_document, restrict, write_results
from mocodec.evaluation.shards import Shard, launch
from mocodec.tasks import TASKS, task_class
from mocodec.tasks.base import Sample, Task
from mocodec.utils.options import check_options
from mocodec.utils.workers import check_processes

DEFAULT_FIDELITY = ("psnr-rgb", "ms-ssim")
Progress = Callable[[Iterable, int, str], Iterable]


# --------------------------------------------------------------------------- the judge, or none


class FidelityOnly(Task):
    """The sweep without a judge (``eval-rd``): any folder of images, only fidelity and rate recorded.

    Sample ids are the images' paths relative to the folder, so shards and merges line up.
    """

    name = "fidelity"

    def dataset(self, root: str | Path | None = None, **options: Any) -> list[Sample]:
        if root is None:
            raise ConfigError("give the folder of images to code, e.g. --dataset DIR")
        root = Path(root)
        paths = list_images(root)
        if not paths:
            raise ConfigError(f"dataset folder {root} holds no images (.png/.jpg/.webp/...)")
        return [Sample(p.relative_to(root).as_posix(), p) for p in paths]

    def reference(self, original: Tensor) -> list[Any]:
        return [None] * original.shape[0]

    def compare(self, references: Sequence[Any], decoded: Tensor, targets: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        return [{} for _ in references]

    @classmethod
    def summarize(cls, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {}


def task_metrics(task: Task) -> dict[str, dict[str, Any]]:
    """The task's metric declarations as a results file stores them."""
    return metric_table(task.metrics)


def summarizer(identity: Mapping[str, Any]) -> Summarize:
    """How the task ``identity`` names summarises records, without building its model (merging needs no weights)."""
    if identity.get("name") == FidelityOnly.name:
        return FidelityOnly.summarize
    return task_class(str(identity.get("name"))).summarize


def create_task_from_options(name: str, options: dict[str, Any]) -> Task:
    """``create_task(name, **options)``, with unknown options a one-line error instead of a TypeError."""
    check_options(TASKS.get(name), options, f"task {name}")
    return TASKS.create(name, **options)


# --------------------------------------------------------------------------- loop


@dataclass
class _Coded:
    """One image after the coding stage: the original, and per pending point its decoded image and measurements."""

    sample: Sample
    x: Tensor | None  # None: the image could not be read (``skipped`` says why)
    points: list[tuple[RatePoint, Tensor, dict[str, Any]]]  # (point, decoded image as uint8, coding and fidelity record)
    skipped: dict[str, str] | None = None


class CodingStage(Dataset):
    """Reading, coding and measuring of the pending work, one item per image: what coding workers do.

    With ``workers`` > 0 a :class:`~torch.utils.data.DataLoader` runs it in that many
    processes (one thread each) while the judge works in this one; items come back in order.
    """

    def __init__(self, work: Sequence[tuple[Sample, list[RatePoint]]], codecs: dict[RatePoint, nn.Module], fidelity: Sequence[str]):
        self.work, self.codecs, self.fidelity = list(work), codecs, tuple(fidelity)

    def __len__(self) -> int:
        return len(self.work)

    def __getitem__(self, index: int) -> _Coded:
        sample, todo = self.work[index]
        try:
            x, info = read_image(sample.path)
        except ImageReadError as exc:
            # The sample's id, not its absolute path: a results file says nothing about the machine that wrote it.
            return _Coded(sample, None, [], {"id": sample.id, "reason": str(exc).replace(str(sample.path), sample.id)})
        estimate = "bpp-estimated" in self.fidelity
        meter = FidelityMeter(x, self.fidelity)
        points = []
        for point in todo:
            coded = code_image(self.codecs[point], x, info, estimate=estimate)
            levels = levels_8bit(coded.x_hat)  # rounded once: measured as levels / 255, handed on as uint8
            measured = meter.measure(levels / 255)
            record = {
                "id": sample.id,
                "point": point.point,
                "quality": int(self.codecs[point].quality),
                "bytes": coded.num_bytes,
                "bpp": coded.bpp,
                **({"bpp-estimated": coded.bpp_estimated} if estimate else {}),
                **measured,
                "encoding_time": coded.encoding_time,
                "decoding_time": coded.decoding_time,
            }
            points.append((point, levels.to(torch.uint8), record))  # exact, and a quarter of the bytes between processes
        return _Coded(sample, x, points)


def _unbatched(item: _Coded) -> _Coded:
    return item


def coded_items(stage: CodingStage, workers: int = 0) -> Iterator[_Coded]:
    """The stage's items in order: in this process (``workers`` 0), or from ``workers`` coding processes.

    A coding process that dies (killed, out of memory) ends the iteration with
    :class:`CodingWorkerStopped`, however the death surfaced here.
    """
    if workers == 0:
        yield from (stage[i] for i in range(len(stage)))
        return
    received = iter(DataLoader(stage, batch_size=None, num_workers=workers, collate_fn=_unbatched, prefetch_factor=4))
    try:
        while True:
            try:
                item = next(received)
            except StopIteration:
                return
            except Exception as exc:
                if is_worker_death(exc):
                    raise CodingWorkerStopped(exc) from None
                raise  # an error the coding code raised in a worker, re-raised here as itself
            yield item
    finally:
        _stop_workers(received)


class CodingWorkerStopped(MocodecError):
    """A coding process died without a Python exception; the records judged so far are kept."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            f"a coding worker stopped abruptly ({' '.join(str(cause).split())[:120] or type(cause).__name__}); "
            "every finished record is saved: rerun the same command to resume"
        )


def is_worker_death(exc: BaseException) -> bool:
    """Whether ``exc`` is how a DataLoader worker's death reached this process.

    Torch reports it as a RuntimeError (from its SIGCHLD handler or its liveness check),
    but a worker killed while handing over a tensor breaks the transfer first: the
    connection is reset or the pickle ends early.
    """
    if isinstance(exc, RuntimeError):
        return "DataLoader worker" in str(exc)
    return isinstance(exc, (ConnectionError, EOFError, pickle.UnpicklingError))


def _stop_workers(received: Iterator[_Coded]) -> None:
    """Shut the workers down now rather than when the last reference to the iterator goes.

    A traceback can keep the iterator alive, and until it is shut down torch's SIGCHLD
    handler keeps watching its workers: the death of one would raise a late RuntimeError
    wherever this process is then, e.g. in the middle of saving the results.
    """
    shutdown = getattr(received, "_shutdown_workers", None)  # private, but the only way to stop them now
    if shutdown is None:
        return
    try:
        shutdown()
    except RuntimeError as exc:  # the handler reporting, once more, the death being handled
        if not is_worker_death(exc):
            raise


def _chunks(items: Iterable[_Coded], size: int, skipped: list[dict[str, str]]) -> Iterator[list[_Coded]]:
    chunk: list[_Coded] = []
    for item in items:
        if item.skipped is not None:
            skipped.append(item.skipped)
            continue
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def judge_chunk(task: Task, chunk: Sequence[_Coded]) -> dict[RatePoint, list[dict[str, Any]]]:
    """Judge every coded (image, point) of ``chunk``: the task's outputs on each original once, then per point; the records per point."""
    by_size: dict[tuple[int, ...], list[_Coded]] = defaultdict(list)
    for item in chunk:
        by_size[tuple(item.x.shape)].append(item)
    out: dict[RatePoint, list[dict[str, Any]]] = defaultdict(list)
    for group in by_size.values():
        references = task.reference(torch.stack([item.x for item in group]))  # once per image, for every rate
        decoded_at: dict[RatePoint, list[tuple[int, Tensor, dict[str, Any]]]] = defaultdict(list)
        for i, item in enumerate(group):
            for point, decoded, record in item.points:
                decoded_at[point].append((i, decoded, record))
        for point, members in decoded_at.items():
            decoded = torch.stack([d for _, d, _ in members]).float().div(255)  # the decoded 8-bit images, as the files hold them
            judged = task.compare([references[i] for i, _, _ in members], decoded, [group[i].sample.target for i, _, _ in members])
            out[point] += [{**record, **judgement} for (_, _, record), judgement in zip(members, judged)]
    return out


def run_sweep(
    task: Task,
    samples: Sequence[Sample],
    curves: Sequence[Curve],
    results: Results,
    out: str | Path | None = None,
    *,
    codecs: dict[RatePoint, nn.Module] | None = None,
    chunk_size: int = 16,
    workers: int = 0,
    save_interval: float = 30.0,
    progress: Progress | None = None,
    crops: CropKeeper | None = None,
) -> Results:
    """Fill ``results`` with every (curve, point, sample) record it lacks; save to ``out`` as it goes.

    ``workers``: coding processes beside this one (0: code here, between judgements).
    ``crops``: keeps the decoded crops of the images it chooses, saved with the results.
    """
    if not samples:
        raise ConfigError("the dataset holds no samples")
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be >= 1, got {chunk_size}")
    check_processes(workers, "--workers", minimum=0)
    codecs = codecs if codecs is not None else load_codecs(curves)
    if workers and any(device_of(c).type != "cpu" for c in codecs.values()):
        raise ConfigError(
            "coding workers run on the CPU: with the codecs on a GPU keep --workers 0 "
            "(the GPU runs the transforms, this process the entropy coding)"
        )
    dataset = results.doc["dataset"]
    where = f"{dataset['name']} ({dataset['num_samples']} images, digest {dataset['digest']})"
    for curve in curves:
        results.entry(
            curve.label,
            curve.codec,
            f"{curve.label}: {task.name} {json.dumps(task.identity(), sort_keys=True)} on {where} "
            f"(mocodec, {platform.machine()}, torch {torch.__version__})",
        )
        for point in curve.points:
            results.prepare(point.curve, point.point, point_identity(codecs[point]))
    points = [p for c in curves for p in c.points]
    identities = {p: point_identity(codecs[p]) for p in points}
    every_point = sum(len(e["points"]) for e in results.entries)  # an image coded at all of them is a crop candidate
    if crops is not None:
        crops.prune(results.entries)
    work = [(s, todo) for s in samples if (todo := [p for p in points if s.id not in results.done(p.curve, p.point)])]
    skipped: list[dict[str, str]] = []
    coding = coded_items(CodingStage(work, codecs, results.doc["fidelity"]), workers)
    items: Iterable[_Coded] = coding if progress is None else progress(coding, len(work), f"{task.name}: {len(points)} rate points")
    last_save = time.monotonic()
    try:
        for chunk in _chunks(items, chunk_size, skipped):
            judged = judge_chunk(task, chunk)
            for point, records in judged.items():
                results.add(point.curve, point.point, records)
            if crops is not None:
                _offer_crops(crops, chunk, judged, identities, every_point)
            if out is not None and time.monotonic() - last_save > save_interval:
                _finish(results, task, skipped, out, crops)
                last_save = time.monotonic()
    except RuntimeError as exc:  # torch's SIGCHLD handler raises a worker's death wherever this process is then
        if not (workers and is_worker_death(exc)):
            raise
        raise CodingWorkerStopped(exc) from None
    finally:  # an interrupted run keeps every finished record
        coding.close()  # the workers stop before the save, so that no late report of a death interrupts it
        _finish(results, task, skipped, out, crops)
    return results


def _offer_crops(
    crops: CropKeeper,
    chunk: Sequence[_Coded],
    judged: Mapping[RatePoint, Sequence[dict[str, Any]]],
    identities: Mapping[RatePoint, dict[str, Any]],
    every_point: int,
) -> None:
    """Offer each image of a judged chunk to the crop keeper, with its decoded images and their records."""
    records = {(point, r["id"]): r for point, rs in judged.items() for r in rs}
    for item in chunk:
        coded = [(p.curve, p.point, decoded, records[(p, item.sample.id)], identities[p]) for p, decoded, _ in item.points]
        crops.offer(item.sample.id, item.x, coded, complete=len(coded) == every_point)


def _finish(results: Results, task: Task, skipped: list[dict[str, str]], out: str | Path | None, crops: CropKeeper | None = None) -> None:
    results.doc["skipped"] = sorted({s["id"]: s for s in skipped}.values(), key=lambda s: s["id"])
    results.summarize(task.summarize)
    if out is not None:
        results.save(out)
        if crops is not None:  # after the results: an index never names points the results file lacks
            crops.save()


def evaluate(
    task: Task,
    curves: Sequence[Curve],
    out: str | Path,
    dataset: DatasetSpec = None,
    dataset_options: dict[str, Any] | None = None,
    *,
    fidelity: Sequence[str] = DEFAULT_FIDELITY,
    codec_device: str = "cpu",
    force: bool = False,
    shard: Shard | None = None,
    resume_from: str | Path | None = None,
    keep_crops: int = 0,
    keep_images: Sequence[str] = (),
    **kwargs: Any,
) -> Results:
    """A whole sweep: samples, codecs, resume-or-new results, the loop; returns the results.

    ``dataset``: a folder, a ``{root: FOLDER, OPTION: VALUE}`` mapping, or a list of them judged as
    one dataset (:func:`~mocodec.data.samples.read_dataset`); ``dataset_options`` apply to every folder.
    ``codec_device``: where learned codecs' transforms run (``cuda``); the entropy coder runs on the CPU.
    With ``shard`` only that shard's samples are judged and the file records the shard
    (``mocodec merge`` joins the shards); a new shard file starts from the records of its
    samples in ``resume_from`` (the merged file of an earlier, interrupted split run).
    ``keep_crops``, ``keep_images``: keep the decoded crops of that many images where the
    curves disagree most, and of these sample ids, in ``out``'s crops folder (:mod:`mocodec.evaluation.crops`).
    """
    unknown = [m for m in fidelity if m not in FIDELITY]
    if unknown:
        raise ConfigError(f"unknown fidelity metric '{unknown[0]}'; choose from {', '.join(FIDELITY)}")
    samples, info = read_dataset(task.dataset, dataset, dataset_options, f"the {task.name} dataset")  # info: of the whole dataset
    codecs = load_codecs(curves, codec_device)
    root = dataset if isinstance(dataset, (str, Path)) else None  # how files written before digests named the dataset
    expected = new_document(task.identity(), info, list(fidelity), task_metrics(task))
    if shard is not None:
        samples = shard.select(samples, key=lambda s: s.id)
    if shard is not None and resume_from is not None and not force and not Path(out).exists() and Path(resume_from).is_file():
        results = Results(restrict(Results.open(resume_from, expected, root=root).doc, {s.id for s in samples}))
    else:
        results = Results.open(out, expected, force, root=root)
    wanted = shard.as_dict() if shard is not None else None
    if results.num_records() and results.doc.get(SHARD_KEY) != wanted:
        held = results.doc.get(SHARD_KEY)
        raise OutputExistsError(
            f"{out} holds the results of {'shard {index}/{count}'.format(**held) if held else 'a whole dataset'}, "
            f"not {shard or 'the whole dataset'}; pass --force to overwrite it, or choose another --out"
        )
    if wanted is not None:
        results.doc[SHARD_KEY] = wanted
    else:
        results.doc.pop(SHARD_KEY, None)
    crops = _crop_keeper(task, results, out, keep_crops, keep_images, {s.id for s in samples}, whole=shard is None)
    return run_sweep(task, samples, curves, results, out, codecs=codecs, crops=crops, **kwargs)


def _crop_keeper(
    task: Task, results: Results, out: str | Path, keep: int, pinned: Sequence[str], ids: set[str], whole: bool = True
) -> CropKeeper | None:
    """The keeper of ``out``'s crops (None when none are asked for); a new results document clears its old crops.

    ``ids``: the samples this run judges (``whole``: the whole dataset, so a pinned id must be one of them).
    """
    unknown = [i for i in pinned if i not in ids]
    if unknown and whole:
        raise ConfigError(f"--keep-images: no image '{unknown[0]}' in the dataset; name images by their ids in the results file")
    fresh = results.num_records() == 0
    if not keep and not pinned:
        if fresh:
            clear_crops(crops_folder(out))
        return None
    return CropKeeper.open(
        out,
        keep,
        fresh=fresh,
        pinned=[i for i in pinned if i in ids],
        selection=selection_metrics(results.doc),
        summarize=task.summarize,
        names=task.record_names,
    )


def evaluate_shard(
    make_task: Callable[[], Task],
    curves: Sequence[Curve],
    out: str | Path,
    dataset: DatasetSpec,
    dataset_options: dict[str, Any] | None,
    shard: Shard,
    part: Path,
    *,
    progress: Progress | None = None,
    **kwargs: Any,
) -> None:
    """One shard of a split run (a job of :func:`~mocodec.evaluation.shards.launch`): results in ``part``, progress on shard 0."""
    evaluate(
        make_task(),
        curves,
        part,
        dataset,
        dataset_options,
        shard=shard,
        resume_from=out,
        progress=progress if shard.index == 0 else None,
        **kwargs,
    )


def evaluate_split(
    make_task: Callable[[], Task],
    curves: Sequence[Curve],
    out: str | Path,
    dataset: DatasetSpec,
    dataset_options: dict[str, Any] | None,
    devices: int,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """A sweep split over ``devices`` processes (or torchrun's ranks), merged into ``out``; the merged document.

    ``make_task`` builds the judge in each process. Returns None on torchrun ranks other than 0.
    """
    job = functools.partial(evaluate_shard, make_task, curves, out, dataset, dataset_options, **kwargs)  # (shard, part) -> None
    parts = launch(job, out, devices)
    if parts is None:
        return None
    merged = merge_files(parts)
    write_results(out, merged)
    if kwargs.get("keep_crops") or kwargs.get("keep_images"):  # the crops one process would have kept; an earlier run's first
        merge_crops([*([] if kwargs.get("force") else [out]), *parts], out, kwargs.get("keep_crops"))
    elif kwargs.get("force"):
        clear_crops(crops_folder(out))
    for part in parts:
        part.unlink()
        clear_crops(crops_folder(part))
    return merged


def merge_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """One results document from the files of disjoint images (the shards of a run): ``mocodec merge``."""
    named = [(str(p), read_document(p)) for p in paths]
    if not named:
        raise ConfigError("no results files to merge")
    return merge_documents(named, summarizer(named[0][1]["task"]))


__all__ = [
    "FidelityOnly",
    "DEFAULT_FIDELITY",
    "run_sweep",
    "evaluate",
    "evaluate_shard",
    "evaluate_split",
    "merge_files",
    "judge_chunk",
    "create_task_from_options",
    "task_metrics",
    "summarizer",
]
