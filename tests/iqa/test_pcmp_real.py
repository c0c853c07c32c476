"""A small real PCMP build: scikit-image photographs judged by the three EfficientNet-Lite voters (slow)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mocodec.data.embedded import write_split
from mocodec.iqa.distortions import CodecFamily, CodecSpec, create_family
from mocodec.iqa.pcmp import BuildSettings, build_pcmp
from mocodec.iqa.voting import create_voter

VOTERS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@pytest.mark.slow
def test_real_build_counts_votes_and_identical_images_tie(tmp_path):
    references = tmp_path / "photos"
    for path in write_split(tmp_path / "all", "val")[:3]:  # astronaut, chelsea, coffee
        references.mkdir(exist_ok=True)
        path.rename(references / path.name)
    families = [create_family(s) for s in ("jpeg=5,10,20,40", "gaussian-blur=1,2,3", "gaussian-noise=0.04,0.08,0.12", "contrast=0.6,0.4")]
    # a second JPEG family under another name: its images equal JPEG's, so each such pair is
    # matched (0 dB apart, different "types") and every voter must see a tie
    families.append(CodecFamily(CodecSpec("jpeg", label="jpeg"), (10,), name="jpeg-copy"))
    voters = [create_voter(v) for v in VOTERS]
    summary = build_pcmp(references, tmp_path / "pcmp", families, voters, BuildSettings(tolerance=0.5, max_size=256))
    with open(tmp_path / "pcmp" / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary["references"] == 3 and summary["images"] == 3 * 13 and len(rows) == summary["pairs"]
    names = [v.replace("_", "-") for v in VOTERS]
    votes = np.array([[float(r[f"vote:{n}"]) for n in names] for r in rows])
    assert votes.shape == (len(rows), 3) and set(np.unique(votes)) <= {0.0, 0.5, 1.0}
    assert np.array([float(r["label"]) for r in rows]) == pytest.approx(votes.mean(1))
    copies = [k for k, r in enumerate(rows) if {r["type_a"], r["type_b"]} == {"jpeg", "jpeg-copy"} and r["level_a"] == r["level_b"]]
    assert len(copies) == 3  # one per reference
    assert (votes[copies] == 0.5).all() and all(rows[k]["label"] == "0.5" for k in copies)
    others = np.delete(votes, copies, axis=0)
    assert (others != 0.5).mean() > 0.9  # real distortions rarely tie
    print(json.dumps({k: summary[k] for k in ("pairs", "pairs_per_tolerance", "voters", "voter_agreement", "labels")}, indent=1))
