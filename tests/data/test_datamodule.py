"""ImageDataModule: embedded default, image folders, unreadable files, determinism, DDP splitting, decoded crops in memory, several sources and class subsets."""

from __future__ import annotations

import re

import pytest
import torch
from jsonargparse import ArgumentParser
from PIL import Image
from pytorch_lightning import seed_everything
from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

from mocodec.data.datamodule import ImageDataModule
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
)
from mocodec.data.embedded import HELDOUT_PHOTOS, TRAIN_PHOTOS
from mocodec.errors import ConfigError, ImageReadError


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
    assert batch.min() >= 0 and batch.max() <= 1


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
        "other/broken.png",
        "other/c.webp",
        "seq/0001/im1.png",
        "seq/0001/im2.jpg",
        "small.png",
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
    with pytest.raises(
        ConfigError, match=rf"^dataset folder {tmp_path} holds no images \(.png/.jpg/.webp/...\); give a folder of training images$"
    ):
        dm.setup("fit")


def test_bad_sizes_are_refused():
    with pytest.raises(ConfigError, match=r"^data.batch_size must be >= 1, got 0$"):
        ImageDataModule(batch_size=0)
    with pytest.raises(
        ConfigError, match=r"^data.val_batch_size must be 1 when data.val_crop_size is null \(whole images differ in size\)$"
    ):
        ImageDataModule(val_crop_size=None, val_batch_size=4)


def test_whole_validation_images(embedded):
    dm = ImageDataModule(val_crop_size=None, val_batch_size=1)
    dm.setup("validate")
    assert [tuple(dm.val_set[i].shape) for i in range(2)] == [(3, 512, 512), (3, 300, 451)]  # astronaut, chelsea


# --------------------------------------------------------------------------- decoded crops in memory


@pytest.fixture
def photos(tmp_path):
    """Readable 8-bit images of several kinds: RGB png/jpg/webp, grayscale, RGBA, one smaller than the crops."""
    torch.manual_seed(1)
    root = tmp_path / "photos"
    (root / "nested").mkdir(parents=True)
    pixels = lambda h, w, c=3: torch.randint(0, 256, (h, w, c), dtype=torch.uint8).numpy().squeeze()  # noqa: E731
    Image.fromarray(pixels(70, 90)).save(root / "a.png")
    Image.fromarray(pixels(64, 80)).save(root / "b.jpg", quality=80)
    Image.fromarray(pixels(50, 60)).save(root / "nested" / "c.webp")
    Image.fromarray(pixels(60, 40, 1)).save(root / "gray.png")
    Image.fromarray(pixels(40, 50, 4)).save(root / "rgba.png")
    Image.fromarray(pixels(20, 30)).save(root / "small.png")
    return root


def batches(dm: ImageDataModule, seed: int, epochs: int = 1) -> list[torch.Tensor]:
    """Every training batch of ``epochs`` epochs from ``seed``."""
    seed_everything(seed)
    return [batch["image"] for _ in range(epochs) for batch in dm.train_dataloader()]


def test_cached_crops_equal_the_crops_read_from_the_files(photos):
    files = ImageDataModule(train=str(photos), crop_size=32, batch_size=3)
    cached = ImageDataModule(train=str(photos), crop_size=32, batch_size=3, cache=True)
    files.setup("fit")
    cached.setup("fit")
    assert isinstance(files.train_set, ImageFiles) and isinstance(cached.train_set, DecodedImages)
    assert cached.train_set.paths == files.train_set.paths
    assert all(x.dtype == torch.uint8 for x in cached.train_set.images)
    assert cached.train_set.nbytes == decoded_size(files.train_set.paths) == 3 * (70 * 90 + 64 * 80 + 50 * 60 + 60 * 40 + 40 * 50 + 20 * 30)
    for seed in (0, 1):  # every pixel of every crop, for two seeds over two epochs of 6 images
        assert all(torch.equal(a, b) for a, b in zip(batches(files, seed, 2), batches(cached, seed, 2), strict=True))


def test_cached_crops_in_loader_workers_equal_the_files_crops(photos):
    files = ImageDataModule(train=str(photos), crop_size=32, batch_size=3, num_workers=1)
    cached = ImageDataModule(train=str(photos), crop_size=32, batch_size=3, num_workers=1, cache=True)
    files.setup("fit")
    cached.setup("fit")
    assert all(torch.equal(a, b) for a, b in zip(batches(files, 3), batches(cached, 3), strict=True))


def test_cache_skips_unreadable_files_once_with_a_warning(folder):
    dm = ImageDataModule(train=str(folder), crop_size=32, batch_size=5, cache=True)
    with pytest.warns(UserWarning, match=r"skipping unreadable image: .*broken.png is not an image Pillow can read"):
        dm.setup("fit")
    assert len(dm.train_set) == 4 and all(p.name != "broken.png" for p in dm.train_set.paths)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["unreadable"] == 0


def test_cache_over_its_memory_limit_is_refused_before_decoding(photos, monkeypatch):
    import mocodec.data.datamodule

    monkeypatch.setattr(
        mocodec.data.datamodule, "decoded_size", lambda paths: 5 * 2**30 if len(paths) == 6 else pytest.fail("not the 6 files")
    )
    monkeypatch.setattr(DecodedImages, "__init__", lambda *args: pytest.fail("decoded although over the limit"))
    with pytest.raises(
        ConfigError,
        match=(
            r"^data.cache would hold 5.00 GiB of decoded training images \(6 files\), over data.cache_limit_gib 4; "
            r"raise data.cache_limit_gib, or set data.cache false to read a file per sample$"
        ),
    ):
        ImageDataModule(train=str(photos), cache=True).setup("fit")
    with pytest.raises(ConfigError, match=r"^data.cache_limit_gib must be a number > 0, got 0$"):
        ImageDataModule(cache=True, cache_limit_gib=0)


