"""Training and validation image datasets: image folders and the embedded photographs.

Both are map-style datasets (a length and an index), so a ``DistributedSampler`` can
split them and each sample is drawn once per epoch. Items are 3 x H x W float crops in
[0, 1]. An unreadable file yields ``None`` and a warning; :func:`collate_images` drops
those and counts them, so a damaged file costs one sample, never the run.

Crops come from torch's random generator (in the loader's process or worker): with
Lightning's ``seed_everything(seed, workers=True)`` every epoch is reproducible.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from mocodec.data.io import list_images, read_image
from mocodec.errors import ConfigError, ImageReadError

Transform = Callable[[Tensor], Tensor]


def random_crop(size: int) -> Transform:
    """Training transform: a random ``size`` crop (edge-padded if the image is smaller), as floats."""
    return v2.Compose([v2.RandomCrop(size, pad_if_needed=True, padding_mode="edge"), v2.ToDtype(torch.float32, scale=True)])


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


class ImageFolder(Dataset):
    """Every image under ``root`` (recursively: Vimeo-90k septuplets, CLIC, COCO work as they are)."""

    def __init__(self, root: str | os.PathLike, transform: Transform) -> None:
        self.root = Path(root)
        self.paths = list_images(self.root)
        if not self.paths:
            raise ConfigError(f"dataset folder {self.root} holds no images (.png/.jpg/.webp/...); give a folder of training images")
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
