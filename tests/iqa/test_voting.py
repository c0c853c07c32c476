"""Prediction-consistency votes on tiny voters with hand-computed expected labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocodec.errors import ConfigError
from mocodec.iqa.voting import TaskVoter, Voter, VoteRule, consistency, create_voter, soft_label

# Each voter's class distributions on the reference r, image A and image B.
OUTPUTS = {
    # keeps top-1 on A only -> rule 1: votes A
    "v1": {"r": [0.7, 0.2, 0.1], "a": [0.6, 0.3, 0.1], "b": [0.3, 0.6, 0.1]},
    # keeps top-1 on both; KL(r||A) = 0.4·ln(4/3) + 0.1·ln(1/2) = 0.045758,
    # KL(r||B) = 0.5·ln(10/9) + 0.4·ln(8/9) = 0.005567 -> rule 2: votes B
    "v2": {"r": [0.5, 0.4, 0.1], "a": [0.5, 0.3, 0.2], "b": [0.45, 0.45, 0.1]},
    # the same output on A and B -> rule 3: a tie
    "v3": {"r": [0.2, 0.5, 0.3], "a": [0.3, 0.4, 0.3], "b": [0.3, 0.4, 0.3]},
    # keeps top-1 on neither; KL(r||A) = 0.1·ln(1/5) + 0.8·ln(8/3) + 0.1·ln(1/2) = 0.554405,
    # KL(r||B) = 0.1·ln(1/6) + 0.8·ln(8/3) = 0.605487 -> votes A
    "v4": {"r": [0.1, 0.8, 0.1], "a": [0.5, 0.3, 0.2], "b": [0.6, 0.3, 0.1]},
}


def votes_of(name: str, rule: VoteRule | None = None) -> tuple[float, object]:
    rule = rule or VoteRule()
    out = OUTPUTS[name]
    c = consistency(torch.tensor(out["r"]), torch.tensor([out["a"], out["b"]]))
    return float(rule.votes(c, [0], [1])[0]), c


def test_consistency_values_are_the_hand_computed_ones():
    _, c2 = votes_of("v2")
    _, c4 = votes_of("v4")
    assert c2.kl == pytest.approx([0.045758, 0.005567], abs=1e-6)
    assert c4.kl == pytest.approx([0.554405, 0.605487], abs=1e-6)
    assert c2.top1_match.tolist() == [True, True] and c4.top1_match.tolist() == [False, False]
    # cos(r, A) = 0.39 / (√0.42·√0.38) = 0.976221
    assert c2.cosine[0] == pytest.approx(0.976221, abs=1e-6)


def test_votes_and_soft_label_of_four_voters():
    votes = [votes_of(v)[0] for v in ("v1", "v2", "v3", "v4")]
    assert votes == [1.0, 0.0, 0.5, 1.0]
    assert soft_label(np.array([votes]).T).tolist() == [0.625]  # (1 + 0 + 1/2 + 1) / 4
    # cosine decides v2 and v4 the same way: cos(r,B) = 0.994026 > cos(r,A); cos(r,A) = 0.619013 > cos(r,B) = 0.562614
    assert [votes_of(v, VoteRule("cosine"))[0] for v in ("v1", "v2", "v3", "v4")] == [1.0, 0.0, 0.5, 1.0]


def test_identical_images_tie_even_with_last_bit_noise():
    # float64: a 1e-7 change of two probabilities moves the KL by ~2e-8, far below the 1e-6 tolerance
    p = torch.tensor([[0.3, 0.5, 0.2], [0.3, 0.5 + 1e-7, 0.2 - 1e-7]], dtype=torch.float64)
    c = consistency(torch.tensor([0.2, 0.6, 0.2], dtype=torch.float64), p)
    assert VoteRule().votes(c, [0, 1], [1, 0]).tolist() == [0.5, 0.5]
    assert VoteRule(tie_tolerance=0.0).votes(c, [0], [1]).tolist() != [0.5]


def test_a_classification_task_is_a_voter():
    voter = create_voter("test_efficientnet", pretrained=False)  # a tiny random timm model
    assert isinstance(voter, Voter) and voter.name == "test_efficientnet"
    images = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1)
    p = voter.probabilities(images)
    assert p.sum(1) == pytest.approx(torch.ones(3), abs=1e-5)
    c = consistency(p[0], p[1:])
    assert VoteRule().votes(c, [0], [1]).tolist() == [0.5]


def test_bad_voters_and_rules():
    with pytest.raises(ConfigError) as exc:
        TaskVoter("x", object())
    assert str(exc.value).endswith("predicts no class distributions; voters need probabilities(images)")
    with pytest.raises(ConfigError) as exc:
        VoteRule("l2")
    assert str(exc.value) == "unknown soft consistency 'l2'; use kl or cosine"
    with pytest.raises(ConfigError) as exc:
        consistency(torch.ones(3) / 3, torch.ones(2, 4) / 4)
    assert str(exc.value) == "voter outputs must be N x 3, got (2, 4)"
