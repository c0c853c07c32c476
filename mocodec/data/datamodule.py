"""``ImageDataModule``: the training and validation data of ``mocodec train``.

Random crops for training, centre crops for validation, from image folders or, by
default, from the embedded photographs (training photographs for training, held-out
ones for validation: no download, works offline). Loaders are plain shuffled /
sequential ``DataLoader``s. Under DDP, Lightning gives the training loader a seeded
``DistributedSampler`` (each sample once per epoch; up to world-1 repeats keep ranks in
step); validation gets an *unrepeated* one, so every image is scored exactly once and the
ranks' synced means equal a single process's.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from mocodec.data.datasets import EmbeddedPhotos, ImageFolder, center_crop, collate_images, random_crop
from mocodec.errors import ConfigError


class ImageDataModule(pl.LightningDataModule):
    """Crops of an image folder (recursive: jpg/png/webp/...) or of the embedded photographs.

    Args:
        train: folder of training images; ``None``: crops of the embedded training photographs.
        val: folder of validation images; ``None``: the embedded held-out photographs.
        crop_size: side of the random training crops.
        val_crop_size: side of the central validation crops; ``None``: whole images
            (with ``val_batch_size`` 1).
        batch_size: training batch size (per device).
        val_batch_size: validation batch size (per device).
        num_workers: loader processes (0: load in the training process).
        embedded_repeats: crops per embedded training photograph in one epoch.
    """

    def __init__(
        self,
        train: str | None = None,
        val: str | None = None,
        crop_size: int = 256,
        val_crop_size: int | None = 256,
        batch_size: int = 8,
        val_batch_size: int = 8,
        num_workers: int = 0,
        embedded_repeats: int = 16,
    ) -> None:
        super().__init__()
        for name, value in (("crop_size", crop_size), ("batch_size", batch_size), ("val_batch_size", val_batch_size)):
            if value < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {value}")
        if val_crop_size is None and val_batch_size != 1:
            raise ConfigError("data.val_batch_size must be 1 when data.val_crop_size is null (whole images differ in size)")
        self.save_hyperparameters()
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "fit" and self.train_set is None:
            crop = random_crop(hp.crop_size)
            self.train_set = ImageFolder(hp.train, crop) if hp.train else EmbeddedPhotos("train", crop, hp.embedded_repeats)
        if stage in ("fit", "validate") and self.val_set is None:
            crop = center_crop(hp.val_crop_size)
            self.val_set = ImageFolder(hp.val, crop) if hp.val else EmbeddedPhotos("val", crop)

    def train_dataloader(self) -> DataLoader:
        # Not persistent: workers restart each epoch from seeds drawn in the main process,
        # whose random state checkpoints carry, so a resumed run draws the same crops.
        return DataLoader(
            self.train_set, batch_size=self.hparams.batch_size, shuffle=True, num_workers=self.hparams.num_workers,
            collate_fn=collate_images, pin_memory=torch.cuda.is_available(),
        )

    def val_dataloader(self) -> DataLoader:
        sampler = None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # Lightning's own sampler would pad ranks with repeats
            from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(self.val_set, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False)
        return DataLoader(
            self.val_set, batch_size=self.hparams.val_batch_size, shuffle=False, sampler=sampler, num_workers=self.hparams.num_workers,
            collate_fn=collate_images, pin_memory=torch.cuda.is_available(),
        )
