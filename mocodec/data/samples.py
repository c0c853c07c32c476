"""One image of an evaluation dataset, as the dataset readers return it and the tasks judge it; a dataset's identity.

A dataset is one folder, or several judged as one (:func:`read_dataset`): e.g. the held-out classes
of one ImageNet sample and a second sample kept for judging, pooled for narrower intervals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mocodec.errors import ConfigError
from mocodec.utils.options import check_options


@dataclass(frozen=True)
class Sample:
    """One image of a task's dataset: a stable id (for resuming and merging), its file, its target.

    ``target`` is whatever the task's metrics need: a class index, a list of boxes, the
    questions asked about this image (VLM tasks group questions per image so that each
    image is coded once per rate), or None for label-free agreement only.
    """

    id: str
    path: Path
    target: Any = None


DEFAULT_SET = "default"  # the name of a task's offline default set (no --dataset)


def dataset_identity(
    samples: Sequence[Sample], root: str | Path | None, options: Mapping[str, Any], name: str | None = None
) -> dict[str, Any]:
    """Which dataset a result was measured on, the same from any machine and folder.

    ``name``: the folder's name (``default`` for a task's offline default set) unless given; ``num_samples``;
    ``digest``: the first 16 hex digits of a SHA-256 over every sample's id, the SHA-256 of its
    file and its target, in id order (so another copy of the same images and labels has the same
    digest, and any changed, added or relabelled image changes it); ``options``: the reader's.
    """
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: s.id):
        with open(sample.path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
        digest.update(json.dumps([sample.id, content, sample.target], default=str).encode())
    if name is None:
        name = Path(root).resolve().name if root is not None else DEFAULT_SET
    return {"name": name, "num_samples": len(samples), "digest": digest.hexdigest()[:16], "options": dict(options)}


# A dataset as commands and recipes give it: a folder (None: the task's default set), a
# ``{root: FOLDER, OPTION: VALUE}`` mapping (also as YAML text, as on the command line), or a list of these.
DatasetSpec = str | os.PathLike | Mapping[str, Any] | Sequence[str | os.PathLike | Mapping[str, Any]] | None


@dataclass(frozen=True)
class DatasetPart:
    """One folder of a dataset and its reader's options (those given for every folder, then its own)."""

    root: str | None
    options: dict[str, Any]

    @classmethod
    def of(cls, item: str | os.PathLike | Mapping[str, Any] | None, shared: Mapping[str, Any]) -> DatasetPart:
        if isinstance(item, str) and item.lstrip().startswith("{"):  # a mapping written on the command line
            text = item
            try:
                item = yaml.safe_load(text)
            except yaml.YAMLError:
                item = None
            if not isinstance(item, Mapping):
                raise ConfigError(f"cannot read dataset '{text}'; write a folder or {{root: FOLDER, OPTION: VALUE}}")
        if isinstance(item, Mapping):
            if "root" not in item:
                raise ConfigError(f"dataset {dict(item)} names no folder; write {{root: FOLDER, OPTION: VALUE}}")
            own = {str(k).replace("-", "_"): v for k, v in item.items() if k != "root"}
            return cls(str(item["root"]), {**shared, **own})
        return cls(None if item is None else os.fspath(item), dict(shared))

    @property
    def name(self) -> str:
        return Path(self.root).resolve().name if self.root is not None else DEFAULT_SET


def dataset_parts(dataset: DatasetSpec, options: Mapping[str, Any] | None = None) -> list[DatasetPart]:
    """The folders of ``dataset`` with their options (``options``: for every folder)."""
    items = list(dataset) if isinstance(dataset, (list, tuple)) else [dataset]
    if not items:
        raise ConfigError("the dataset names no folder; give at least one")
    return [DatasetPart.of(item, options or {}) for item in items]


def read_dataset(
    read: Callable[..., list[Sample]], dataset: DatasetSpec, options: Mapping[str, Any] | None = None, what: str = "the dataset"
) -> tuple[list[Sample], dict[str, Any]]:
    """The samples of ``dataset`` as ``read(root, **options)`` reads each folder, and the dataset's identity.

    One folder: its samples and :func:`dataset_identity` as ever. Several: judged as one dataset,
    each sample's id prefixed with its folder's name (``imagenet-judge/n01443537/...``: ids stay
    unique), the identity named ``a+b`` with a digest over all of them and each folder's name,
    size and options under ``parts``.
    """
    parts = dataset_parts(dataset, options)
    for part in parts:
        check_options(read, part.options, what)
    if len(parts) == 1:
        (part,) = parts
        samples = read(part.root, **part.options)
        return samples, dataset_identity(samples, part.root, part.options)
    names = [part.name for part in parts]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"the dataset names folder '{repeated[0]}' more than once; give each folder once (select its images with one option)"
        )
    samples, described = [], []
    for part in parts:
        own = read(part.root, **part.options)
        samples += [dataclasses.replace(s, id=f"{part.name}/{s.id}") for s in own]
        described.append({"name": part.name, "num_samples": len(own), "options": dict(part.options)})
    return samples, {**dataset_identity(samples, None, {}, name="+".join(names)), "parts": described}
