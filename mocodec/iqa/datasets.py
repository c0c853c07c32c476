"""IQA datasets as released: scored images (LIVE, TID2013, KADID-10k, MPD) and preference pairs.

Every loader reads the dataset's own files in their released layout (see docs/iqa.md) and
returns a :class:`~mocodec.iqa.records.ScoredDataset` — distorted image, its reference,
its subjective score, distortion type and level — with the score's direction stated
(``higher_is_better``: MOS yes, DMOS no). Pair datasets (PCMP builds, read by
:mod:`mocodec.iqa.pcmp_files`; pairs formed from MPD's scores) are
:class:`~mocodec.iqa.records.PairDataset` objects with one or more label sets.

Loaders are registered by name in ``IQA_DATASETS``; ``load_iqa_dataset("tid2013", root)``.
A listed image that is missing on disk, or a score file that does not parse, is an error
naming the file and line: a silently shorter dataset would change every correlation.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat

from mocodec.errors import ConfigError, ImageReadError
from mocodec.files import atomic_write_text
from mocodec.iqa.pcmp_files import read_pcmp
from mocodec.iqa.records import PairDataset, ScoredDataset, ScoredImage, pairs_from_scores
from mocodec.registry import Registry

IQA_DATASETS = Registry("IQA dataset")


def load_iqa_dataset(name: str, root: str | Path, **options: Any) -> ScoredDataset | PairDataset:
    """Load dataset ``name`` (a registry name: live, tid2013, kadid10k, mpd, mpd-pairs, pcmp) from ``root``."""
    return IQA_DATASETS.create(name, root=Path(root), **options)


# --------------------------------------------------------------------------- helpers


def _require_dir(root: Path, dataset: str) -> Path:
    if not root.is_dir():
        raise ConfigError(f"{dataset} folder {root} does not exist or is not a directory")
    return root


def _require_file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{dataset}: {path.name} not found in {path.parent}; is this the released {dataset} folder?")
    return path


class _CaseInsensitiveFolder:
    """File lookup that ignores case (TID2013 mixes ``i01_01_1.bmp`` with ``I01.BMP``)."""

    def __init__(self, folder: Path, dataset: str):
        self.folder, self.dataset = folder, dataset
        self.files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}

    def find(self, name: str, listed_in: str) -> Path:
        try:
            return self.files[name.lower()]
        except KeyError:
            raise ImageReadError(
                f"{self.dataset}: image {name} listed in {listed_in} is missing from {self.folder}; re-extract the dataset"
            ) from None


# --------------------------------------------------------------------------- LIVE release 2

# dmos.mat orders its 982 entries folder by folder, imgN.bmp within each (Sheikh et al.'s readme).
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


@IQA_DATASETS.register
def live(root: Path, realigned: bool = False) -> ScoredDataset:
    """LIVE release 2: ``dmos.mat`` (or ``dmos_realigned.mat``), ``refnames_all.mat``, five folders, ``refimgs/``.

    Entries with ``orgs == 1`` are the references' own copies and are excluded (779 remain).
    DMOS: lower is better. ``realigned`` uses ``dmos_new`` of the realigned file.
    """
    _require_dir(root, "LIVE")
    score_file = _require_file(root / ("dmos_realigned.mat" if realigned else "dmos.mat"), "LIVE")
    names_file = _require_file(root / "refnames_all.mat", "LIVE")
    try:
        scores_mat, names_mat = loadmat(score_file), loadmat(names_file)
        dmos = np.asarray(scores_mat["dmos_new" if realigned else "dmos"], dtype=np.float64).ravel()
        orgs = np.asarray(scores_mat["orgs"]).ravel().astype(bool)
        refnames = [str(np.asarray(n).ravel()[0]) for n in np.asarray(names_mat["refnames_all"]).ravel()]
    except (ValueError, KeyError, IndexError, TypeError, OSError) as exc:
        raise ConfigError(f"LIVE: {score_file.name}/{names_file.name} do not parse as the released MATLAB files ({exc})") from None
    expected = sum(count for _, count in LIVE_FOLDERS)
    if not len(dmos) == len(orgs) == len(refnames) == expected:
        raise ConfigError(
            f"LIVE: {score_file.name} holds {len(dmos)} scores, {len(orgs)} orgs flags and {names_file.name} {len(refnames)} names; "
            f"release 2 has {expected} ({' + '.join(f'{c} {f}' for f, c in LIVE_FOLDERS)})"
        )
    references = _CaseInsensitiveFolder(root / "refimgs", "LIVE")
    images, index = [], 0
    for folder, count in LIVE_FOLDERS:
        files = _CaseInsensitiveFolder(root / folder, "LIVE")
        for n in range(1, count + 1):
            if not orgs[index]:
                images.append(
                    ScoredImage(
                        files.find(f"img{n}.bmp", score_file.name),
                        references.find(refnames[index], names_file.name),
                        float(dmos[index]),
                        folder,
                    )
                )
            index += 1
    return ScoredDataset("live", images, higher_is_better=False, score_name="dmos")


@IQA_DATASETS.register(name="live-realigned")
def live_realigned(root: Path) -> ScoredDataset:
    """LIVE release 2 with the realigned DMOS of ``dmos_realigned.mat`` (``dmos_new``)."""
    return live(root, realigned=True)


# --------------------------------------------------------------------------- TID2013

TID2013_TYPES = (
    "additive noise",
    "colour noise",
    "correlated noise",
    "masked noise",
    "high-frequency noise",
    "impulse noise",
    "quantisation noise",
    "gaussian blur",
    "denoising",
    "jpeg",
    "jpeg2000",
    "jpeg transmission",
    "jpeg2000 transmission",
    "pattern noise",
    "block-wise",
    "mean shift",
    "contrast",
    "saturation",
    "multiplicative noise",
    "comfort noise",
    "noisy compression",
    "colour quantisation",
    "chromatic aberration",
    "sparse sampling",
)
_TID_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


@IQA_DATASETS.register
def tid2013(root: Path) -> ScoredDataset:
    """TID2013: ``mos_with_names.txt`` lines ``MOS name``; ``distorted_images/iRR_TT_L.bmp``, ``reference_images/IRR.BMP``.

    MOS 0–9, higher is better; 24 types (``"10 jpeg"``) × 5 levels.
    """
    _require_dir(root, "TID2013")
    score_file = _require_file(root / "mos_with_names.txt", "TID2013")
    distorted = _CaseInsensitiveFolder(root / "distorted_images", "TID2013")
    references = _CaseInsensitiveFolder(root / "reference_images", "TID2013")
    images = []
    for number, line in enumerate(score_file.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        match = _TID_NAME.match(parts[1]) if len(parts) == 2 else None
        try:
            mos = float(parts[0]) if match else None
        except ValueError:
            mos = None
        if mos is None or match is None:
            raise ConfigError(f"TID2013: {score_file.name} line {number} does not parse as 'MOS iRR_TT_L.bmp': {line.strip()[:60]!r}")
        ref, kind, level = match.groups()
        images.append(
            ScoredImage(
                distorted.find(parts[1], score_file.name),
                references.find(f"i{ref}.bmp", score_file.name),
                mos,
                f"{kind} {TID2013_TYPES[int(kind) - 1]}" if 1 <= int(kind) <= len(TID2013_TYPES) else kind,
                level,
            )
        )
    if not images:
        raise ConfigError(f"TID2013: {score_file} lists no images")
    return ScoredDataset("tid2013", images, higher_is_better=True, score_name="mos")


# --------------------------------------------------------------------------- KADID-10k

KADID_TYPES = (
    "gaussian blur",
    "lens blur",
    "motion blur",
    "colour diffusion",
    "colour shift",
    "colour quantisation",
    "colour saturation 1",
    "colour saturation 2",
    "jpeg2000",
    "jpeg",
    "white noise",
    "colour noise",
    "impulse noise",
    "multiplicative noise",
    "denoising",
    "brighten",
    "darken",
    "mean shift",
    "jitter",
    "patch noise",
    "pixelate",
    "quantisation",
    "colour block",
    "sharpen",
    "contrast",
)
_KADID_NAME = re.compile(r"^I(\d{2})_(\d{2})_(\d{2})\.png$", re.IGNORECASE)
KADID_COLUMNS = ("dist_img", "ref_img", "dmos")


def _read_csv(path: Path, required: Sequence[str], dataset: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ConfigError(f"{dataset}: {path.name} lacks column(s) {', '.join(missing)}; expected {','.join(required)}")
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{dataset}: {path.name} is not a readable CSV file ({exc})") from None


def _float(text: str, path: Path, line: int, dataset: str, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value):
        raise ConfigError(f"{dataset}: {path.name} line {line} has {column} {text!r}, not a number")
    return value


@IQA_DATASETS.register
def kadid10k(root: Path) -> ScoredDataset:
    """KADID-10k: ``dmos.csv`` (``dist_img,ref_img,dmos,var``) and the images in ``images/`` (or beside the CSV).

    Despite its name the ``dmos`` column is a MOS on 1–5: higher is better. 25 types × 5 levels.
    """
    _require_dir(root, "KADID-10k")
    score_file = _require_file(root / "dmos.csv", "KADID-10k")
    folder = _CaseInsensitiveFolder(root / "images" if (root / "images").is_dir() else root, "KADID-10k")
    images = []
    for line, row in enumerate(_read_csv(score_file, KADID_COLUMNS, "KADID-10k"), 2):
        name = (row["dist_img"] or "").strip()
        match = _KADID_NAME.match(name)
        kind = int(match.group(2)) if match else 0
        images.append(
            ScoredImage(
                folder.find(name, score_file.name),
                folder.find((row["ref_img"] or "").strip(), score_file.name),
                _float(row["dmos"], score_file, line, "KADID-10k", "dmos"),
                f"{kind:02d} {KADID_TYPES[kind - 1]}" if 1 <= kind <= len(KADID_TYPES) else "unknown",
                match.group(3) if match else "",
            )
        )
    if not images:
        raise ConfigError(f"KADID-10k: {score_file} lists no images")
    return ScoredDataset("kadid10k", images, higher_is_better=True, score_name="mos")


# --------------------------------------------------------------------------- MPD (through a manifest)

MANIFEST_COLUMNS = ("reference", "distorted", "score")


@IQA_DATASETS.register
def mpd(root: Path, higher_is_better: bool = True) -> ScoredDataset:
    """A scored-image manifest: CSV ``reference,distorted,score[,type]``, paths relative to the CSV.

    ``root`` is the CSV file, or a folder holding ``manifest.csv``. MPD's released archive
    has no documented layout, so :func:`write_mpd_manifest` builds this file from its
    score table; any other scored dataset can be given the same way.
    """
    path = root / "manifest.csv" if root.is_dir() else root
    _require_file(path, "MPD")
    images = []
    for line, row in enumerate(_read_csv(path, MANIFEST_COLUMNS, "MPD"), 2):
        resolved = []
        for column in ("distorted", "reference"):
            image = path.parent / (row[column] or "").strip()
            if not image.is_file():
                raise ImageReadError(f"MPD: image {row[column]} listed in {path.name} line {line} is missing; fix the path or the manifest")
            resolved.append(image)
        images.append(ScoredImage(*resolved, _float(row["score"], path, line, "MPD", "score"), (row.get("type") or "all").strip()))
    if not images:
        raise ConfigError(f"MPD: {path} lists no images")
    return ScoredDataset("mpd", images, higher_is_better=higher_is_better, score_name="score")


@IQA_DATASETS.register(name="mpd-pairs")
def mpd_pairs(root: Path, higher_is_better: bool = True) -> PairDataset:
    """MPD as 2AFC pairs: every two distortions of one reference, labelled by which scored better."""
    return pairs_from_scores(mpd(root, higher_is_better), name="mpd-pairs")


# --------------------------------------------------------------------------- PCMP builds (mocodec.iqa.pcmp writes them)


@IQA_DATASETS.register
def pcmp(root: Path, label_voters: Sequence[str] | None = None, heldout_voters: Sequence[str] | None = None) -> PairDataset:
    """A complete PCMP build (``mocodec pcmp``) as 2AFC pairs; see :func:`read_pcmp`."""
    return read_pcmp(root, label_voters, heldout_voters)


def write_mpd_manifest(
    root: str | Path,
    scores: str | Path,
    out: str | Path,
    *,
    distorted_column: str = "distorted",
    reference_column: str = "reference",
    score_column: str = "score",
    type_column: str | None = None,
) -> int:
    """Build the manifest :func:`mpd` reads from an extracted archive and its score table (CSV).

    Each name in the score table is found under ``root`` by file name (searched
    recursively; it must be unique), so the archive's folder layout does not matter.
    Returns the number of rows written; the manifest is written atomically.
    """
    root, scores, out = Path(root), Path(scores), Path(out)
    _require_dir(root, "MPD")
    _require_file(scores, "MPD")
    required = [distorted_column, reference_column, score_column] + ([type_column] if type_column else [])
    rows = _read_csv(scores, required, "MPD")
    index: dict[str, list[Path]] = defaultdict(list)
    for path in root.rglob("*"):
        if path.is_file():
            index[path.name.lower()].append(path)

    def locate(name: str, line: int) -> str:
        found = index.get(Path(name.strip()).name.lower(), [])
        if len(found) != 1:
            why = "is not" if not found else f"matches {len(found)} files"
            raise ImageReadError(f"MPD: {name!r} ({scores.name} line {line}) {why} under {root}; check --root")
        return Path(_relative(found[0], out.parent)).as_posix()

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS + ("type",))
    for line, row in enumerate(rows, 2):
        score = _float(row[score_column], scores, line, "MPD", score_column)
        kind = (row[type_column] or "").strip() if type_column else "all"
        writer.writerow([locate(row[reference_column], line), locate(row[distorted_column], line), repr(score), kind])
    atomic_write_text(out, buffer.getvalue())
    return len(rows)


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())
