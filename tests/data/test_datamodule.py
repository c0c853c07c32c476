"""ImageDataModule: embedded default, image folders, unreadable files, determinism, DDP splitting."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from pytorch_lightning import seed_everything
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

from mocodec.data.datamodule import ImageDataModule
from mocodec.data.datasets import EmbeddedPhotos, ImageFolder, center_crop, collate_images, random_crop
from mocodec.data.embedded import HELDOUT_PHOTOS, TRAIN_PHOTOS
from mocodec.errors import ConfigError


def first_batch(dm: ImageDataModule) -> torch.Tensor:
    return next(iter(dm.train_dataloader()))["image"]


@pytest.fixture(scope="module")
def embedded() -> ImageDataModule:
    dm = ImageDataModule(crop_size=48, val_crop_size=64, batch_size=4, val_batch_size=3, embedded_repeats=2)
    dm.setup("fit")
    return dm


def test_embedded_default_trains_on_crops_of_the_training_photos(embedded):
    assert isinstance(embedded.train_set, EmbeddedPhotos) and embedded.train_set.names == list(TRAIN_PHOTOS)
    assert len(embedded.train_set) == 2 * len(TRAIN_PHOTOS)
    batch = first_batch(embedded)
    assert batch.shape == (4, 3, 48, 48) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1


def test_embedded_validation_is_the_held_out_photos_centre_crops(embedded):
    assert embedded.val_set.names == list(HELDOUT_PHOTOS)
    batch = next(iter(embedded.val_dataloader()))
    assert batch["image"].shape == (3, 3, 64, 64) and batch["unreadable"] == 0
    astronaut = torch.from_numpy(embedded.val_set.images[0].numpy()).float() / 255  # 512 x 512
    torch.testing.assert_close(batch["image"][0], astronaut[:, 224:288, 224:288])


def test_crops_are_deterministic_with_a_seed(embedded):
    seed_everything(7)
    a = first_batch(embedded)
    seed_everything(7)
    b = first_batch(embedded)
    seed_everything(8)
    c = first_batch(embedded)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_loaders_let_lightning_inject_a_distributed_sampler(embedded):
    # Lightning replaces a plain RandomSampler/SequentialSampler by a DistributedSampler under DDP.
    assert type(embedded.train_dataloader().sampler) is RandomSampler
    assert type(embedded.val_dataloader().sampler) is SequentialSampler


def test_each_sample_once_per_epoch_across_ranks(embedded):
    dataset = embedded.train_set  # 22 items: divisible by 2 ranks, so no padding repeats
    seen = [i for rank in range(2) for i in DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)]
    assert sorted(seen) == list(range(len(dataset)))


@pytest.fixture
def folder(tmp_path):
    """Nested folders (as Vimeo-90k/CLIC/COCO) with png/jpg/webp, a damaged file, a small image, a text file."""
    torch.manual_seed(0)
    (tmp_path / "seq" / "0001").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    for path in (tmp_path / "seq" / "0001" / "im1.png", tmp_path / "seq" / "0001" / "im2.jpg", tmp_path / "other" / "c.webp"):
        Image.fromarray(torch.randint(0, 256, (70, 90, 3), dtype=torch.uint8).numpy()).save(path)
    Image.fromarray(torch.randint(0, 256, (20, 30, 3), dtype=torch.uint8).numpy()).save(tmp_path / "small.png")
    (tmp_path / "other" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_image_folder_is_recursive_and_skips_unreadable_files(folder):
    dataset = ImageFolder(folder, random_crop(32))
    assert sorted(p.relative_to(folder).as_posix() for p in dataset.paths) == [
        "other/broken.png", "other/c.webp", "seq/0001/im1.png", "seq/0001/im2.jpg", "small.png",
    ]
    with pytest.warns(UserWarning, match=r"skipping unreadable image: .*broken.png is not an image Pillow can read"):
        batch = collate_images([dataset[i] for i in range(len(dataset))])
    assert batch["image"].shape == (4, 3, 32, 32) and batch["unreadable"] == 1


def test_small_images_are_edge_padded_to_the_crop(folder):
    x = ImageFolder(folder, center_crop(32))[4]  # small.png, 20 x 30
    assert x.shape == (3, 32, 32)
    torch.testing.assert_close(x[:, :6, :], x[:, 6:7, :].expand(3, 6, 32))  # replicated top rows


def test_folder_datamodule_counts_unreadable_files_per_batch(folder):
    dm = ImageDataModule(train=str(folder), val=str(folder), crop_size=32, val_crop_size=32, batch_size=5, val_batch_size=5)
    dm.setup("fit")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        batch = next(iter(dm.train_dataloader()))  # all five files: one batch
    assert batch["image"].shape == (4, 3, 32, 32) and batch["unreadable"] == 1


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("no images here")
    dm = ImageDataModule(train=str(tmp_path))
    with pytest.raises(ConfigError, match=rf"^dataset folder {tmp_path} holds no images \(.png/.jpg/.webp/...\); give a folder of training images$"):
        dm.setup("fit")


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match=r"^data.batch_size must be >= 1, got 0$"):
        ImageDataModule(batch_size=0)
    with pytest.raises(ConfigError, match=r"^data.val_batch_size must be 1 when data.val_crop_size is null \(whole images differ in size\)$"):
        ImageDataModule(val_crop_size=None, val_batch_size=4)


def test_whole_validation_images(embedded):
    dm = ImageDataModule(val_crop_size=None, val_batch_size=1)
    dm.setup("validate")
    assert [tuple(dm.val_set[i].shape) for i in range(2)] == [(3, 512, 512), (3, 300, 451)]  # astronaut, chelsea
