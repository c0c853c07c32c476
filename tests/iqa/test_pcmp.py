"""The PCMP builder with tiny voters: layout, manifest, reproducibility, resuming, refusals, loaders."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from iqa_helpers import ExplodingVoter

from mocodec.data.io import read_image
from mocodec.errors import ConfigError, OutputExistsError
from mocodec.iqa import load_iqa_dataset
from mocodec.iqa import pcmp as pcmp_module
from mocodec.iqa.distortions import create_family
from mocodec.iqa.pcmp import VOTER_BATCH, BuildSettings, PCMPDataset, build_pcmp
from mocodec.iqa.pcmp_files import read_pcmp_manifest
from mocodec.iqa.voting import Consistency, VoteRule
from mocodec.losses import psnr

FAMILY_SPECS = ("jpeg=10,20,30,50", "gaussian-blur=0.6,0.9,1.2,1.6", "gaussian-noise=0.02,0.03,0.05", "contrast=0.8,0.65")
SETTINGS = BuildSettings(tolerance=1.0, seed=3)


def families():
    return [create_family(spec) for spec in FAMILY_SPECS]


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def built(tmp_path_factory, reference_folder, tiny_voters) -> tuple[Path, dict]:
    """One build shared by the module's tests, which only read it."""
    out = tmp_path_factory.mktemp("built") / "pcmp"
    return out, build_pcmp(reference_folder, out, families(), tiny_voters, SETTINGS)


def test_build_writes_a_consistent_dataset(built):
    out, summary = built
    manifest = rows(out)
    assert summary["complete"] and summary["references"] == 3 and summary["images"] == 3 * 13
    assert len(manifest) == summary["pairs"] > 0
    assert summary["pairs_per_tolerance"]["1"] == summary["pairs"]  # no --max-pairs: every matched pair
    counts = [summary["pairs_per_tolerance"][t] for t in ("0.1", "0.25", "0.5", "1", "2")]
    assert counts == sorted(counts)
    for row in manifest:
        assert row["type_a"] != row["type_b"]
        assert abs(float(row["psnr_a"]) - float(row["psnr_b"])) <= 1.0
        votes = [float(row[f"vote:proj{k}"]) for k in range(3)]
        assert set(votes) <= {0.0, 0.5, 1.0}
        assert float(row["label"]) == pytest.approx(np.mean(votes))
    # the PSNRs in the manifest are those of the files on disk
    row = manifest[0]
    ref, a = read_image(out / row["reference"])[0], read_image(out / row["image_a"])[0]
    assert float(psnr(a[None], ref[None])) == pytest.approx(float(row["psnr_a"]), abs=1e-3)


def test_votes_follow_from_the_recorded_consistency(built):
    out, _ = built
    record = json.loads(next((out / "records").glob("*.json")).read_text())
    if not record["pairs"]:
        pytest.skip("this reference has no matched pair")
    for voter in ("proj0", "proj1", "proj2"):
        c = Consistency.from_records([im["consistency"][voter] for im in record["images"]])
        a = [p["a"] for p in record["pairs"]]
        b = [p["b"] for p in record["pairs"]]
        assert VoteRule().votes(c, a, b).tolist() == [p["votes"][voter] for p in record["pairs"]]


def test_same_seed_same_dataset_other_seed_other_noise(tmp_path, reference_folder, tiny_voters, built):
    out, _ = built
    again = tmp_path / "again"
    build_pcmp(reference_folder, again, families(), tiny_voters, SETTINGS)
    assert (again / "pairs.csv").read_bytes() == (out / "pairs.csv").read_bytes()
    other = tmp_path / "other"
    build_pcmp(reference_folder, other, families(), tiny_voters, BuildSettings(tolerance=1.0, seed=4))
    noisy = "distorted/crop0/gaussian-noise_0.05.png"
    assert (other / noisy).read_bytes() != (out / noisy).read_bytes()


def test_an_interrupted_build_is_not_complete_and_resumes_to_the_same_dataset(tmp_path, reference_folder, tiny_voters, built):
    out, _ = built
    partial = tmp_path / "partial"
    calls_per_reference = 1 + math.ceil(13 / VOTER_BATCH)  # the reference, then its distorted images in batches
    stopping = [ExplodingVoter("proj0", seed=0, after=calls_per_reference + 1), *tiny_voters[1:]]  # dies on the second reference
    with pytest.raises(KeyboardInterrupt):
        build_pcmp(reference_folder, partial, families(), stopping, SETTINGS)
    assert not (partial / "pcmp.json").exists() and not (partial / "pairs.csv").exists()
    assert [p.name for p in (partial / "records").iterdir()] == ["crop0.json"]
    with pytest.raises(ConfigError) as exc:
        read_pcmp_manifest(partial)
    assert str(exc.value) == f"{partial} is not a complete PCMP dataset (no pcmp.json); rerun the same `mocodec pcmp` command to finish it"
    build_pcmp(reference_folder, partial, families(), tiny_voters, SETTINGS)  # resume
    assert (partial / "pairs.csv").read_bytes() == (out / "pairs.csv").read_bytes()


