"""Training and validation image datasets: image files (read per sample or decoded once), and the embedded photographs.

All are map-style datasets (a length and an index), so a ``DistributedSampler`` can
split them and each sample is drawn once per epoch. Items are 3 x H x W float crops in
[0, 1]. An unreadable file yields ``None`` and a warning; :func:`collate_images` drops
those and counts them, so a damaged file costs one sample, never the run.
:class:`DecodedImages` decodes every file once, up front, and crops from memory
(unreadable files are skipped then, with a warning).

Training images come from :class:`TrainingSource` folders (all their images, or only
some of their class folders). Crops come from torch's random generator (in the loader's
process or worker): with Lightning's ``seed_everything(seed, workers=True)`` every epoch is reproducible.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from mocodec.data.io import list_images, read_image
from mocodec.errors import ConfigError, ImageReadError
from mocodec.evaluation.shards import Shard

Transform = Callable[[Tensor], Tensor]


def random_crop(size: int) -> Transform:
    """Training transform: a random ``size`` crop (edge-padded if the image is smaller), as floats."""
    return v2.Compose([v2.RandomCrop(size, pad_if_needed=True, padding_mode="edge"), v2.ToDtype(torch.float32, scale=True)])


def unit_float(x: Tensor) -> Tensor:
    """uint8 values ``v`` as float32 ``v / 255``, exactly as :func:`~mocodec.data.io.read_image` computes them."""
    return x.float().div_(255)  # not v2.ToDtype's v * (1/255), which differs in the last bit for half the values


def random_crop_of_decoded(size: int) -> Transform:
    """Training transform of :class:`DecodedImages`: :func:`random_crop`'s crop of a uint8 image, as floats.

    The crop is drawn as :func:`random_crop` draws it and scaled as ``read_image`` scales, so a
    decoded image gives, for the same random state, the very crop that reading its file gives.
    """
    return v2.Compose([v2.RandomCrop(size, pad_if_needed=True, padding_mode="edge"), unit_float])


def center_crop(size: int | None) -> Transform:
    """Validation transform: the central ``size`` crop (edge-padded if smaller); ``None``: the whole image."""

    def crop(x: Tensor) -> Tensor:
        x = v2.functional.to_dtype(x, torch.float32, scale=True)
        if size is None:
            return x
        h, w = x.shape[-2:]
        ph, pw = max(size - h, 0), max(size - w, 0)
        if ph or pw:  # pad symmetrically, replicating the border, as the codecs pad
            x = F.pad(x[None], (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")[0]
        return v2.functional.center_crop(x, [size, size])

    return crop


@dataclass(frozen=True)
class TrainingSource:
    """A folder of training images: every image under ``root``, or only those of some class folders.

    ``classes: "I/N"`` keeps every N-th class folder (the immediate sub-folders of ``root``,
    sorted by name) starting at the I-th, and the images under them, as ``--shard I/N``
    splits a dataset (:class:`~mocodec.evaluation.shards.Shard`): ``0/2`` of an ImageFolder
    tree trains on half of its classes and leaves the other half, ``1/2``, for judging.
    Without ``classes``, every image under ``root`` (recursively).
    """

    root: str
    classes: str | None = None

    @classmethod
    def of(cls, item: str | os.PathLike | Mapping | TrainingSource) -> TrainingSource:
        """A source from a folder, a ``{root: PATH, classes: "I/N"}`` mapping, or a source."""
        if isinstance(item, TrainingSource):
            return item
        if isinstance(item, Mapping):
            unknown = set(item) - {"root", "classes"}
            if "root" not in item or unknown:
                raise ConfigError(f"cannot read training source {dict(item)}; write a folder or {{root: PATH, classes: I/N}}")
            return cls(str(item["root"]), None if item.get("classes") is None else str(item["classes"]))
        text = os.fspath(item)
        if text.lstrip().startswith(("{", "[")):  # a mapping the parser could not read falls back to a string
            raise ConfigError(f"cannot read training source '{text}'; write a folder or {{root: PATH, classes: I/N}}")
        return cls(text)

    def class_shard(self) -> Shard | None:
        """The class folders kept, as a :class:`Shard` of them (None: every image under ``root``)."""
        if self.classes is None:
            return None
        try:
            return Shard.parse(self.classes)
        except ConfigError as exc:
            raise ConfigError(f"classes of training source {self.root}: {exc}") from None

    def images(self) -> list[Path]:
        """The source's image files: sorted, class folder by class folder."""
        root, shard = Path(self.root), self.class_shard()
        if shard is None:
            paths = list_images(root)
        else:
            if not root.is_dir():
                raise ImageReadError(f"dataset folder {root} does not exist or is not a directory")
            classes = [d for d in root.iterdir() if d.is_dir()]
            folders = shard.select(classes, key=lambda d: d.name)
            if not folders:
                raise ConfigError(
                    f"classes {shard} keep none of the {len(classes)} class folders (sub-folders) of {root}; "
                    "take fewer, or drop classes to train on every image under it"
                )
            paths = [path for folder in folders for path in list_images(folder)]
        if not paths:
            raise ConfigError(f"dataset folder {root} holds no images (.png/.jpg/.webp/...); give a folder of training images")
        return paths


