"""Layer ablation: the weight fit on synthetic data, and a run of tiny ML-CLIPSim on a tiny PCMP build."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from mocodec.data.io import read_image
from mocodec.errors import ConfigError
from mocodec.iqa import load_iqa_dataset
from mocodec.iqa.ablation import default_subsets, fit_weights, run_ablation, split_by_reference, weightings, write_weights
from mocodec.iqa.distortions import create_family
from mocodec.iqa.evaluate import MetricSpec, read_config
from mocodec.iqa.pcmp import BuildSettings, build_pcmp
from mocodec.losses import DISTORTIONS, create_distortion


def test_fit_recovers_the_component_that_decides():
    rng = np.random.default_rng(0)
    delta = rng.normal(0, [0.01, 0.05, 0.02, 0.03], size=(600, 4))  # components on different scales
    true = np.array([0.0, 0.0, 1.0, 0.0])
    p = 1 / (1 + np.exp(-(delta @ true) / 0.005))  # soft labels driven by component 2 alone
    w = fit_weights(delta, p)
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[2] > 0.9
    assert fit_weights(np.zeros((5, 3)), np.full(5, 0.5)) == pytest.approx(np.full(3, 1 / 3))  # no signal: uniform


def test_configurations():
    assert default_subsets(12) == [[3, 6, 9, 12], [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]
    configs = {c.name: c.weights.tolist() for c in weightings([1, 2, 3, 4], [[2, 4]])}
    assert list(configs) == ["layer1", "layer2", "layer3", "layer4", "global", "2,4+global", "uniform"]
    assert configs["2,4+global"] == pytest.approx([0, 1 / 3, 0, 1 / 3, 1 / 3])
    assert configs["uniform"] == pytest.approx([0.2] * 5)
    with pytest.raises(ConfigError) as exc:
        weightings([1, 2, 3], [[2, 5]])
    assert str(exc.value) == "subset 2,5 names layer(s) [5] outside the encoder's layers 1..3"


@pytest.fixture(scope="module")
def pcmp_dataset(tmp_path_factory, reference_folder, tiny_voters):
    out = tmp_path_factory.mktemp("ablation") / "pcmp"
    families = [create_family(s) for s in ("jpeg=10,20,30,50", "gaussian-blur=0.6,0.9,1.2,1.6", "gaussian-noise=0.02,0.03,0.05")]
    build_pcmp(reference_folder, out, families, tiny_voters, BuildSettings(tolerance=2.0))
    return load_iqa_dataset("pcmp", out)


def test_split_by_reference_keeps_references_apart(pcmp_dataset):
    train, test = split_by_reference(pcmp_dataset, 0.5, seed=0)
    assert len(train) + len(test) == len(pcmp_dataset) and len(train) and len(test)
    train_refs = {pcmp_dataset.pairs[i].reference for i in train}
    assert not train_refs & {pcmp_dataset.pairs[i].reference for i in test}


def test_ablation_of_tiny_ml_clipsim_and_its_fitted_config(tmp_path, pcmp_dataset):
    tiny = DISTORTIONS.meta("ml-clipsim")["test_kwargs"]  # a 12-block random open_clip ViT at 32 px
    result = run_ablation(pcmp_dataset, MetricSpec("ml-clipsim", tiny, "ml-clipsim"), n_resamples=50, seed=0)
    names = [row["metric"] for row in result.report.rows]
    assert names == [
        *(f"layer{n}" for n in range(1, 13)),
        "global",
        "3,6,9,12+global",
        "1,2,3,4,5,6+global",
        "7,8,9,10,11,12+global",
        "uniform",
        "fitted",
    ]
    assert all(0 <= row["2afc[label]"] <= 1 and 0 <= row["2afc[train split]"] <= 1 for row in result.report.rows)
    config = result.fitted
    assert config["layers"] == list(range(1, 13)) and len(config["layer_weights"]) == 12
    assert sum(config["layer_weights"]) + config["global_weight"] == pytest.approx(1.0)

    path = write_weights(tmp_path / "fitted.yaml", config)
    loaded = read_config(path)
    assert loaded == yaml.safe_load(yaml.safe_dump(config))
    torch.manual_seed(0)  # the tiny encoder is randomly initialised: the same weights in both
    metric = create_distortion("ml-clipsim", **loaded)
    torch.manual_seed(0)
    uniform = create_distortion("ml-clipsim", **{**tiny, "layers": "all"})
    pair = pcmp_dataset.pairs[0]
    x, y = read_image(pair.reference)[0][None], read_image(pair.a)[0][None]
    with torch.no_grad():
        components = uniform.similarities(y, x)[0].double().numpy()
        expected = components @ np.array([*config["layer_weights"], config["global_weight"]])
        assert float(metric.score(y, x)) == pytest.approx(expected, abs=1e-5)


def test_ablation_needs_a_multi_layer_metric(pcmp_dataset):
    with pytest.raises(ConfigError) as exc:
        run_ablation(pcmp_dataset, MetricSpec("mse", {}, "psnr"))
    assert str(exc.value) == "iqa ablate needs a multi-layer metric (ml-clipsim, ml-featsim); mse has no per-layer similarities"
