"""The PCMP study on a tiny real build: six embedded photographs at 64 px, JPEG and blur at two levels, EfficientNet-Lite voters.

Every reported figure is recomputed from the per-pair records the study writes; scoring happens
once per image and metric, and a rerun scores nothing.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path
from unittest.mock import Mock, patch

import numpy as np
import pytest
import torch
import yaml

from mocodec.data.embedded import write_split
from mocodec.data.io import read_image
from mocodec.errors import ConfigError, OutputExistsError
from mocodec.iqa import study_scores as study_module
from mocodec.iqa.distortions import create_family
from mocodec.iqa.evaluate import MetricSpec, score_images
from mocodec.iqa.pcmp import BuildSettings, build_pcmp
from mocodec.iqa.study import StudySettings, agreement_per_pair, reference_folds, run_study
from mocodec.iqa.study_report import write_study
from mocodec.iqa.twoafc import metric_preference, twoafc_per_pair
from mocodec.iqa.voting import create_voter
from mocodec.losses import create_distortion

VOTERS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
FAMILIES = ("jpeg=10,30", "gaussian-blur=1,2")
# the 64 px images go into the real EfficientNet-Lites as they are: milliseconds per image
FEATURE = MetricSpec("ml-featsim", {"resize_mode": "none"}, "ml-featsim")
# named metrics: a random-weights feature similarity, and PSNR again under its registry name (scored once for both labels)
NAMED = (MetricSpec("ml-featsim", {"pretrained": None, "resize_mode": "none"}, "random-featsim"), MetricSpec("mse", {}, "mse"))
SETTINGS = StudySettings(feature_metric=FEATURE, metrics=NAMED, n_resamples=100)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("study-build")
    write_split(folder / "photos", "val")  # astronaut, chelsea, coffee, rocket, motorcycle, clock
    families = [create_family(spec) for spec in FAMILIES]
    voters = [create_voter(name) for name in VOTERS]
    build_pcmp(folder / "photos", folder / "pcmp", families, voters, BuildSettings(tolerance=8.0, max_size=64))
    return folder / "pcmp"


@pytest.fixture(scope="module")
def study(build, tmp_path_factory):
    """The study, run once with ``score_images`` counted; its folder, result and the counting mock."""
    out = tmp_path_factory.mktemp("study") / "study"
    counter = Mock(wraps=score_images)
    with patch.object(study_module, "score_images", counter):
        result = run_study(build, out, SETTINGS)
    write_study(result, out)
    return out, result, counter


def test_rotations_hold_out_every_voter_once(study):
    out, result, _ = study
    assert [r.heldout for r in result.rotations] == list(VOTERS)
    for rotation in result.rotations:
        assert set(rotation.labelling) == set(VOTERS) - {rotation.heldout}
    data = json.loads((out / "study.json").read_text())
    assert [r["heldout"] for r in data["rotations"]] == list(VOTERS)
    assert sorted({row["rotation"] for row in data["twoafc"]}) == list(VOTERS)


def test_reported_twoafc_equals_a_recount_from_the_pair_records(study):
    out, result, _ = study
    pairs = read_csv(out / "pairs.csv")
    rows = json.loads((out / "study.json").read_text())["twoafc"]
    metrics = {m.label for m in result.metrics}
    assert {r["metric"] for r in rows} == metrics and len(rows) == len(metrics) * 3 * 2
    for row in rows:
        rotation = row["rotation"]
        column = row["metric"] + (f"@{rotation}" if row["variant"] == "fitted" else "")
        a = np.array([float(p[f"A:{column}"]) for p in pairs])
        b = np.array([float(p[f"B:{column}"]) for p in pairs])
        label = [float(p[f"labelling@{rotation}"] if row["labels"] == "labelling" else p[f"vote:{rotation}"]) for p in pairs]
        recount = twoafc_per_pair(metric_preference(a, b, row["higher_is_better"]), label).mean()
        assert row["2afc"] == recount, (row["metric"], rotation, row["labels"])
        assert row["low"] <= row["2afc"] <= row["high"] and row["n"] == len(pairs)
    # the labelling label is the mean vote of the other voters
    for p in pairs:
        for rotation in VOTERS:
            assert float(p[f"labelling@{rotation}"]) == np.mean([float(p[f"vote:{v}"]) for v in VOTERS if v != rotation])


def test_label_agreement_equals_a_hand_count(study):
    out, _, _ = study
    pairs = read_csv(out / "pairs.csv")
    reported = {(r["rotation"], r["group_kind"], r["group"]): r for r in json.loads((out / "study.json").read_text())["agreement"]}
    for rotation in VOTERS:
        counts: dict[tuple[str, str], list[float]] = defaultdict(list)
        for p in pairs:
            label, vote = float(p[f"labelling@{rotation}"]), float(p[f"vote:{rotation}"])
            decision = "A" if label > 0.5 else "B" if label < 0.5 else None
            held = "A" if vote == 1 else "B" if vote == 0 else None
            score = 0.5 if decision is None or held is None else float(decision == held)  # ties count half
            kinds = sorted((p["type_a"], p["type_b"]))
            for key in [("all", "all"), ("pair", " vs ".join(kinds)), *(("family", k) for k in set(kinds))]:
                counts[key].append(score)
        assert {key[1:] for key in reported if key[0] == rotation} == set(counts)
        for key, scores in counts.items():
            row = reported[(rotation, *key)]
            assert row["n"] == len(scores)
            assert row["agreement"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)
    assert agreement_per_pair(np.array([1.0, 0.0, 0.5, 1.0, 1.0]), np.array([0.75, 0.75, 1.0, 0.5, 0.25])).tolist() == [1, 0, 0.5, 0.5, 0]


def test_every_image_is_scored_once_per_metric(study, build):
    _, result, counter = study
    # PSNR (and mse, the same configuration), MS-SSIM, one pass per backbone for all its variants, the random feature similarity
    assert counter.call_count == 2 + len(VOTERS) + 1
    pairs = read_csv(build / "pairs.csv")
    images = {(build / p[side], build / p["reference"]) for p in pairs for side in ("image_a", "image_b")}
    for call in counter.call_args_list:
        items = call.args[1]
        assert len(items) == len(set(items)) and set(items) == images
    assert result.info["images_scored"] == len(images)


def test_a_rerun_reuses_the_cached_scores(study, build):
    out, result, _ = study
    with pytest.raises(OutputExistsError) as exc:
        run_study(build, out, SETTINGS)
    assert str(exc.value) == f"{out} already holds a study; pass --force to redo its statistics (cached scores are reused)"
    with patch.object(study_module, "score_images", Mock(side_effect=AssertionError("scored again"))):
        again = run_study(build, out, SETTINGS, force=True)
    assert again.twoafc == result.twoafc and again.comparisons == result.comparisons and again.agreement == result.agreement
    assert all(entry["cached"] for entry in again.info["scores"].values())


def test_default_variant_is_the_metric_itself_and_fitted_weights_are_cross_fitted(study, build):
    out, _, _ = study
    pair = read_csv(out / "pairs.csv")[0]
    x, y = read_image(build / pair["reference"])[0][None], read_image(build / pair["image_a"])[0][None]
    with torch.no_grad():
        for backbone in VOTERS:
            metric = create_distortion("ml-featsim", model=backbone, resize_mode="none")
            assert float(pair[f"A:ml-featsim[{backbone}]"]) == pytest.approx(float(metric.score(y, x)), abs=1e-6)
    weights = read_csv(out / "weights.csv")
    assert len(weights) == 3 * 3 * SETTINGS.folds  # rotations x backbones x folds
    components = [f"layer{n}" for n in range(1, 8)] + ["global"]
    for row in weights:
        assert sum(float(row[c]) for c in components) == pytest.approx(1.0) and min(float(row[c]) for c in components) >= 0
    folds = reference_folds(["r1", "r2", "r3", "r4", "r5"], 2, seed=0)
    assert sorted(folds.values()) == [0, 0, 0, 1, 1]


def test_study_files_flag_who_judges_whom(study):
    out, _, _ = study
    assert {p.name for p in out.iterdir()} >= {
        "study.json",
        "study.md",
        "study.png",
        "pairs.csv",
        "twoafc.csv",
        "comparisons.csv",
        "agreement.csv",
        "weights.csv",
        "scores",
    }
    text = (out / "study.md").read_text()
    for heading in ("## Reading", "## Summary: 2AFC against the held-out voter", "## Label agreement", "## Held out efficientnet-lite2"):
        assert heading in text
    assert (
        "ml-featsim[efficientnet-lite0] (default layers) on the held-out votes (judged by its own backbone: efficientnet-lite0 is the held-out voter)"
        in text
    )
    assert "(not judged by its own backbone: efficientnet-lite1 is a labelling voter, not the held-out one)" in text
    comparisons = read_csv(out / "comparisons.csv")
    assert {c["comparison"] for c in comparisons} == {
        "vs psnr",
        "vs ms-ssim",
        "fitted vs uniform",
        "fitted vs default",
        "default vs global",
        "fitted vs global",
    }
    named = [c for c in comparisons if c["a"] in ("mse", "random-featsim")]
    assert len(named) == 2 * 3 * 2 * 2 and all(c["judge"] == "" for c in named)  # metrics x rotations x labels x baselines
    assert all(float(c["difference"]) == 0 for c in named if c["a"] == "mse" and c["b"] == "psnr")  # PSNR's scores, reused
    for c in comparisons:
        if c in named:
            continue
        way = "higher" if float(c["difference"]) > 0 else "lower" if float(c["difference"]) < 0 else "equal"
        assert c["outcome"] == f"{way}, {'significant' if float(c['p_bootstrap']) < 0.05 else 'not significant'}"
        backbone = c["a"][len("ml-featsim[") : c["a"].index("]")]  # every tested metric here is a feature similarity
        own = (backbone == c["rotation"]) == (c["labels"] == "held-out")  # held out: its own voter; labelling: among the others
        assert c["judge"] == ("own" if own else "other")


def test_library_refusals(build, tmp_path):
    with pytest.raises(ConfigError) as exc:
        run_study(build, tmp_path / "a", StudySettings(feature_metric=MetricSpec("msssim", {}, "ms-ssim")))
    assert str(exc.value) == (
        "the study's feature metric must be a multi-layer metric with backbones (ml-featsim, ml-clipsim); msssim has none"
    )
    with pytest.raises(ConfigError) as exc:
        run_study(build, tmp_path / "b", StudySettings(feature_metric=FEATURE, folds=7))
    assert str(exc.value) == "7 folds need at least 7 references with pairs; the build has 6"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError) as exc:
        run_study(build, foreign, SETTINGS)
    assert str(exc.value) == f"{foreign} exists and is not a study folder; give a new or empty folder"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_study_command_line_reuses_scores_and_prints_the_reading(cli, tmp_path, build, study):
    out, _, _ = study
    shutil.copytree(out / "scores", tmp_path / "study" / "scores")  # the same metric configurations: nothing to score
    config = tmp_path / "featsim.yaml"
    config.write_text(yaml.safe_dump(FEATURE.kwargs))
    r = cli(
        "iqa",
        "study",
        "--pcmp",
        str(build),
        "--feature-metric",
        f"ml-featsim:{config}",
        "--resamples",
        "50",
        "--out",
        str(tmp_path / "study"),
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("## Reading") and "ml-featsim:featsim[efficientnet-lite2] vs psnr" in r.stdout
    data = json.loads((tmp_path / "study" / "study.json").read_text())
    assert all(entry["cached"] for entry in data["scores"].values()) and data["settings"]["n_resamples"] == 50


def test_bad_inputs_are_one_line(cli, tmp_path, build, reference_folder, tiny_voters):
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text("{}")
    single = tmp_path / "single"
    build_pcmp(reference_folder, single, [create_family(s) for s in FAMILIES], tiny_voters[:1], BuildSettings(tolerance=8.0))
    cases = [
        (
            ["--pcmp", str(incomplete)],
            f"{incomplete} is not a complete PCMP dataset (no pcmp.json); rerun the same `mocodec pcmp` command to finish it",
        ),
        (
            ["--pcmp", str(single)],
            f"{single} holds the votes of one voter (proj0); the study holds each voter out in turn and needs at least 2: "
            "build PCMP with several --voters",
        ),
        (["--pcmp", str(build), "--metric", "sharpness"], "unknown distortion 'sharpness'; known distortions: "),
    ]
    for arguments, message in cases:
        r = cli("iqa", "study", *arguments, "--out", str(tmp_path / "out"))
        assert r.returncode == 2
        line = r.stderr.strip().splitlines()[-1]
        assert len(r.stderr.strip().splitlines()) == 1 and line.startswith(f"mocodec: error: {message}")
        assert not (tmp_path / "out").exists()