def test_cache_of_the_embedded_photos_changes_nothing():
    a, b = (ImageDataModule(crop_size=48, batch_size=4, embedded_repeats=1, cache=cache) for cache in (False, True))
    a.setup("fit")
    b.setup("fit")
    assert isinstance(b.train_set, EmbeddedPhotos)
    assert all(torch.equal(x, y) for x, y in zip(batches(a, 0), batches(b, 0), strict=True))


# --------------------------------------------------------------------------- several sources, class subsets


@pytest.fixture
def classes(tmp_path):
    """An ImageFolder tree: four class folders (listed out of order), one image each, and a loose file at the top."""
    torch.manual_seed(2)
    root = tmp_path / "tree"
    for name in ("n03", "n01", "n04", "n02"):
        (root / name).mkdir(parents=True)
        Image.fromarray(torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy()).save(root / name / f"{name}_x.JPEG")
    Image.fromarray(torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy()).save(root / "loose.png")
    return root


def names(dm: ImageDataModule) -> list[str]:
    dm.setup("fit")
    return [p.name for p in dm.train_set.paths]


def test_class_subsets_keep_every_nth_class_folder(classes):
    assert names(ImageDataModule(train={"root": str(classes), "classes": "0/2"})) == ["n01_x.JPEG", "n03_x.JPEG"]
    assert names(ImageDataModule(train=TrainingSource(str(classes), "1/2"))) == ["n02_x.JPEG", "n04_x.JPEG"]
    assert names(ImageDataModule(train=TrainingSource(str(classes), "2/4"), cache=True)) == ["n03_x.JPEG"]
    assert names(ImageDataModule(train=str(classes))) == ["loose.png", "n01_x.JPEG", "n02_x.JPEG", "n03_x.JPEG", "n04_x.JPEG"]


def test_several_sources_are_pooled(classes, photos):
    dm = ImageDataModule(train=[str(photos), {"root": str(classes), "classes": "1/2"}], crop_size=32, batch_size=8, cache=True)
    assert names(dm) == ["a.png", "b.jpg", "gray.png", "c.webp", "rgba.png", "small.png", "n02_x.JPEG", "n04_x.JPEG"]
    assert next(iter(dm.train_dataloader()))["image"].shape == (8, 3, 32, 32)
    # Hyper-parameters (saved in checkpoints, read with weights_only=True) stay plain data.
    assert dm.hparams.train == [str(photos), {"root": str(classes), "classes": "1/2"}]


@pytest.mark.parametrize(
    "classes_text, message",
    [
        ("0-2", "cannot read shard '0-2'; write I/N with 0 <= I < N, e.g. --shard 0/4"),
        ("2/2", "shard 2/2 does not exist; write I/N with 0 <= I < N, e.g. 0/4 ... 3/4"),
    ],
)
def test_bad_class_subsets_are_refused_when_configured(classes, classes_text, message):
    with pytest.raises(ConfigError, match=f"^classes of training source {classes}: {re.escape(message)}$"):
        ImageDataModule(train=[str(classes), {"root": str(classes), "classes": classes_text}])


def test_class_subsets_of_a_folder_without_class_folders(photos, tmp_path):
    with pytest.raises(
        ConfigError,
        match=(
            rf"^classes 1/2 keep none of the 1 class folders \(sub-folders\) of {photos}; take fewer, or drop classes to train on every image under it$"
        ),
    ):
        ImageDataModule(train={"root": str(photos), "classes": "1/2"}).setup("fit")
    with pytest.raises(ImageReadError, match=rf"^dataset folder {tmp_path / 'none'} does not exist or is not a directory$"):
        ImageDataModule(train={"root": str(tmp_path / "none"), "classes": "0/2"}).setup("fit")


def test_unreadable_source_text_is_refused():
    with pytest.raises(
        ConfigError, match=r"^cannot read training source '\{root: a, clases: 0/2\}'; write a folder or \{root: PATH, classes: I/N\}$"
    ):
        ImageDataModule(train="{root: a, clases: 0/2}")  # what the parser passes on for a mapping with a typo
    with pytest.raises(
        ConfigError, match=r"^cannot read training source \{'clases': '0/2'\}; write a folder or \{root: PATH, classes: I/N\}$"
    ):
        ImageDataModule(train=[{"clases": "0/2"}])


def test_sources_parse_from_the_command_line_and_yaml(tmp_path):
    """``data.train`` as LightningCLI (jsonargparse) reads it: a folder, a mapping, or a list of both."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_class_arguments(ImageDataModule, "data")
    (tmp_path / "train.yaml").write_text("data:\n  train:\n    - photos\n    - {root: imagenet, classes: 0/2}\n  cache: true\n")
    expected = [TrainingSource("photos"), TrainingSource("imagenet", "0/2")]
    for argv in (
        ["--data.train", "[photos, {root: imagenet, classes: 0/2}]", "--data.cache", "true"],
        ["--config", str(tmp_path / "train.yaml")],
    ):
        dm = parser.instantiate(parser.parse_args(argv)).data
        assert dm.train_sources == expected and dm.hparams.cache
    assert parser.instantiate(parser.parse_args(["--data.train", "photos"])).data.train_sources == [TrainingSource("photos")]
    assert parser.instantiate(parser.parse_args(["--data.train", "{root: imagenet, classes: 1/2}"])).data.train_sources == [
        TrainingSource("imagenet", "1/2")
    ]
