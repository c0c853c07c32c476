"""The one results format: files of earlier versions and CompressAI's published curves still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mocodec.errors import ConfigError, OutputExistsError
from mocodec.evaluation.results import FORMAT, VERSION, Results, new_document, read_curves, read_document
from mocodec.evaluation.sweep import merge_files

REPO = Path(__file__).resolve().parents[2]
# An eval-task file of version 2, as the offline_small experiment wrote it (committed with its report).
EVAL_TASK_V2 = REPO / "docs" / "experiments" / "offline_small" / "results" / "lite1.json"

# An eval-rd file as mocodec wrote it before the sweeps shared one format: CompressAI's schema, records keyed by image.
EVAL_RD = {
    "name": "jpeg",
    "description": "mocodec eval-rd of jpeg on kodak (x86_64, torch 2.14.1)",
    "results": {
        "quality": [20, 80],
        "num_images": [2, 2],
        "bpp": [0.5, 1.5],
        "bpp-estimated": [None, None],
        "psnr-rgb": [28.0, 34.0],
        "ms-ssim": [0.9, 0.98],
        "encoding_time": [0.01, 0.01],
        "decoding_time": [0.01, 0.01],
    },
    "skipped": [["/data/kodak/broken.png", "not an image"]],
    "per_image": [
        {
            "image": "a.png",
            "quality": 20,
            "bytes": 100,
            "bpp": 0.4,
            "bpp-estimated": None,
            "psnr-rgb": 27.0,
            "ms-ssim": 0.89,
            "msssim_window": 11,
            "encoding_time": 0.01,
            "decoding_time": 0.01,
        },
        {
            "image": "b.png",
            "quality": 20,
            "bytes": 150,
            "bpp": 0.6,
            "bpp-estimated": None,
            "psnr-rgb": 29.0,
            "ms-ssim": 0.91,
            "msssim_window": 11,
            "encoding_time": 0.01,
            "decoding_time": 0.01,
        },
        {
            "image": "a.png",
            "quality": 80,
            "bytes": 350,
            "bpp": 1.4,
            "bpp-estimated": None,
            "psnr-rgb": 33.0,
            "ms-ssim": 0.97,
            "msssim_window": 11,
            "encoding_time": 0.01,
            "decoding_time": 0.01,
        },
        {
            "image": "b.png",
            "quality": 80,
            "bytes": 400,
            "bpp": 1.6,
            "bpp-estimated": None,
            "psnr-rgb": 35.0,
            "ms-ssim": 0.99,
            "msssim_window": 11,
            "encoding_time": 0.01,
            "decoding_time": 0.01,
        },
    ],
}
# CompressAI's published layout (results/image/kodak/*.json): one curve, no per-image records.
PUBLISHED = {"name": "JPEG", "description": "published", "results": {"bpp": [0.3, 0.6, 1.0, 1.5], "psnr-rgb": [26.0, 29.0, 31.5, 34.0]}}


def test_an_eval_rd_file_of_the_old_format_loads_as_one_curve(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps(EVAL_RD))
    doc = read_document(path)
    assert (doc["mocodec"], doc["version"], doc["task"], doc["fidelity"]) == (
        FORMAT,
        VERSION,
        {"name": "fidelity"},
        ["psnr-rgb", "ms-ssim", "bpp-estimated"],
    )
    (entry,) = doc["entries"]
    assert entry["name"] == "jpeg" and entry["results"] == EVAL_RD["results"]
    assert [(r["id"], r["point"]) for r in entry["per_image"]] == [("a.png", "20"), ("b.png", "20"), ("a.png", "80"), ("b.png", "80")]
    assert doc["skipped"] == [{"id": "broken.png", "reason": "not an image"}]  # its absolute path is not carried over
    # and it merges (recomputed means equal the file's)
    merged = merge_files([path])
    assert merged["entries"][0]["results"]["bpp"] == pytest.approx([0.5, 1.5])
    assert merged["entries"][0]["results"]["psnr-rgb"] == pytest.approx([28.0, 34.0])


def test_an_eval_task_file_of_version_2_loads_and_resumes(tmp_path):
    original = json.loads(EVAL_TASK_V2.read_text())
    assert (original["mocodec"], original["version"]) == ("eval-task", 2)
    doc = read_document(EVAL_TASK_V2)
    assert doc["fidelity"] == ["psnr-rgb"] and doc["task"] == original["task"]
    assert [e["name"] for e in doc["entries"]] == [e["name"] for e in original["entries"]]
    assert doc["entries"][0]["per_image"] == original["entries"][0]["per_image"]
    assert doc["metrics"]["kl"]["higher_is_better"] is False
    # a sweep of the same task, dataset and fidelity resumes it; another fidelity is refused with the fix
    copy = tmp_path / "lite1.json"
    copy.write_text(EVAL_TASK_V2.read_text())
    same = new_document(doc["task"], doc["dataset"], ["psnr-rgb"], {m: v for m, v in doc["metrics"].items() if m != "psnr-rgb"})
    assert Results.open(copy, same).num_records() == sum(len(e["per_image"]) for e in original["entries"])
    other = new_document(doc["task"], doc["dataset"], ["psnr-rgb", "ms-ssim"], {})
    with pytest.raises(OutputExistsError) as err:
        Results.open(copy, other)
    assert str(err.value) == (
        f"{copy} holds records of the fidelity metrics psnr-rgb; pass --fidelity psnr-rgb to resume it, "
        "--force to overwrite it, or choose another --out"
    )


def test_published_compressai_curves_are_read_as_curves(tmp_path):
    (tmp_path / "jpeg.json").write_text(json.dumps(PUBLISHED))
    (tmp_path / "old.json").write_text(json.dumps(EVAL_RD))
    entries, metrics = read_curves([tmp_path / "jpeg.json", tmp_path / "old.json"])
    assert [e["name"] for e in entries] == ["JPEG", "jpeg"]
    assert metrics["psnr-rgb"]["higher_is_better"] is True
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match=r"is neither a mocodec results file nor in CompressAI's schema$"):
        read_curves([tmp_path / "notes.json"])
    with pytest.raises(ConfigError, match=r"cannot be merged or resumed$"):
        read_document(tmp_path / "jpeg.json")
