"""``mocodec.utils.options``: KEY=VALUE texts and options checked against a factory's signature."""

from __future__ import annotations

import pytest

from mocodec.errors import ConfigError
from mocodec.utils.options import accepted_options, check_options, parse_key_values, unknown_options


def factory(root, model="a", *, batch_size=8):
    """A task-like factory: ``root`` is filled by the caller, never an option."""


class Judge:
    def __init__(self, weights=None):
        pass


def test_accepted_and_unknown_options():
    assert accepted_options(factory) == ["model", "batch_size"]
    assert accepted_options(Judge) == ["weights"]
    assert accepted_options(lambda **kwargs: None) is None
    assert unknown_options(factory, {"modle": 1, "model": 2, "conf": 3}) == ["modle", "conf"]
    assert unknown_options(lambda x, **kwargs: None, {"anything": 1}) == []


def test_check_options_names_the_first_unknown_and_the_accepted_ones():
    check_options(factory, {"model": "b", "batch_size": 4}, "task t")
    with pytest.raises(ConfigError, match=r"^task t takes no option 'conf'; its options: model, batch_size$"):
        check_options(factory, {"model": "b", "conf": 0.5, "split": 1}, "task t")
    with pytest.raises(ConfigError, match=r"^the dataset takes no option 'split'; its options: none$"):
        check_options(lambda root: None, {"split": "val"}, "the dataset")
    check_options(lambda **kwargs: None, {"split": "val"}, "the dataset")


def test_parse_key_values_reads_yaml_scalars():
    values = parse_key_values(
        ["batch_size=64", "half=true", "conf=0.25", "name=yolo11n", "labels=", " agreement-conf = 0"], "--task-option"
    )
    assert values == {"batch_size": 64, "half": True, "conf": 0.25, "name": "yolo11n", "labels": None, "agreement_conf": 0}
    assert parse_key_values(["conf=1e-9"], "--task-option") == {"conf": "1e-9"}  # YAML 1.1: no dot, no float; tasks convert numbers


@pytest.mark.parametrize("text", ["batch_size", "=64", " =64"])
def test_parse_key_values_refuses_text_without_a_key(text):
    with pytest.raises(ConfigError, match=rf"^--dataset-option takes KEY=VALUE, got '{text}'$"):
        parse_key_values([text], "--dataset-option")
