"""The recipe of an experiment: what is trained, how it is judged, how the curves are compared.

A recipe is YAML (``configs/experiments/*.yaml``). :func:`parse_recipe` reads it into
:class:`Recipe` with jsonargparse, which checks every key and type against the dataclasses
below (the same library reads ``mocodec train``'s configs); it then checks what types cannot
say: names known to the registries, the anchor among the terms, steps that end on a
checkpoint, distinct seeds, ``training`` leaving the per-run keys to the recipe. Every
problem is one line that names the key.

The sections ``codecs``, ``terms`` and ``tasks`` map a label to an entry (``terms: {mse:
{...}}``); an entry's ``label`` is its key. :func:`recipe_data` writes a recipe back in
that layout (the results folder's ``recipe.yaml``), and :func:`parse_recipe` reads it back
to the same recipe.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, ArgumentParser

from mocodec.codecs import CODECS
from mocodec.errors import ConfigError
from mocodec.losses import DISTORTIONS
from mocodec.tasks import TASKS
from mocodec.utils.options import check_options

RECIPE_VERSION = 1
# The run's own choices in its LightningCLI config: a recipe sets them through codecs, terms and seeds.
# Free-form options passed on untouched (codec kwargs, distortions, task options, mocodec train's config):
# a bare ``dict``, so jsonargparse does not take a ``class_path`` inside one for a class to build.
Options = dict
RUN_MODEL_KEYS = ("codec", "quality", "codec_kwargs", "init_weights", "lmbda", "distortions", "balance_warmup")


@dataclass(frozen=True)
class PretrainEntry:
    """The starting point every run of a codec is fine-tuned from, trained by the recipe itself.

    Once per seed, the codec is trained for ``steps`` on ``distortions`` at ``lmbda``; every
    compared run of that codec and seed then starts from this checkpoint (fresh optimisers)
    and trains ``steps`` of its own. It is the offline stand-in for ``init_weights:
    pretrained`` (published MSE weights): short compared runs start from a working codec
    instead of from noise, and every term gets the same start and the same steps.
    """

    steps: int
    lmbda: float
    distortions: Options = field(default_factory=lambda: {"mse": 1.0})


@dataclass(frozen=True)
class CodecEntry:
    """A codec architecture every term is trained on (``codec`` is a registry name).

    ``qualities``: one quality per rate point, instead of ``quality`` for all: the i-th λ of
    every term trains the codec at its i-th quality -- with ``init_weights: pretrained``, from
    that quality's weights (e.g. each λ fine-tunes the shipped weights trained at a neighbouring λ).
    """

    label: str
    codec: str
    quality: int = 3
    qualities: tuple[int, ...] | None = None
    kwargs: Options = field(default_factory=dict)
    init_weights: str | None = None  # start every run from these weights (a file, or ``pretrained``)
    pretrain: PretrainEntry | None = None  # fine-tune every run from a base trained by the recipe (after init_weights)


@dataclass(frozen=True)
class TermEntry:
    """A distortion term set: ``RateDistortionLoss``'s ``distortions`` at each λ.

    ``balance_warmup``: steps before the terms are balanced (null: not balanced; a single
    term needs none). The first listed distortion is the reference of balancing.

    ``start_from``: another term's label: each run of this term is fine-tuned (fresh optimisers)
    from that term's finished run at the same λ and seed -- e.g. a feature term from the MSE codec
    it is measured against -- and trains ``steps`` of its own (default: the recipe's ``steps``).
    """

    label: str
    distortions: Options
    lmbdas: tuple[float, ...]
    balance_warmup: int | None = None
    start_from: str | None = None
    steps: int | None = None


@dataclass(frozen=True)
class TaskEntry:
    """A task judging the decoded images: a registry task with its options and dataset.

    ``metrics``: the rate-dependent metrics to analyse; the first is the primary measure.
    """

    label: str
    task: str
    metrics: tuple[str, ...]
    options: Options = field(default_factory=dict)
    dataset: str | tuple[str | dict, ...] | None = None  # a folder, or several judged as one (mocodec.data.samples)
    dataset_options: Options = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """An experiment (see :mod:`mocodec.experiment`); :func:`load_recipe` reads it from YAML.

    Args:
        name: the experiment's name (W&B group, default output folder ``experiments/<name>``).
        codecs / terms / tasks: named entries (:class:`CodecEntry`, :class:`TermEntry`, :class:`TaskEntry`).
        anchor: the term every curve is compared against (BD tables).
        seeds: training seeds; each (codec, term, λ) is trained once per seed.
        steps: training steps of every run (equal steps).
        checkpoints: validations (each writing ``last.ckpt``) per run: where an interrupted run resumes.
        training: the LightningCLI config shared by every run (``mocodec train``'s schema:
            ``trainer``, ``model``, ``data``); the recipe fills in codec, λ, terms, seed and steps.
        baselines: classic codec name -> qualities, drawn beside (and BD-compared).
        bootstrap: resamples of the intervals; interval: their coverage.
        chunk_size: images per chunk of the sweep.
        workers: coding processes of the sweep (``eval-task --workers``): the judge works while they code.
        wandb: log to W&B (offline unless ``WANDB_MODE`` says otherwise).
    """

    name: str
    codecs: tuple[CodecEntry, ...]
    terms: tuple[TermEntry, ...]
    tasks: tuple[TaskEntry, ...]
    anchor: str
    seeds: tuple[int, ...]
    steps: int
    description: str = ""
    checkpoints: int = 4
    training: Options = field(default_factory=dict)
    baselines: dict[str, tuple[int, ...]] = field(default_factory=dict)
    bootstrap: int = 1000
    interval: float = 0.95
    chunk_size: int = 16
    workers: int = 0
    wandb: bool = True

    def method(self, codec: CodecEntry, term: TermEntry) -> str:
        """The name of a (codec, term) curve: the term alone when there is one codec."""
        return term.label if len(self.codecs) == 1 else f"{codec.label}/{term.label}"


# The named sections: in YAML a mapping label -> entry, in a Recipe a tuple of entries.
NAMED = {"codecs": CodecEntry, "terms": TermEntry, "tasks": TaskEntry}


# --------------------------------------------------------------------------- reading


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"recipe {path} is not readable YAML ({type(exc).__name__}); check the file") from None
    try:
        return parse_recipe(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_recipe(data: Any, where: str = "the recipe") -> Recipe:
    """A :class:`Recipe` from plain data (YAML's); unknown or missing keys and bad values are one-line errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    data = _labelled(data)
    parser = _parser(Recipe)
    try:
        parsed = vars(parser.instantiate(parser.parse_object(copy.deepcopy(data))))  # it writes into what it is given
    except ArgumentError as exc:
        raise ConfigError(_problem(Recipe, data, (), exc, where)) from None
    fields = {f.name: parsed[f.name] for f in dataclasses.fields(Recipe)}
    recipe = Recipe(**{**fields, **{key: tuple(fields[key].values()) for key in NAMED}})
    _check_nulls(recipe, ())
    validate(recipe)
    return recipe


def _labelled(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each named entry's label (its key) written into the entry, as the dataclasses hold it."""
    data = dict(data)
    for key in NAMED:
        section = data.get(key)
        if not isinstance(section, Mapping):
            continue  # the parser says what is wrong with it
        entries = {}
        for label, entry in section.items():
            if isinstance(entry, Mapping):
                if "label" in entry:
                    raise ConfigError(f"unknown key 'label' in {key}.{label}; an entry's label is its key in {key}")
                entry = {"label": str(label), **entry}
            entries[str(label)] = entry
        data[key] = entries
    return data


def _hints(cls: type) -> dict[str, Any]:
    """The type of each field of ``cls`` as YAML writes it (a named section: a mapping of labels to entries)."""
    hints = typing.get_type_hints(cls)
    if cls is Recipe:
        hints.update({key: dict[str, entry] for key, entry in NAMED.items()})
    return hints


def _parser(cls: type) -> ArgumentParser:
    """A jsonargparse parser of ``cls``'s fields (named sections as mappings, see :func:`_hints`)."""
    parser = ArgumentParser(exit_on_error=False)
    named = set(NAMED) if cls is Recipe else set()
    parser.add_class_arguments(cls, nested_key=None, skip=named)
    for key in sorted(named):
        parser.add_argument(f"--{key}", type=_hints(cls)[key], required=True)
    return parser


def _entry_type(hint: Any) -> type | None:
    """The dataclass ``hint`` holds (``X`` or ``X | None``), if any."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _problem(cls: type, data: Any, path: tuple[str, ...], error: ArgumentError | None = None, top: str = "the recipe") -> str:
    """One line saying why ``data`` is not a ``cls`` (a dataclass), naming the key.

    jsonargparse found a problem (``error``) but names neither the label of a named entry
    nor a fix; so the data is parsed again level by level, down to the key at fault.
    """
    where = ".".join(path) or top
    if not isinstance(data, Mapping):
        return f"{where} must be a mapping of keys to values, got {type(data).__name__}"
    if error is None:
        parser = _parser(cls)
        try:
            parser.parse_object(copy.deepcopy(data))
            return ""
        except ArgumentError as exc:
            error = exc
    first = str(error).splitlines()[0]
    known = [f.name for f in dataclasses.fields(cls) if f.name != "label"]
    if match := re.match(r"Option '(.+)' is not accepted", first):
        key = match.group(1)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"unknown key '{key}' in {where}; {hint}"
    if match := re.match(r"the following arguments are required: ([\w-]+)", first):
        key = match.group(1)
        if key in data:  # given as null
            return f"{'.'.join((*path, key))} must be {_describe(_hints(cls)[key])}, got null"
        return f"{where} lacks the key '{key}'"
    if (match := re.match(r'Parser key "([\w-]+)"', first)) and match.group(1) in data:
        key = match.group(1)
        return _value_problem(_hints(cls)[key], data[key], (*path, key)) or f"{where}: {' '.join(str(error).split())}"
    return f"{where}: {' '.join(str(error).split())}"  # jsonargparse's own words, on one line


def _value_problem(hint: Any, value: Any, path: tuple[str, ...]) -> str:
    """Why ``value`` is not of type ``hint`` (one line), or "" if it is."""
    where = ".".join(path)
    entry = _entry_type(hint)
    if entry is not None and value is not None:
        return _problem(entry, value, path)
    if typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
        if not isinstance(value, Mapping):
            return f"'{where}' must map names to entries, e.g. {where}: {{mse: {{...}}}}"
        return next(filter(None, (_problem(typing.get_args(hint)[1], v, (*path, k)) for k, v in value.items())), "")
    return f"{where} must be {_describe(hint)}, got {value!r}"


def _describe(hint: Any, plural: bool = False) -> str:
    """Plain words for a field's type: 'a list of whole numbers'."""
    if _is_union(hint):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(options) < len(typing.get_args(hint))
        return " or ".join(_describe(a, plural) for a in options) + (" or null" if nullable else "")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return ("lists" if plural else "a list") + f" of {_describe(args[0], plural=True)}"
    if hint is dict or origin is dict:
        values = f" of names to {_describe(args[1], plural=True)}" if args else ""
        return ("mappings" if plural else "a mapping") + values
    words = {
        int: ("a whole number", "whole numbers"),
        float: ("a number", "numbers"),
        str: ("a text", "texts"),
        bool: ("true or false", "true or false"),
    }
    singular, many = words.get(hint, (getattr(hint, "__name__", str(hint)), getattr(hint, "__name__", str(hint))))
    return many if plural else singular


def _check_nulls(entry: Any, path: tuple[str, ...]) -> None:
    """Refuse null where a field is not optional (jsonargparse lets null through for fields with defaults)."""
    hints = typing.get_type_hints(type(entry))
    for f in dataclasses.fields(entry):
        value, where = getattr(entry, f.name), (*path, f.name)
        if value is None and not _is_union(hints[f.name]):
            raise ConfigError(f"{'.'.join(where)} must be {_describe(hints[f.name])}, got null")
        if dataclasses.is_dataclass(value):
            _check_nulls(value, where)
        elif isinstance(value, tuple):
            for item in filter(dataclasses.is_dataclass, value):
                _check_nulls(item, (*where, item.label))


# --------------------------------------------------------------------------- checks types cannot express


def validate(recipe: Recipe) -> None:
    """What the types cannot say: registry names, the anchor, steps and checkpoints, seeds, reserved training keys."""
    for key in NAMED:
        if not getattr(recipe, key):
            raise ConfigError(f"'{key}' must map names to entries, e.g. {key}: {{mse: {{...}}}}")
    for codec in recipe.codecs:
        CODECS.get(codec.codec)  # unknown names list the known ones
        if codec.pretrain is not None and (codec.pretrain.steps < 1 or codec.pretrain.lmbda <= 0):
            raise ConfigError(
                f"codecs.{codec.label}.pretrain needs steps >= 1 and lmbda > 0, "
                f"got steps={codec.pretrain.steps}, lmbda={codec.pretrain.lmbda}"
            )
    _check_starts(recipe)
    for term in recipe.terms:
        if not term.lmbdas:
            raise ConfigError(f"terms.{term.label}.lmbdas must be a list of numbers, got []")
        if term.steps is not None and term.steps < 1:
            raise ConfigError(f"terms.{term.label}.steps must be >= 1 (or null: the recipe's steps), got {term.steps}")
        for codec in recipe.codecs:
            if codec.qualities is not None and len(codec.qualities) != len(term.lmbdas):
                raise ConfigError(
                    f"codecs.{codec.label}.qualities has {len(codec.qualities)} entries but terms.{term.label}.lmbdas "
                    f"{len(term.lmbdas)}: give one quality per rate point"
                )
    sets = [(f"terms.{t.label}", t.distortions) for t in recipe.terms]
    sets += [(f"codecs.{c.label}.pretrain", c.pretrain.distortions) for c in recipe.codecs if c.pretrain is not None]
    for where, distortions in sets:
        if not distortions:
            raise ConfigError(f"{where}.distortions must map distortion names to weights, e.g. {{mse: 1.0}}")
        for name in distortions:
            DISTORTIONS.get(name)
    for task in recipe.tasks:
        if not task.metrics:
            raise ConfigError(f"tasks.{task.label}.metrics must name at least one metric, e.g. [kl, agreement]")
        check_options(TASKS.get(task.task), dict(task.options), f"tasks.{task.label}: task {task.task}")
    for codec, qualities in recipe.baselines.items():
        CODECS.get(codec)
        if not qualities:
            raise ConfigError(f"baselines.{codec} must be a list of whole numbers, got []")
    if recipe.anchor not in [t.label for t in recipe.terms]:
        raise ConfigError(f"anchor '{recipe.anchor}' is not a term; the terms are: {', '.join(t.label for t in recipe.terms)}")
    if recipe.steps < 1 or not 1 <= recipe.checkpoints <= recipe.steps:
        raise ConfigError(
            f"steps must be >= 1 and checkpoints between 1 and steps, got steps={recipe.steps}, checkpoints={recipe.checkpoints}"
        )
    for where, steps in (
        [("steps", recipe.steps)]
        + [(f"codecs.{c.label}.pretrain.steps", c.pretrain.steps) for c in recipe.codecs if c.pretrain is not None]
        + [(f"terms.{t.label}.steps", t.steps) for t in recipe.terms if t.steps is not None]
    ):
        if steps < recipe.checkpoints or steps % recipe.checkpoints:
            raise ConfigError(
                f"{where} ({steps}) must be a multiple of checkpoints ({recipe.checkpoints}), so the last checkpoint is the last step"
            )
    if recipe.workers < 0:
        raise ConfigError(f"workers must be >= 0 (0: code in the judge's process), got {recipe.workers}")
    if not recipe.seeds or len(set(recipe.seeds)) != len(recipe.seeds):
        raise ConfigError(f"seeds must be distinct and at least one, got {list(recipe.seeds)}")
    model = recipe.training.get("model", {})
    if not isinstance(model, Mapping):
        raise ConfigError("training.model must be a mapping of mocodec train's model keys")
    fixed = {"seed_everything", "ckpt_path"} & set(recipe.training)
    fixed |= {f"model.{k}" for k in RUN_MODEL_KEYS if k in model}
    if fixed:
        raise ConfigError(f"training sets {sorted(fixed)[0]}, which the recipe decides per run; set it through codecs, terms or seeds")
    if not 0 < recipe.interval < 1 or recipe.bootstrap < 1:
        raise ConfigError(f"interval must be in (0, 1) and bootstrap >= 1, got {recipe.interval} and {recipe.bootstrap}")


def _check_starts(recipe: Recipe) -> None:
    """A term's ``start_from`` names another term that has each of its λ at the same quality, without a cycle."""
    terms = {t.label: t for t in recipe.terms}
    for term in recipe.terms:
        if term.start_from is None:
            continue
        where = f"terms.{term.label}.start_from"
        base = terms.get(term.start_from)
        if base is None or base is term:
            others = ", ".join(label for label in terms if label != term.label) or "none"
            raise ConfigError(f"{where} must name another term to fine-tune from, got '{term.start_from}'; the other terms: {others}")
        missing = [f"{lmbda:g}" for lmbda in term.lmbdas if lmbda not in base.lmbdas]
        if missing:
            raise ConfigError(f"{where}: term {base.label} has no run at λ {', '.join(missing)} to start from; give it those λ")
        for codec in recipe.codecs:
            if codec.qualities is not None and any(
                codec.qualities[term.lmbdas.index(x)] != codec.qualities[base.lmbdas.index(x)] for x in term.lmbdas
            ):
                raise ConfigError(f"{where}: a λ of {term.label} has another quality than in {base.label}; list the λ in the same order")
        seen, current = {term.label}, base
        while current.start_from is not None:
            if current.start_from in seen:
                raise ConfigError(f"{where}: the terms start from each other in a cycle ({' -> '.join([*seen, current.start_from])})")
            seen.add(current.label)
            current = terms[current.start_from]


# --------------------------------------------------------------------------- writing


def recipe_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data, in the YAML layout :func:`parse_recipe` reads."""
    data = dataclasses.asdict(recipe)
    for key in NAMED:
        data[key] = {entry.pop("label"): entry for entry in data[key]}
    for term in data["terms"].values():
        term["lmbdas"] = list(term["lmbdas"])
    for task in data["tasks"].values():
        task["metrics"] = list(task["metrics"])
    data["seeds"] = list(data["seeds"])
    data["baselines"] = {k: list(v) for k, v in data["baselines"].items()}
    return data


__all__ = [
    "RECIPE_VERSION",
    "PretrainEntry",
    "CodecEntry",
    "TermEntry",
    "TaskEntry",
    "Recipe",
    "load_recipe",
    "parse_recipe",
    "validate",
    "recipe_data",
]