class ImageFiles(Dataset):
    """Image files, each read (decoded afresh) when one of its samples is drawn."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Transform) -> None:
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor | None:
        try:
            x, _ = read_image(self.paths[index])
        except ImageReadError as exc:
            warnings.warn(f"skipping unreadable image: {exc}", stacklevel=2)
            return None
        return self.transform(x)


class ImageFolder(ImageFiles):
    """Every image under ``root`` (recursively: Vimeo-90k septuplets, CLIC, COCO work as they are)."""

    def __init__(self, root: str | os.PathLike, transform: Transform) -> None:
        self.root = Path(root)
        super().__init__(TrainingSource(str(root)).images(), transform)


def decoded_size(paths: Sequence[str | os.PathLike]) -> int:
    """Bytes that :class:`DecodedImages` takes for ``paths``: the sum of 3 * H * W, read from the files' headers.

    Files whose header cannot be read count 0 (decoding skips them).
    """
    total = 0
    for path in paths:
        try:
            with Image.open(path) as img:
                total += 3 * img.width * img.height
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            pass
    return total


class DecodedImages(Dataset):
    """Image files decoded once, up front, and kept in memory; each sample is a crop of one of them.

    Memory: one byte per pixel and channel (uint8 3 x H x W tensors), i.e. ``sum(3 * H * W)``
    bytes over the images (:func:`decoded_size`): 40 photographs of 768 x 512 take 47 MB,
    500 ImageNet images ~250 MB. Drawing a sample costs a crop instead of a decode.
    Images are read as :func:`~mocodec.data.io.read_image` reads them (grayscale as RGB,
    alpha dropped); 16-bit images are kept at 8 bits, so only they crop differently from
    :class:`ImageFiles`. Unreadable files are skipped here, with a warning, so the
    dataset is shorter than the list of files (then the sampler's order differs from the
    file-reading path's). ``transform`` receives the uint8 image: :func:`random_crop_of_decoded`
    gives the crops :func:`random_crop` gives from the files, for the same random state.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Transform) -> None:
        self.paths: list[Path] = []
        self.images: list[Tensor] = []
        for path in map(Path, paths):
            try:
                x, _ = read_image(path)
            except ImageReadError as exc:
                warnings.warn(f"skipping unreadable image: {exc}", stacklevel=2)
                continue
            self.paths.append(path)
            self.images.append(x.mul_(255).round_().to(torch.uint8))  # exact for 8-bit images: v / 255 * 255 rounds to v
        if not self.images:
            raise ConfigError(f"none of the {len(paths)} training images could be read; give readable images (.png/.jpg/.webp/...)")
        self.transform = transform

    @property
    def nbytes(self) -> int:
        """Memory taken by the decoded images."""
        return sum(x.numel() for x in self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.transform(self.images[index])


class EmbeddedPhotos(Dataset):
    """Crops of scikit-image's bundled photographs (:mod:`mocodec.data.embedded`): no download.

    ``repeats`` crops per photograph make an epoch (item ``i`` is a crop of photograph
    ``i mod n``), so epochs have a useful length although there are few photographs.
    """

    def __init__(self, split: str, transform: Transform, repeats: int = 1) -> None:
        from mocodec.data.embedded import photos

        if repeats < 1:
            raise ConfigError(f"repeats must be >= 1, got {repeats}")
        self.names: list[str] = []
        self.images: list[Tensor] = []
        for name, img in photos(split).items():
            self.names.append(name)
            self.images.append(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1))  # uint8, 3 x H x W
        self.transform = transform
        self.repeats = repeats

    def __len__(self) -> int:
        return len(self.images) * self.repeats

    def __getitem__(self, index: int) -> Tensor:
        return self.transform(self.images[index % len(self.images)])


def collate_images(samples: Sequence[Tensor | None]) -> dict[str, Tensor | int]:
    """Stack the readable samples: ``{"image": N x 3 x H x W, "unreadable": count of dropped ones}``."""
    images = [s for s in samples if s is not None]
    batch = torch.stack(images) if images else torch.empty(0, 3, 0, 0)
    return {"image": batch, "unreadable": len(samples) - len(images)}
