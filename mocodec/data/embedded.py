"""The embedded default image set: scikit-image's bundled photographs (no download).

Split by photograph, never by crop, so held-out figures are on images the codec never saw.
Grayscale photographs are replicated to RGB. The held-out photographs are natural
scenes an ImageNet classifier recognises (a person, a cat, coffee, a rocket, a
motorcycle, a clock), so they also serve the offline classification judge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mocodec.errors import ConfigError

TRAIN_PHOTOS = (
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
    "coins",
    "grass",
    "gravel",
    "brick",
    "moon",
    "page",
    "text",
)
HELDOUT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle", "clock")
SPLITS = {"train": TRAIN_PHOTOS, "val": HELDOUT_PHOTOS, "all": TRAIN_PHOTOS + HELDOUT_PHOTOS}


def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as H x W x 3 uint8."""
    import skimage.data  # the one importer of scikit-image: its import takes a second, only the embedded set needs it

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def photos(split: str = "val") -> dict[str, np.ndarray]:
    """``{name: H x W x 3 uint8}`` for a split: ``train``, ``val`` (held out) or ``all``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown embedded split '{split}'; use one of {', '.join(SPLITS)}")
    return {name: load_photo(name) for name in SPLITS[split]}


def crops(image: np.ndarray, size: int, stride: int | None = None) -> list[np.ndarray]:
    """Non-overlapping (or ``stride``-spaced) ``size`` x ``size`` crops covering the image, row-major."""
    stride = stride or size
    h, w = image.shape[:2]
    return [image[t : t + size, x : x + size] for t in range(0, h - size + 1, stride) for x in range(0, w - size + 1, stride)]


def write_split(folder: str | Path, split: str = "val", crop: int | None = None) -> list[Path]:
    """Write a split as PNG files (whole photos, or ``crop``-sized tiles of them) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, img in photos(split).items():
        tiles = crops(img, crop) if crop else [img]
        for i, tile in enumerate(tiles):
            path = folder / (f"{name}_{i:02d}.png" if crop else f"{name}.png")
            if not path.exists():
                Image.fromarray(tile).save(path)
            paths.append(path)
    return paths
