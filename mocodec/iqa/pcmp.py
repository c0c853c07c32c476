"""PCMP: PSNR-matched distortion pairs labelled by the prediction-consistency votes of frozen models.

``build_pcmp`` turns a folder of reference images into a dataset directory::

    OUT/
      config.json               what is being built (families, levels, voters, seed, ...): written first
      references/ID.png         each reference as the voters saw it (8-bit, optionally downscaled)
      distorted/ID/TYPE_LEVEL.png
      records/ID.json           per reference: every distorted image's PSNR and per-voter consistency,
                                its matched pairs and their votes (written when the reference is done)
      pairs.csv                 the manifest, one row per pair (see MANIFEST_COLUMNS + one vote:VOTER column per voter)
      pcmp.json                 statistics and ``"complete": true``: written last

Every file is written atomically, and ``pcmp.json`` only after ``pairs.csv``, so an
interrupted build never looks complete; running the same build again resumes it
(references with a record are skipped) and gives the same files as an uninterrupted run:
every random draw (noise, pair order, pair sampling) is seeded by ``(seed, reference, ...)``,
not by the order of work. :func:`mocodec.iqa.pcmp_files.read_pcmp` (2AFC pairs) and
:class:`PCMPDataset` (a torch dataset) read a complete build back.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from mocodec.data.io import list_images, read_image, write_image
from mocodec.errors import ConfigError, ImageReadError, OutputExistsError
from mocodec.evaluation.coding import quantize_8bit
from mocodec.evaluation.shards import Shard
from mocodec.files import atomic_write_json, atomic_write_text
from mocodec.iqa.distortions import DistortionFamily
from mocodec.iqa.pairs import REPORT_TOLERANCES, matched_pairs, orient_and_sample
from mocodec.iqa.pcmp_files import VOTE_PREFIX, read_pcmp_manifest, resolve_voters
from mocodec.iqa.voting import Voter, VoteRule, consistency, soft_label
from mocodec.utils.workers import check_processes, run_in_workers

FORMAT, VERSION = "mocodec-pcmp", 1
MANIFEST_COLUMNS = ("pair_id", "reference", "image_a", "image_b", "type_a", "level_a", "type_b", "level_b", "psnr_a", "psnr_b")
VOTER_BATCH = 8  # distorted images held in memory and judged together
WORKER_CHUNK = 4  # references per call to a worker process (see _build_in_workers)
Progress = Callable[[Iterable, int, str], Iterable]


@dataclass(frozen=True)
class BuildSettings:
    tolerance: float = 0.5  # dB between the PSNRs of a pair
    seed: int = 0
    max_pairs_per_reference: int | None = None  # None: every matched pair
    max_size: int | None = None  # downscale references whose longer side exceeds this
    rule: VoteRule = field(default_factory=VoteRule)

    def __post_init__(self) -> None:
        if not self.tolerance >= 0:
            raise ConfigError(f"the PSNR tolerance must be a non-negative number of dB, got {self.tolerance}")
        if self.max_pairs_per_reference is not None and self.max_pairs_per_reference < 1:
            raise ConfigError(f"--max-pairs must be at least 1, got {self.max_pairs_per_reference}")
        if self.max_size is not None and self.max_size < 16:
            raise ConfigError(f"--max-size must be at least 16 pixels, got {self.max_size}")


def derived_seed(seed: int, *parts: str) -> int:
    """A 63-bit seed from the build seed and names: the same draws whatever order the work is done in."""
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def reference_ids(paths: Sequence[Path], root: Path) -> list[str]:
    """File-system-safe, unique ids: the path under ``root`` without its extension."""
    ids = [_file_name(p.relative_to(root).with_suffix("").as_posix().replace("/", "__")) for p in paths]
    seen: dict[str, Path] = {}
    for rid, path in zip(ids, paths):
        if rid in seen:
            raise ConfigError(f"reference images {seen[rid]} and {path} map to the same id '{rid}'; rename one")
        seen[rid] = path
    return ids


def find_references(folder: str | Path) -> list[Path]:
    """The reference images under ``folder`` (recursively, sorted); an empty folder is an error."""
    paths = list_images(folder)
    if not paths:
        raise ConfigError(f"reference folder {folder} holds no images (.png/.jpg/.webp/...)")
    return paths


def fit_size(x: Tensor, max_size: int | None) -> Tensor:
    """Downscale (antialiased) so that the longer side is at most ``max_size``."""
    h, w = x.shape[-2:]
    if max_size is None or max(h, w) <= max_size:
        return x
    scale = max_size / max(h, w)
    return TF.resize(x, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True).clamp(0, 1)


def build_config(
    families: Sequence[DistortionFamily], voters: Sequence[Voter], settings: BuildSettings, ids: Sequence[str]
) -> dict[str, Any]:
    """Everything that determines the build's content; a resumed build must match it exactly."""
    names = [f.name for f in families]
    if len(set(names)) != len(names):
        raise ConfigError(f"distortion families are given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    voter_names = [v.name for v in voters]
    if len(voters) < 1 or len(set(voter_names)) != len(voter_names):
        raise ConfigError("give at least one voter, each once")
    return {
        "format": FORMAT,
        "version": VERSION,
        "families": {f.name: [f.level_text(level) for level in f.levels] for f in families},
        "voters": voter_names,
        "settings": json.loads(json.dumps(asdict(settings))),
        "references": list(ids),
    }


def _prepare_output(out: Path, config: dict[str, Any], force: bool) -> None:
    config_file = out / "config.json"
    if config_file.is_file():
        if force:
            shutil.rmtree(out)
        else:
            try:
                existing = json.loads(config_file.read_text())
            except json.JSONDecodeError:
                raise OutputExistsError(f"{config_file} is damaged; pass --force to rebuild {out}") from None
            differ = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
            if differ:
                raise OutputExistsError(
                    f"{out} holds a PCMP build with other settings ({', '.join(differ)} differ); "
                    "use another folder, or --force to rebuild it"
                )
            return  # same build: resume
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists and is not a PCMP build folder; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(config_file, config)


def build_pcmp(
    references: str | Path,
    out: str | Path,
    families: Sequence[DistortionFamily],
    voters: Sequence[Voter],
    settings: BuildSettings = BuildSettings(),
    *,
    subset: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Build (or resume) a PCMP dataset in ``out`` from the images under ``references``; returns pcmp.json's content.

    ``subset``: ``"I/N"`` keeps every N-th reference, starting at the I-th, of the references
    sorted by id (the build's config lists the ones kept), e.g. a quarter of a large folder.
    ``workers``: references built in that many spawned processes, each with its share of the
    CPU threads (:func:`mocodec.utils.workers.run_in_workers`). Each process pays its own
    start-up (imports, voters), so it pays off with more cores than one process's threads
    keep busy; on 2 cores one process was as fast (BENCHMARKS.md). Every random draw is
    seeded per reference and PSNRs are exact (:func:`exact_psnr`), so the images, PSNRs and
    pairs are those of a one-process build; only the voters' floating-point sums may round
    differently with other thread counts (votes differ only where soft values tie within
    rounding, i.e. never in practice; the test compares the two builds).
    """
    check_processes(workers, "--workers")
    references, out = Path(references), Path(out)
    paths = find_references(references)
    if not families:
        raise ConfigError("give at least one distortion family")
    ids = reference_ids(paths, references)
    if subset is not None:
        ids, paths = (list(v) for v in zip(*Shard.parse(subset).select(list(zip(ids, paths)), key=lambda item: item[0])))
    config = build_config(families, voters, settings, ids)
    _prepare_output(out, config, force)
    if (out / "pcmp.json").is_file():
        return json.loads((out / "pcmp.json").read_text())
    pending = [(rid, path) for rid, path in zip(ids, paths) if not (out / "records" / f"{rid}.json").is_file()]
    if workers <= 1 or len(pending) <= 1:
        items: Iterable = pending if progress is None else progress(pending, len(pending), "pcmp references")
        skipped = _build_references(items, out, families, voters, settings)
    else:
        skipped = _build_in_workers(pending, out, families, voters, settings, workers, progress)
    records = [json.loads(p.read_text()) for rid in ids if (p := out / "records" / f"{rid}.json").is_file()]
    if not records:
        raise ConfigError(f"none of the {len(ids)} reference images under {references} could be read")
    atomic_write_text(out / "pairs.csv", _manifest(records, config["voters"]))
    summary = _summary(records, config, settings, skipped)
    atomic_write_json(out / "pcmp.json", summary)
    return summary


def _build_references(
    items: Iterable[tuple[str, Path]], out: Path, families: Sequence[DistortionFamily], voters: Sequence[Voter], settings: BuildSettings
) -> list[dict[str, str]]:
    """Build and record each reference of ``items``; the unreadable ones, with why, are returned (and skipped)."""
    skipped = []
    for rid, path in items:
        try:
            x, _ = read_image(path)
        except ImageReadError as exc:
            skipped.append({"reference": str(path), "why": str(exc)})
            continue
        record = _build_reference(rid, x, out, families, voters, settings)
        atomic_write_json(out / "records" / f"{rid}.json", record)
    return skipped


def _build_in_workers(
    pending: Sequence[tuple[str, Path]],
    out: Path,
    families: Sequence[DistortionFamily],
    voters: Sequence[Voter],
    settings: BuildSettings,
    workers: int,
    progress: Progress | None,
) -> list[dict[str, str]]:
    # A call builds a few references, so the voters' and codecs' weights are sent to a worker
    # once per chunk (well under 1 % of its time) and the progress bar still moves often.
    chunks = [list(pending[i : i + WORKER_CHUNK]) for i in range(0, len(pending), WORKER_CHUNK)]
    bar = iter(range(len(pending)) if progress is None else progress(range(len(pending)), len(pending), "pcmp references"))

    def advance(index: int, _skipped: list) -> None:
        for _ in chunks[index]:
            next(bar, None)

    results = run_in_workers(
        _build_references,
        [(chunk, out, families, voters, settings) for chunk in chunks],
        workers,
        on_done=advance,
        crashed="a PCMP worker process stopped abruptly (killed, or out of memory?); run the same command again to resume",
    )
    for _ in bar:  # close the bar
        pass
    order = {str(path): k for k, (_, path) in enumerate(pending)}
    return sorted((item for chunk in results for item in chunk), key=lambda item: order[item["reference"]])


def exact_psnr(y: Tensor, x: Tensor) -> float:
    """PSNR in dB of two 8-bit images (values k/255), from their exact integer squared error.

    A float32 mean rounds differently with other thread counts (in the 4th decimal of the dB
    value), which could move a pair across the matching tolerance: the pairs would depend on
    how the build was split over processes. Identical images: +inf.
    """
    error = y.mul(255).round().to(torch.int64) - x.mul(255).round().to(torch.int64)
    squared = int(error.square().sum())
    return math.inf if squared == 0 else 10 * math.log10(255**2 * error.numel() / squared)


def _build_reference(
    rid: str, x: Tensor, out: Path, families: Sequence[DistortionFamily], voters: Sequence[Voter], settings: BuildSettings
) -> dict[str, Any]:
    """Distort one reference, vote, match pairs: the content of ``records/ID.json``."""
    x = quantize_8bit(fit_size(x, settings.max_size))
    reference_path = f"references/{rid}.png"
    write_image(out / reference_path, x)
    # Distorted images go to the voters VOTER_BATCH at a time and are then dropped, so memory
    # stays flat however many families and levels (and however large the reference) there are.
    outputs: dict[str, list[Tensor]] = {v.name: [v.probabilities(x[None])] for v in voters}
    images, pending = [], []

    def vote_pending() -> None:
        batch = torch.stack(pending)
        for voter in voters:
            outputs[voter.name].append(voter.probabilities(batch))
        pending.clear()

    for family in families:
        for level in family.levels:
            level_text = family.level_text(level)
            generator = torch.Generator().manual_seed(derived_seed(settings.seed, rid, family.name, level_text))
            y = quantize_8bit(family.distort(x, level, generator))
            rel = f"distorted/{rid}/{_file_name(family.name)}_{level_text}.png"
            write_image(out / rel, y)
            images.append({"path": rel, "type": family.name, "level": level_text, "psnr": exact_psnr(y, x)})
            pending.append(y)
            if len(pending) == VOTER_BATCH:
                vote_pending()
    if pending:
        vote_pending()
    types, psnrs = [im["type"] for im in images], [im["psnr"] for im in images]
    rng = np.random.default_rng(derived_seed(settings.seed, rid, "pairs"))
    pairs = orient_and_sample(matched_pairs(types, psnrs, settings.tolerance), rng, settings.max_pairs_per_reference)
    a, b = [i for i, _ in pairs], [j for _, j in pairs]
    reference_top1, votes = {}, {}
    for voter in voters:
        probs = torch.cat(outputs[voter.name])
        c = consistency(probs[0], probs[1:])
        reference_top1[voter.name] = int(probs[0].argmax())
        for k, im in enumerate(images):
            im.setdefault("consistency", {})[voter.name] = c.record(k)
        votes[voter.name] = settings.rule.votes(c, a, b).tolist()
    labels = soft_label(np.array([votes[v.name] for v in voters])) if pairs else np.zeros(0)
    tolerances = sorted({*REPORT_TOLERANCES, settings.tolerance})
    return {
        "id": rid,
        "reference": reference_path,
        "size": list(x.shape[-2:]),
        "reference_top1": reference_top1,
        "images": images,
        "pairs": [
            {"a": i, "b": j, "votes": {v.name: votes[v.name][k] for v in voters}, "label": float(labels[k])}
            for k, (i, j) in enumerate(pairs)
        ],
        "pairs_per_tolerance": {f"{t:g}": len(matched_pairs(types, psnrs, t)) for t in tolerances},
    }


def _manifest(records: Sequence[dict[str, Any]], voter_names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*MANIFEST_COLUMNS, *(VOTE_PREFIX + v for v in voter_names), "label"])
    for record in records:
        images = record["images"]
        for k, pair in enumerate(record["pairs"]):
            a, b = images[pair["a"]], images[pair["b"]]
            writer.writerow(
                [
                    f"{record['id']}/{k:04d}",
                    record["reference"],
                    a["path"],
                    b["path"],
                    a["type"],
                    a["level"],
                    b["type"],
                    b["level"],
                    f"{a['psnr']:.4f}",
                    f"{b['psnr']:.4f}",
                    *(f"{pair['votes'][v]:g}" for v in voter_names),
                    f"{pair['label']:.6g}",
                ]
            )
    return buffer.getvalue()


def _summary(records: Sequence[dict[str, Any]], config: dict[str, Any], settings: BuildSettings, skipped: list) -> dict[str, Any]:
    """Statistics of a build, for error analysis of the proxy: per-voter consistency, inter-voter agreement, labels."""
    voter_names = config["voters"]
    pairs = [p for r in records for p in r["pairs"]]
    images = [im for r in records for im in r["images"]]
    votes = {v: np.array([p["votes"][v] for p in pairs]) for v in voter_names}
    labels = np.array([p["label"] for p in pairs])
    per_tolerance: dict[str, int] = {}
    for r in records:
        for t, n in r["pairs_per_tolerance"].items():
            per_tolerance[t] = per_tolerance.get(t, 0) + n
    return {
        "format": FORMAT,
        "version": VERSION,
        "complete": True,
        "references": len(records),
        "images": len(images),
        "pairs": len(pairs),
        "tolerance": settings.tolerance,
        "pairs_per_tolerance": per_tolerance,
        "voters": {
            v: {
                "top1_match_rate": float(np.mean([im["consistency"][v]["top1_match"] for im in images])),
                "mean_kl": float(np.mean([im["consistency"][v]["kl"] for im in images])),
                "votes_for_a": float(votes[v].mean()) if pairs else None,
                "ties": float(np.mean(votes[v] == 0.5)) if pairs else None,
            }
            for v in voter_names
        },
        # fraction of pairs on which two voters cast the same vote
        "voter_agreement": {f"{a} / {b}": float(np.mean(votes[a] == votes[b])) if pairs else None for a, b in combinations(voter_names, 2)},
        "labels": {
            "unanimous": float(np.mean((labels == 0) | (labels == 1))) if pairs else None,
            "undecided": float(np.mean(labels == 0.5)) if pairs else None,
            "mean_margin": float(np.mean(np.abs(2 * labels - 1))) if pairs else None,
        },
        "skipped": skipped,
        "config": config,
    }


# --------------------------------------------------------------------------- reading a build back (see also mocodec.iqa.pcmp_files.read_pcmp)


class PCMPDataset(torch.utils.data.Dataset):
    """A complete PCMP build as a torch dataset of ``{"reference", "a", "b", "label", "votes", "pair_id"}``.

    Images are 3 x H x W float tensors in [0, 1]; ``label`` is the soft label of ``voters``
    (default: all), ``votes`` their individual votes in that order.
    """

    def __init__(self, root: str | Path, voters: Sequence[str] | None = None):
        self.manifest = read_pcmp_manifest(root)
        self.voters = resolve_voters(voters or self.manifest.voters, self.manifest.voters, self.manifest.root)
        self._votes = torch.from_numpy(self.manifest.votes(self.voters)).float().T.contiguous()

    def __len__(self) -> int:
        return len(self.manifest.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row, root = self.manifest.rows[i], self.manifest.root
        return {
            "reference": read_image(root / row["reference"])[0],
            "a": read_image(root / row["image_a"])[0],
            "b": read_image(root / row["image_b"])[0],
            "label": self._votes[i].mean(),
            "votes": self._votes[i],
            "pair_id": row["pair_id"],
        }
