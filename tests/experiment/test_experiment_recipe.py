"""Recipes: read with jsonargparse into the dataclasses, every problem one line naming the key, the
shipped recipes, and ``recipe.yaml`` reading back to the same recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mocodec.errors import ConfigError, MocodecError
from mocodec.experiment import compared_runs, load_recipe, parse_recipe, recipe_data

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "experiments"
SHIPPED = sorted(RECIPES.glob("*.yaml"))


def test_typo_in_a_recipe_is_one_line(cli, tmp_path):
    recipe = (RECIPES / "tiny.yaml").read_text().replace("steps: 2", "stpes: 2")
    path = tmp_path / "typo.yaml"
    path.write_text(recipe)
    run = cli("experiment", "--config", str(path), "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == f"mocodec: error: {path}: unknown key 'stpes' in the recipe; did you mean 'steps'?"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["terms"]["mse"].update(lmbda=[0.1]), "unknown key 'lmbda' in terms.mse; did you mean 'lmbdas'?"),
        (lambda r: r.update(anchor="msssim"), "anchor 'msssim' is not a term; the terms are: mse, mse+msssim"),
        (
            lambda r: r.update(steps=3, checkpoints=2),
            "steps (3) must be a multiple of checkpoints (2), so the last checkpoint is the last step",
        ),
        (
            lambda r: r["training"]["model"].update(lmbda=0.1),
            "training sets model.lmbda, which the recipe decides per run; set it through codecs, terms or seeds",
        ),
        (lambda r: r["tasks"]["judge"]["options"].update(modle="x"), "tasks.judge: task classification takes no option 'modle'"),
        (lambda r: r["tasks"]["judge"].pop("metrics"), "tasks.judge lacks the key 'metrics'"),
        (
            lambda r: r.update(checkpoints=2) or r["codecs"]["tiny"].update(pretrain={"steps": 3, "lmbda": 0.01}),
            "codecs.tiny.pretrain.steps (3) must be a multiple of checkpoints (2)",
        ),
        (
            lambda r: r["codecs"]["tiny"].update(pretrain={"step": 4, "lmbda": 0.01}),
            "unknown key 'step' in codecs.tiny.pretrain; did you mean 'steps'?",
        ),
        (lambda r: r["codecs"]["tiny"].update(pretrain={"steps": 4, "lmbda": -1}), "codecs.tiny.pretrain needs steps >= 1 and lmbda > 0"),
        (lambda r: r["codecs"]["tiny"].update(pretrain={"steps": 4, "lmbda": 0.01, "distortions": {"mes": 1}}), "unknown distortion 'mes'"),
    ],
)
def test_recipe_errors(edit, message):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    edit(recipe)
    with pytest.raises(MocodecError) as err:
        parse_recipe(recipe)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(seeds=[0, 1.5]), "seeds must be a list of whole numbers, got [0, 1.5]"),
        (lambda r: r.update(seeds=0), "seeds must be a list of whole numbers, got 0"),
        (lambda r: r["terms"]["mse"].update(lmbdas=["small"]), "terms.mse.lmbdas must be a list of numbers, got ['small']"),
        (lambda r: r["terms"]["mse"].update(lmbdas=[]), "terms.mse.lmbdas must be a list of numbers, got []"),
        (lambda r: r["terms"]["mse"].update(balance_warmup="soon"), "terms.mse.balance_warmup must be a whole number or null, got 'soon'"),
        (
            lambda r: r["codecs"]["tiny"].update(pretrain={"steps": 2.5, "lmbda": 0.01}),
            "codecs.tiny.pretrain.steps must be a whole number, got 2.5",
        ),
        (lambda r: r["codecs"].update(tiny="bmshj2018-hyperprior"), "codecs.tiny must be a mapping of keys to values, got str"),
        (lambda r: r["codecs"]["tiny"].update(label="small"), "unknown key 'label' in codecs.tiny; an entry's label is its key in codecs"),
        (lambda r: r.update(terms=["mse"]), "'terms' must map names to entries, e.g. terms: {mse: {...}}"),
        (lambda r: r.update(terms={}), "'terms' must map names to entries, e.g. terms: {mse: {...}}"),
        (lambda r: r.update(training=None), "training must be a mapping, got null"),
        (lambda r: r.update(baselines={"jpeg": 10}), "baselines must be a mapping of names to lists of whole numbers, got {'jpeg': 10}"),
        (lambda r: r.update(interval=1.5), "interval must be in (0, 1) and bootstrap >= 1, got 1.5 and 50"),
        (lambda r: r.update(seeds=[1, 1]), "seeds must be distinct and at least one, got [1, 1]"),
        (lambda r: r["tasks"]["judge"].update(metrics=[]), "tasks.judge.metrics must name at least one metric"),
        (
            lambda r: r["tasks"]["judge"].update(dataset=5),
            "tasks.judge.dataset must be a text or a list of texts or mappings or null, got 5",
        ),
        (
            lambda r: r.update(codecs={"tiny": {"codec": "bmshj2018-hyperprior", "qualty": 2}}),
            "unknown key 'qualty' in codecs.tiny; did you mean 'quality'?",
        ),
        (lambda r: r.update(codecs={"tiny": {"quality": 2}}), "codecs.tiny lacks the key 'codec'"),
        (lambda r: r.pop("steps"), "the recipe lacks the key 'steps'"),
        (lambda r: r.update(steps=None), "steps must be a whole number, got null"),
        (lambda r: r["codecs"]["tiny"].update(codec=None), "codecs.tiny.codec must be a text, got null"),
    ],
)
def test_values_of_the_wrong_type_name_their_key_and_what_they_must_be(edit, message):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    edit(recipe)
    with pytest.raises(ConfigError) as err:
        parse_recipe(recipe)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_recipe_yaml_reads_back_to_the_same_recipe(path, tmp_path):
    recipe = load_recipe(path)
    written = tmp_path / "recipe.yaml"
    written.write_text(yaml.safe_dump(recipe_data(recipe), sort_keys=False))  # as run_experiment writes it
    assert load_recipe(written) == recipe


def test_a_task_judges_several_folders_as_one_dataset(tmp_path):
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    folders = [{"root": "../shared/data/imagenet-sample", "classes": "1/2"}, "../shared/data/imagenet-judge"]
    recipe["tasks"]["judge"]["dataset"] = folders
    parsed = parse_recipe(recipe)
    assert parsed.tasks[0].dataset == tuple(folders)
    written = tmp_path / "recipe.yaml"
    written.write_text(yaml.safe_dump(recipe_data(parsed), sort_keys=False))
    assert load_recipe(written) == parsed


def test_training_options_pass_through_untouched():
    # mocodec train's own parser reads them per run: a class_path stays as written, not a built class's defaults.
    recipe = load_recipe(RECIPES / "tiny.yaml")
    assert recipe.training["model"]["optimizer"] == {"class_path": "torch.optim.Adam", "init_args": {"lr": 1.0e-3}}
    assert recipe.terms[1].distortions == {"mse": 1.0, "msssim": 0.5} and recipe.codecs[0].kwargs == {"N": 8, "M": 12}


def test_shipped_recipes_load():
    small = load_recipe(RECIPES / "offline_small.yaml")
    assert len(compared_runs(small)) == 18 and len(small.seeds) >= 2 and all(len(t.lmbdas) == 3 for t in small.terms)
    assert [t.label for t in small.terms] == ["mse", "mse+featsim", "msssim"]
    # The judge is not the network the feature term is computed with.
    feature_net = small.terms[1].distortions["ml-featsim"]["model"]
    assert feature_net == "efficientnet-lite0" and small.tasks[0].options["model"] == "efficientnet_lite1"
    assert small.terms[1].balance_warmup is not None and small.tasks[0].metrics[0] == "kl"
    paper = load_recipe(RECIPES / "paper.yaml")
    assert [c.codec for c in paper.codecs] == ["mlicpp", "bmshj2018-hyperprior"]
    assert [(t.label, t.task) for t in paper.tasks] == [
        ("imagenet", "classification"),
        ("voc", "detection"),
        ("coco", "detection"),
        ("seed-bench", "vlm-qa"),
        ("pope", "vlm-qa"),
    ]
    assert paper.terms[1].distortions["ml-clipsim"]["model"] == "ViT-B-32" and len(compared_runs(paper)) == 2 * 2 * 6 * 3


def test_one_quality_per_rate_point():
    """codecs.X.qualities: the i-th λ of every term trains (and, with init_weights: pretrained, starts from) the i-th quality."""
    recipe = yaml.safe_load((RECIPES / "tiny.yaml").read_text())
    codec = next(iter(recipe["codecs"]))
    recipe["codecs"][codec]["qualities"] = [1, 2]
    for term in recipe["terms"].values():
        term["lmbdas"] = [term["lmbdas"][0], term["lmbdas"][0] * 2]
    parsed = parse_recipe(recipe)
    runs = compared_runs(parsed)
    for run in runs:
        assert run.quality == [1, 2][run.term.lmbdas.index(run.lmbda)]
        assert run.config(parsed, Path("out"))["model"]["quality"] == run.quality
    recipe["codecs"][codec]["qualities"] = [1, 2, 3]
    with pytest.raises(
        ConfigError, match=rf"^codecs\.{codec}\.qualities has 3 entries but terms\.\S+\.lmbdas 2: give one quality per rate point$"
    ):
        parse_recipe(recipe)