def test_a_build_in_worker_processes_writes_the_same_dataset_and_resumes(tmp_path, reference_folder, tiny_voters, built, monkeypatch):
    out, summary = built
    monkeypatch.setattr(pcmp_module, "WORKER_CHUNK", 1)  # one reference per call: both workers get work
    parallel = tmp_path / "parallel"
    assert build_pcmp(reference_folder, parallel, families(), tiny_voters, SETTINGS, workers=2) == summary
    for name in ("pairs.csv", "records/crop1.json", "distorted/crop2/jpeg_10.png", "distorted/crop0/gaussian-noise_0.05.png"):
        assert (parallel / name).read_bytes() == (out / name).read_bytes(), name
    # A build stopped after its first reference is finished by workers, to the same files.
    partial = tmp_path / "partial"
    calls_per_reference = 1 + math.ceil(13 / VOTER_BATCH)
    with pytest.raises(KeyboardInterrupt):
        build_pcmp(
            reference_folder,
            partial,
            families(),
            [ExplodingVoter("proj0", seed=0, after=calls_per_reference + 1), *tiny_voters[1:]],
            SETTINGS,
        )
    build_pcmp(reference_folder, partial, families(), tiny_voters, SETTINGS, workers=2)
    assert (partial / "pairs.csv").read_bytes() == (out / "pairs.csv").read_bytes()
    assert json.loads((partial / "pcmp.json").read_text()) == summary


def test_refusals(tmp_path, reference_folder, tiny_voters):
    out = tmp_path / "pcmp"
    build_pcmp(reference_folder, out, families(), tiny_voters, SETTINGS)
    with pytest.raises(OutputExistsError) as exc:
        build_pcmp(reference_folder, out, families(), tiny_voters, BuildSettings(tolerance=0.5, seed=3))
    assert str(exc.value) == f"{out} holds a PCMP build with other settings (settings differ); use another folder, or --force to rebuild it"
    rebuilt = build_pcmp(reference_folder, out, families(), tiny_voters, BuildSettings(tolerance=0.5, seed=3), force=True)
    assert rebuilt["tolerance"] == 0.5
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError) as exc:
        build_pcmp(reference_folder, foreign, families(), tiny_voters, SETTINGS, force=True)
    assert str(exc.value) == f"{foreign} exists and is not a PCMP build folder; give a new or empty folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError) as exc:
        build_pcmp(empty, tmp_path / "x", families(), tiny_voters, SETTINGS)
    assert str(exc.value) == f"reference folder {empty} holds no images (.png/.jpg/.webp/...)"
    assert not (tmp_path / "x").exists()
    for workers in (0, -2, 1.5):
        with pytest.raises(ConfigError, match=rf"^--workers must be a whole number >= 1, got {workers}$"):
            build_pcmp(reference_folder, tmp_path / "y", families(), tiny_voters, SETTINGS, workers=workers)
    assert not (tmp_path / "y").exists()


def test_torch_dataset_and_held_out_labels(built):
    out, _ = built
    manifest = rows(out)
    data = PCMPDataset(out)
    assert len(data) == len(manifest)
    item = data[0]
    assert item["reference"].shape == item["a"].shape == item["b"].shape == (3, 48, 64)
    assert item["votes"].tolist() == [float(manifest[0][f"vote:proj{k}"]) for k in range(3)]
    assert float(item["label"]) == pytest.approx(float(manifest[0]["label"]))
    loader = torch.utils.data.DataLoader(data, batch_size=2)
    assert next(iter(loader))["a"].shape == (2, 3, 48, 64)

    pairs = load_iqa_dataset("pcmp", out, heldout_voters=["PROJ2"])  # names match as registry names do
    assert pairs.labels["label"].tolist() == pytest.approx([(float(r["vote:proj0"]) + float(r["vote:proj1"])) / 2 for r in manifest])
    assert pairs.labels["held-out"].tolist() == [float(r["vote:proj2"]) for r in manifest]
    with pytest.raises(ConfigError) as exc:
        load_iqa_dataset("pcmp", out, label_voters=["proj0", "proj2"], heldout_voters=["proj2"])
    assert str(exc.value) == "labelling and held-out voters must be disjoint; both contain proj2"
    with pytest.raises(ConfigError) as exc:
        PCMPDataset(out, voters=["resnet50"])
    assert str(exc.value) == f"{out} has no votes of resnet50; its voters are proj0, proj1, proj2"


def test_the_matching_psnr_is_exact_on_8_bit_images():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (3, 37, 53), generator=generator).float().div(255)
    y = (x + torch.randint(-9, 10, x.shape, generator=generator).div(255)).clamp(0, 1).mul(255).round().div(255)
    squared = int(((y * 255).round() - (x * 255).round()).to(torch.int64).square().sum())
    assert pcmp_module.exact_psnr(y, x) == 10 * math.log10(255**2 * x.numel() / squared)
    assert pcmp_module.exact_psnr(y, x) == pytest.approx(
        float(10 * torch.log10(1 / (y.double() - x.double()).square().mean())), abs=1e-6
    )  # k/255 in float32 is not exact
    assert pcmp_module.exact_psnr(x, x) == math.inf
