"""Sharded evaluation: shards partition the dataset; merged shards equal the single-process file; bad merges fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mocodec.errors import ConfigError, OutputExistsError
from mocodec.evaluation.crops import crops_folder, read_index
from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.results import merge_documents, write_results
from mocodec.evaluation.shards import Shard
from mocodec.evaluation.sweep import FidelityOnly, evaluate, merge_files
from mocodec.tasks import create_task

TIMES = ("encoding_time", "decoding_time")  # measured, so they differ between any two runs


def without_times(doc: dict) -> dict:
    """``doc`` with every timing (per-image and per-point means) removed; everything else must match exactly."""
    doc = json.loads(json.dumps(doc))
    for entry in doc.get("entries", [doc]):
        for r in entry["per_image"]:
            for key in TIMES:
                r.pop(key)
        for key in TIMES:
            entry["results"].pop(key)
    return doc


@pytest.fixture(scope="module")
def judge():
    # Batch size 1: a record is then bit-identical however images are grouped (sweep docstring).
    return create_task("classification", model="test_efficientnet", pretrained=False, batch_size=1)


@pytest.fixture
def images(tmp_path, astronaut) -> Path:
    """Five 64 x 64 tiles of a real photo (two in a sub-folder) and one broken file."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        Image.fromarray(astronaut[64 * i : 64 * i + 64, 128:192]).save(folder / ("sub" if i % 2 else ".") / f"tile{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def test_shards_partition_sorted_ids_round_robin():
    items = ["d", "a", "e", "c", "b"]
    parts = [Shard(i, 3).select(items, key=str) for i in range(3)]
    assert parts == [["a", "d"], ["b", "e"], ["c"]]
    assert Shard.parse(" 2/3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    assert Shard(1, 4).part_path("runs/out.json") == Path("runs/out.shard-1-of-4.json")


@pytest.mark.parametrize(
    "text, message",
    [
        ("3/3", "shard 3/3 does not exist; write I/N with 0 <= I < N, e.g. 0/4 ... 3/4"),
        ("1", "cannot read shard '1'; write I/N with 0 <= I < N, e.g. --shard 0/4"),
    ],
)
def test_bad_shard_text(text, message):
    with pytest.raises(ConfigError) as err:
        Shard.parse(text)
    assert str(err.value) == message


def test_torchrun_environment(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert Shard.from_environment() == Shard(2, 4)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Shard.from_environment() is None


def _task_shards(tmp_path, images, judge, curves, count=2):
    paths = []
    for i in range(count):
        path = tmp_path / f"part{i}.json"
        evaluate(judge, curves, path, images, shard=Shard(i, count), chunk_size=2)
        paths.append(path)
    return paths


def test_task_shards_merge_into_the_single_process_file(tmp_path, images, judge):
    curves = plan_curves(["jpeg"], ["jpeg=20,60"])
    single = evaluate(judge, curves, tmp_path / "single.json", images, chunk_size=4).doc
    paths = _task_shards(tmp_path, images, judge, curves)
    docs = [json.loads(p.read_text()) for p in paths]
    assert [d["shard"] for d in docs] == [{"index": 0, "count": 2}, {"index": 1, "count": 2}]
    assert sum(len(d["entries"][0]["per_image"]) for d in docs) == 2 * 5  # 5 readable images x 2 points, split
    merged = merge_files(paths)
    assert without_times(merged) == without_times(json.loads((tmp_path / "single.json").read_text()))
    assert "shard" not in merged and merged["skipped"] == single["skipped"] and len(merged["skipped"]) == 1
    # Means come from the merged records, not from the shards' means.
    records = [r for r in merged["entries"][0]["per_image"] if r["point"] == "20"]
    kl = sum(r["kl"] for r in records) / len(records)
    assert merged["entries"][0]["results"]["kl"][merged["entries"][0]["results"]["point"].index("20")] == kl


def test_resuming_a_shard_file_with_another_shard_is_refused(tmp_path, images, judge):
    curves = plan_curves(["jpeg"], ["jpeg=20"])
    evaluate(judge, curves, tmp_path / "part0-of-2.json", images, shard=Shard(0, 2))
    with pytest.raises(OutputExistsError) as err:
        evaluate(judge, curves, tmp_path / "part0-of-2.json", images, shard=Shard(1, 2))
    assert str(err.value) == (
        f"{tmp_path / 'part0-of-2.json'} holds the results of shard 0/2, not 1/2; pass --force to overwrite it, or choose another --out"
    )


def eval_rd(codec: str, qualities: str, images: Path, out: Path, shard: Shard | None = None) -> dict:
    """eval-rd's sweep: no judge, fidelity only."""
    return evaluate(
        FidelityOnly(), plan_curves([codec], [qualities]), out, images, shard=shard, fidelity=("psnr-rgb", "ms-ssim", "bpp-estimated")
    ).doc


def test_rd_shards_merge_into_the_single_process_file(tmp_path, images):
    single = json.loads(json.dumps(eval_rd("jpeg", "20,80", images, tmp_path / "single.json")))
    ids = ["sub/tile1.png", "sub/tile3.png", "tile0.png", "tile2.png", "tile4.png"]
    assert [r["id"] for r in single["entries"][0]["per_image"][:5]] == ids
    parts = [(f"part{i}", json.loads(json.dumps(eval_rd("jpeg", "20,80", images, tmp_path / f"p{i}.json", Shard(i, 2))))) for i in range(2)]
    assert without_times(merge_documents(parts, FidelityOnly().summarize)) == without_times(single)


def _write(tmp_path, name, doc) -> str:
    write_results(tmp_path / name, doc)
    return str(tmp_path / name)


def test_bad_merges_fail_with_one_line(tmp_path, images, judge):
    curves = plan_curves(["jpeg"], ["jpeg=20"])
    a, b = (str(p) for p in _task_shards(tmp_path, images, judge, curves))
    doc_a = json.loads(Path(a).read_text())

    def fails(paths) -> str:
        with pytest.raises(ConfigError) as err:
            merge_files(paths)
        return str(err.value)

    assert fails([a]) == "shard 1/2 is missing (1 of 2 given); pass every shard's file"
    assert fails([a, a]) == f"{a} and {a} are both shard 0/2; give each shard once"
    overlap = _write(tmp_path, "overlap.json", {**doc_a, "shard": {"index": 1, "count": 2}})
    assert fails([a, overlap]) == (
        f"{a} and {overlap} both hold image '{doc_a['entries'][0]['per_image'][0]['id']}' "
        "of curve 'jpeg' point 20: the files overlap; give each shard once"
    )
    other_task = _write(
        tmp_path, "task.json", {**json.loads(Path(b).read_text()), "task": {"name": "classification", "model": "x", "weights": "random"}}
    )
    assert fails([a, other_task]).startswith(f"{a} and {other_task} hold results of different tasks (")
    doc_b = json.loads(Path(b).read_text())
    doc_b["entries"][0]["points"]["20"]["weights"] = "ffff"
    other_codec = _write(tmp_path, "codec.json", doc_b)
    assert fails([a, other_codec]) == (
        f"curve 'jpeg' point 20 was coded with different codecs in {a} and {other_codec} (jpeg weights ffff); merge files of one run"
    )
    assert fails([a, str(tmp_path / "nowhere.json")]) == (
        f"results file {tmp_path / 'nowhere.json'} does not exist; pass the files that eval-task/eval-rd wrote"
    )
    rd = str(tmp_path / "rd.json")
    eval_rd("jpeg", "20", images, tmp_path / "rd.json", Shard(1, 2))
    assert fails([a, rd]).startswith(f"{a} and {rd} hold results of different tasks (")
    rd_webp = str(tmp_path / "rd_webp.json")
    eval_rd("webp", "20", images, tmp_path / "rd_webp.json", Shard(0, 2))
    assert fails([rd_webp, rd]) == f"{rd_webp} and {rd} hold different curves (webp vs jpeg); merge files of one run"


# --------------------------------------------------------------------------- command line

TASK_ARGS = [
    "eval-task",
    "--model",
    "test_efficientnet",
    "--random-init",
    "--task-option",
    "batch_size=1",
    "--codecs",
    "jpeg",
    "--qualities",
    "jpeg=30",
]


def test_cli_shards_and_merge_equal_one_run(cli, tmp_path, images):
    # The single run goes through the console script too: same process setup (threads), same float bits.
    done = cli(*TASK_ARGS, "--dataset", str(images), "--out", str(tmp_path / "single.json"))
    assert done.returncode == 0, done.stderr
    single = json.loads((tmp_path / "single.json").read_text())
    for i in range(2):
        done = cli(*TASK_ARGS, "--dataset", str(images), "--shard", f"{i}/2", "--out", str(tmp_path / f"p{i}.json"))
        assert done.returncode == 0, done.stderr
    done = cli("merge", str(tmp_path / "merged.json"), str(tmp_path / "p0.json"), str(tmp_path / "p1.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        f"{tmp_path / 'merged.json'}: 5 per-image records of 1 curve(s) from 2 files",
        f"{tmp_path / 'merged.json'}: decoded crops of 5 image(s) kept",  # the sweeps' default --keep-crops, for the report page
    ]
    assert without_times(json.loads((tmp_path / "merged.json").read_text())) == without_times(single)
    assert read_index(crops_folder(tmp_path / "merged.json")) == read_index(crops_folder(tmp_path / "single.json"))
    done = cli("merge", str(tmp_path / "again.json"), str(tmp_path / "p1.json"))
    assert done.returncode == 2 and done.stderr.strip() == "mocodec: error: shard 0/2 is missing (1 of 2 given); pass every shard's file"


@pytest.mark.slow
def test_cli_two_processes_equal_one(cli, tmp_path, images, monkeypatch):
    """--devices 2 spawns two processes; the merged file equals the single-process one; shard files are gone."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one thread per process in both runs: the same float bits
    done = cli(*TASK_ARGS, "--dataset", str(images), "--shard", "0/2", "--devices", "2", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2 and done.stderr.strip() == (
        "mocodec: error: --shard runs one shard in this process; drop --devices (and torchrun), or drop --shard"
    )
    done = cli(*TASK_ARGS, "--dataset", str(images), "--out", str(tmp_path / "single.json"), "--devices", "1")
    assert done.returncode == 0, done.stderr
    single = json.loads((tmp_path / "single.json").read_text())
    done = cli(*TASK_ARGS, "--dataset", str(images), "--devices", "2", "--out", str(tmp_path / "two.json"))
    assert done.returncode == 0, done.stderr
    assert without_times(json.loads((tmp_path / "two.json").read_text())) == without_times(single)
    assert read_index(crops_folder(tmp_path / "two.json")) == read_index(crops_folder(tmp_path / "single.json"))  # kept as one run keeps
    assert sorted(p.name for p in tmp_path.glob("*.crops")) == ["single.crops", "two.crops"]  # the shards' crops merged and gone
    rd_single = eval_rd("jpeg", "30", images, tmp_path / "rd_single.json")
    done = cli(
        "eval-rd", "--codec", "jpeg", "--qualities", "30", "--dataset", str(images), "--devices", "2", "--out", str(tmp_path / "rd.json")
    )
    assert done.returncode == 0, done.stderr
    assert without_times(json.loads((tmp_path / "rd.json").read_text())) == without_times(rd_single)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["rd.json", "rd_single.json", "single.json", "two.json"]
