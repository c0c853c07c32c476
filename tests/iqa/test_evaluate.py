"""Registered metrics on scored and pair datasets: known answers, tables, paired tests, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mocodec.data.io import write_image
from mocodec.errors import ConfigError, OutputExistsError
from mocodec.iqa.evaluate import MetricSpec, evaluate_metrics
from mocodec.iqa.records import PairDataset, PreferencePair, ScoredDataset, ScoredImage
from mocodec.iqa.report import check_output_folder, write_reports
from mocodec.losses import psnr

ALIASES = {"psnr": "mse"}


def noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


@pytest.fixture(scope="module")
def images(tmp_path_factory, astronaut) -> dict:
    """Two 64 x 64 references, each with noisy and blurred versions at 4 levels, as 8-bit PNGs."""
    import torchvision.transforms.v2.functional as TF

    root = tmp_path_factory.mktemp("iqa")
    out: dict = {"refs": [], "distorted": []}
    for r, (top, left) in enumerate([(40, 160), (250, 250)]):
        x = torch.from_numpy(astronaut[top : top + 64, left : left + 64]).permute(2, 0, 1).float() / 255
        ref = root / f"ref{r}.png"
        write_image(ref, x)
        out["refs"].append(ref)
        for k, sigma in enumerate((0.01, 0.03, 0.06, 0.1)):
            for kind, y in (("noise", noisy(x, sigma, seed=10 * r + k)), ("blur", TF.gaussian_blur(x, [9, 9], [0.5 + 3 * sigma * 10] * 2))):
                path = root / f"ref{r}_{kind}{k}.png"
                write_image(path, y)
                out["distorted"].append((path, ref, kind, y, x))
    return out


def scored(images, higher_is_better: bool) -> ScoredDataset:
    """Subjective scores that are an exact increasing (MOS) or decreasing (DMOS) function of PSNR."""
    rows = []
    for path, ref, kind, y, x in images["distorted"]:
        q = float(psnr((y * 255).round()[None] / 255, (x * 255).round()[None] / 255))
        rows.append(ScoredImage(path, ref, q / 5 if higher_is_better else 10 - q / 5, kind))
    return ScoredDataset("synthetic" if higher_is_better else "synthetic-dmos", rows, higher_is_better)


@pytest.fixture(scope="module")
def mos_report(images):
    (report,) = evaluate_metrics([scored(images, True)], [MetricSpec.parse("psnr", ALIASES), MetricSpec.parse("msssim")], n_resamples=200)
    return report


def test_psnr_correlates_perfectly_with_scores_made_from_it(mos_report):
    rows = {row["metric"]: row for row in mos_report.rows}
    assert rows["psnr"]["srcc"] == pytest.approx(1.0) and rows["psnr"]["krcc"] == pytest.approx(1.0)
    assert rows["psnr"]["plcc"] == pytest.approx(1.0, abs=1e-6) and rows["psnr"]["n"] == 16
    assert 0.5 < rows["msssim"]["srcc"] < 1.0
    assert rows["psnr"]["p_boot"] is None and 0 <= rows["msssim"]["p_boot"] <= 1 and 0 <= rows["msssim"]["p_wilcoxon"] <= 1
    assert rows["psnr"]["srcc_low"] == pytest.approx(1.0)  # every resample ranks perfectly too
    assert {(r["type"], r["metric"]) for r in mos_report.per_type} == {(t, m) for t in ("blur", "noise") for m in ("psnr", "msssim")}
    (comparison,) = mos_report.comparisons
    assert comparison["difference"] == pytest.approx(1.0 - rows["msssim"]["srcc"])


def test_dmos_direction_is_handled(images):
    (report,) = evaluate_metrics([scored(images, False)], [MetricSpec.parse("psnr", ALIASES)], n_resamples=20)
    (row,) = report.rows
    assert (row["srcc"], row["krcc"]) == pytest.approx((1.0, 1.0))  # DMOS falls as PSNR rises: a perfect metric


def test_twoafc_of_pairs_whose_answer_is_known(images):
    noise = [(path, ref) for path, ref, kind, *_ in images["distorted"] if kind == "noise"]
    # per reference, the 0.01 noise (A) against the 0.1 noise (B): every sane metric prefers A
    pairs = [PreferencePair(noise[k][1], noise[k][0], noise[k + 3][0], "noise", "noise") for k in (0, 4)]
    labels = {"label": np.array([1.0, 1.0]), "held-out": np.array([0.0, 0.5])}
    (report,) = evaluate_metrics([PairDataset("pairs", pairs, labels)], [MetricSpec.parse("psnr", ALIASES)], n_resamples=50)
    (row,) = report.rows
    assert (row["2afc[label]"], row["2afc[held-out]"]) == (1.0, 0.25)  # held-out: (0 + 0.5) / 2
    assert report.headline == ["2afc[label]", "2afc[held-out]"]
    assert report.per_type == [{"type": "noise vs noise", "metric": "psnr", "2afc[label]": 1.0, "n": 2}]


def test_reports_are_written_with_results_json_last(tmp_path, mos_report):
    out = check_output_folder(tmp_path / "results")
    written = write_reports([mos_report], out)
    assert written[-1] == out / "results.json"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "report.md",
        "results.json",
        "synthetic.csv",
        "synthetic.md",
        "synthetic.png",
        "synthetic_comparisons.csv",
        "synthetic_per_type.csv",
    ]
    table = (out / "synthetic.md").read_text().splitlines()
    assert table[0] == "## synthetic" and table[2].startswith("| metric | srcc | krcc | plcc | rmse | n | fit | p_boot | p_wilcoxon |")
    data = json.loads((out / "results.json").read_text())
    assert data["datasets"][0]["rows"][0]["metric"] == "psnr"
    with pytest.raises(OutputExistsError) as exc:
        check_output_folder(out)
    assert str(exc.value) == f"{out} already holds IQA results; pass --force to overwrite them"


def test_metric_specs(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("pretrained: null\nlayers: [1, 2]\n")
    spec = MetricSpec.parse(f"ml-featsim:{config}")
    assert (spec.name, spec.kwargs, spec.label) == ("ml-featsim", {"pretrained": None, "layers": [1, 2]}, "ml-featsim:tiny")
    assert MetricSpec.parse("PSNR", ALIASES) == MetricSpec("mse", {}, "PSNR")
    with pytest.raises(KeyError) as exc:
        MetricSpec.parse("nope")
    assert str(exc.value).startswith("unknown distortion 'nope'; known distortions: ") and "msssim" in str(exc.value)
    config.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError) as exc:
        MetricSpec.parse(f"ml-featsim:{config}")
    assert str(exc.value) == f"metric config {config} must hold a mapping of keyword arguments, not a list"
