"""``ImageDataModule``: the training and validation data of ``mocodec train``.

Random crops for training, centre crops for validation, from image folders (for
training: several, and some of their class folders; decoded once into memory with
``cache``) or, by default, from the embedded photographs (training photographs for
training, held-out ones for validation: no download, works offline). Loaders are plain shuffled /
sequential ``DataLoader``s. Under DDP, Lightning gives the training loader a seeded
``DistributedSampler`` (each sample once per epoch; up to world-1 repeats keep ranks in
step); validation gets an *unrepeated* one, so every image is scored exactly once and the
ranks' synced means equal a single process's.
"""

from __future__ import annotations

import dataclasses
import math
import time

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset

from mocodec.data.datasets import (
    DecodedImages,
    EmbeddedPhotos,
    ImageFiles,
    ImageFolder,
    TrainingSource,
    center_crop,
    collate_images,
    decoded_size,
    random_crop,
    random_crop_of_decoded,
)
from mocodec.errors import ConfigError

GIB = 2**30


class ImageDataModule(pl.LightningDataModule):
    """Crops of image folders (recursive: jpg/png/webp/...) or of the embedded photographs.

    **Training sources.** ``train`` is a folder, a ``{root: PATH, classes: "I/N"}`` mapping
    (:class:`~mocodec.data.datasets.TrainingSource`: only every N-th class folder of
    ``root``, the immediate sub-folders sorted by name, starting at the I-th), or a list of
    both; their images are pooled. In YAML::

        data:
          train:
            - ../shared/data/photos
            - {root: ../shared/data/imagenet-sample, classes: 0/2}   # classes 1/2 stay for judging

    and on the command line ``--data.train '[../shared/data/photos, {root: ../shared/data/imagenet-sample, classes: 0/2}]'``.

    **Decoded crops in memory.** With ``cache: true`` every training image is decoded once,
    when training starts, and kept as uint8 (:class:`~mocodec.data.datasets.DecodedImages`):
    ``sum(3 * H * W)`` bytes over the images, e.g. ~47 MB for 40 photographs of 768 x 512;
    a set that would take more than ``cache_limit_gib`` is refused before decoding. Each
    sample is then a crop from memory instead of a decoded file; for the same seed the crops
    are those of the file-reading path (the same random draws, the same float values), unless
    some files are unreadable (skipped with a warning at caching time instead of per sample,
    which shortens the dataset and so changes the shuffled order) or 16 bits deep (cached at
    8 bits). Under DDP each rank holds its own copy. The embedded photographs are always in memory.

    Args:
        train: training folder(s) / sources (above); ``None``: crops of the embedded training photographs.
        val: folder of validation images; ``None``: the embedded held-out photographs.
        crop_size: side of the random training crops.
        val_crop_size: side of the central validation crops; ``None``: whole images
            (with ``val_batch_size`` 1).
        batch_size: training batch size (per device).
        val_batch_size: validation batch size (per device).
        num_workers: loader processes (0: load in the training process).
        embedded_repeats: crops per embedded training photograph in one epoch.
        cache: decode the training images once and crop from memory (above).
        cache_limit_gib: the most memory, in GiB, that ``cache`` may take.
    """

    def __init__(
        self,
        train: str | TrainingSource | list[str | TrainingSource] | None = None,
        val: str | None = None,
        crop_size: int = 256,
        val_crop_size: int | None = 256,
        batch_size: int = 8,
        val_batch_size: int = 8,
        num_workers: int = 0,
        embedded_repeats: int = 16,
        cache: bool = False,
        cache_limit_gib: float = 4.0,
    ) -> None:
        super().__init__()
        for name, value in (("crop_size", crop_size), ("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")
        if val_crop_size is None and val_batch_size != 1:
            raise ConfigError("data.val_batch_size must be 1 when data.val_crop_size is null (whole images differ in size)")
        if not (isinstance(cache_limit_gib, (int, float)) and math.isfinite(cache_limit_gib) and cache_limit_gib > 0):
            raise ConfigError(f"data.cache_limit_gib must be a number > 0, got {cache_limit_gib}")
        self.train_sources = (
            None if train is None else [TrainingSource.of(item) for item in (train if isinstance(train, (list, tuple)) else [train])]
        )
        for source in self.train_sources or []:
            source.class_shard()  # a bad "I/N" is refused now, not when training starts
        # Hyper-parameters go into checkpoints, which are read with weights_only=True: sources as plain data.
        train = None if train is None else _plain_sources(train)  # noqa: F841 (read by save_hyperparameters)
        self.save_hyperparameters()
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "fit" and self.train_set is None:
            self.train_set = (
                self._training_set() if self.train_sources else EmbeddedPhotos("train", random_crop(hp.crop_size), hp.embedded_repeats)
            )
        if stage in ("fit", "validate") and self.val_set is None:
            crop = center_crop(hp.val_crop_size)
            self.val_set = ImageFolder(hp.val, crop) if hp.val else EmbeddedPhotos("val", crop)

    def _training_set(self) -> Dataset:
        """The training sources' images, read per sample or (``cache``) decoded once."""
        hp = self.hparams
        paths = [path for source in self.train_sources for path in source.images()]
        if not hp.cache:
            return ImageFiles(paths, random_crop(hp.crop_size))
        size = decoded_size(paths)
        if size > hp.cache_limit_gib * GIB:
            raise ConfigError(
                f"data.cache would hold {size / GIB:.2f} GiB of decoded training images ({len(paths)} files), over "
                f"data.cache_limit_gib {hp.cache_limit_gib:g}; raise data.cache_limit_gib, or set data.cache false to read a file per sample"
            )
        start = time.perf_counter()
        dataset = DecodedImages(paths, random_crop_of_decoded(hp.crop_size))
        rank_zero_info(
            f"data.cache: {len(dataset)} training images decoded into memory ({dataset.nbytes / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return dataset

    def train_dataloader(self) -> DataLoader:
        # Not persistent: workers restart each epoch from seeds drawn in the main process,
        # whose random state checkpoints carry, so a resumed run draws the same crops.
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_images,
            pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        sampler = None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # Lightning's own sampler would pad ranks with repeats
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(self.val_set, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DataLoader(
            self.val_set,
            batch_size=self.hparams.val_batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            collate_fn=collate_images,
            pin_memory=torch.cuda.is_available(),
        )


def _plain_sources(train: object) -> object:
    """``train`` as plain data: a folder as a string, a source with classes as ``{root, classes}``."""
    if isinstance(train, (list, tuple)):
        return [_plain_sources(item) for item in train]
    source = TrainingSource.of(train)
    return source.root if source.classes is None else dataclasses.asdict(source)
