"""The report page without a browser: its numbers are the results files', every user string is escaped, it names no URL, bad input."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_helpers import CLASS_NAMES, HOSTILE_ID

from mocodec.codecs import load_codec
from mocodec.data.io import read_image
from mocodec.errors import ConfigError
from mocodec.evaluation.bd import bd_table
from mocodec.evaluation.coding import code_image, quantize_8bit
from mocodec.evaluation.crops import crops_folder, read_index
from mocodec.report.build import write_report
from mocodec.report.content import CAPTION_FIELDS
from mocodec.report.page import DATA_ID

# every element the page's own HTML has (the script builds the rest); an injected tag would show up here
PAGE_TAGS = {
    *("html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "nav", "ul", "li", "a", "main"),
    *("section", "div", "table", "thead", "tbody", "tr", "th", "td", "b", "footer", "code", "script", "details", "summary"),
}


class Page(HTMLParser):
    """The page parsed: start tags with their attributes, and each script's text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = dict(attrs)
            self.scripts.append((self._script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)

    def data(self) -> dict:
        (text,) = [text for attrs, text in self.scripts if attrs.get("id") == DATA_ID]
        return json.loads(text)


def _number(value) -> float:
    """A number of the page's data: JSON has no nan/inf, the page writes them as strings (as results files do)."""
    return float(value)


def _same(a, b) -> bool:
    a, b = _number(a), _number(b)
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


def _expected_traces(doc: dict) -> list[tuple[str, list, list]]:
    """(curve, bpp, value) of every curve in every panel, as the file holds them: the metrics that vary with the rate and have values."""
    traces = []
    for metric, meta in doc["metrics"].items():
        if meta["reference"]:
            continue
        rows = []
        for entry in doc["entries"]:
            res = entry["results"]
            pairs = [(x, y) for x, y in zip(res["bpp"], res.get(metric, [])) if isinstance(y, (int, float)) and not isinstance(y, bool)]
            if pairs:
                rows.append((entry["name"], [x for x, _ in pairs], [y for _, y in pairs]))
        traces += rows
    return traces


@pytest.fixture(scope="module")
def page(report_sweeps, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("page") / "page.html"
    return write_report([report_sweeps["rd"], report_sweeps["task"]], out, anchor="jpeg", bootstrap=60)


def test_the_page_numbers_are_the_results_files_numbers(page, report_sweeps):
    parsed = Page(page.read_text())
    data = parsed.data()
    rd_folder = report_sweeps["rd"].parent / "rd-images"
    for section, path in zip(data["sections"], (report_sweeps["rd"], report_sweeps["task"]), strict=True):
        doc = json.loads(path.read_text())
        # the curves' numbers, exactly
        assert section["numbers"] == {e["name"]: {"codec": e["codec"], "results": e["results"]} for e in doc["entries"]}
        drawn = [(html.unescape(t["name"]), t["x"], t["y"]) for t in section["figure"]["data"]]
        assert drawn == _expected_traces(doc)
        # the BD estimates: the BD of the file's curves (the page adds intervals over images)
        for row in section["bd"]["rows"]:
            higher = doc["metrics"][row["metric"]]["higher_is_better"]
            (expected,) = [r for r in bd_table(doc["entries"], "jpeg", row["metric"], higher_is_better=higher) if r.name == row["curve"]]
            assert _same(row["bd_rate"][0], expected.bd_rate) and _same(row["bd_metric"][0], expected.bd_metric)
            est, low, high = map(_number, row["bd_rate"])
            assert low <= est <= high or math.isnan(est)
        # the captions' numbers: the records of the file
        records = {(e["name"], r["id"], r["point"]): r for e in doc["entries"] for r in e["per_image"]}
        for image in section["comparison"]["images"]:
            for curve, points in image["points"].items():
                assert len(points) == 5
                for shown in points:
                    record = records[(curve, image["id"], shown["point"])]
                    assert {k: v for k, v in shown.items() if k != "src"} == {k: record[k] for k in CAPTION_FIELDS if k in record}
    # the BD table as printed: the estimates and intervals of the data, rounded
    cells = " ".join(parsed.text)
    for row in data["sections"][0]["bd"]["rows"]:
        est, low, high = map(_number, row["bd_rate"])
        assert f"{est:+.2f} [{low:+.2f}, {high:+.2f}]" in cells
    # a crop is the centre of the decoded image, pixel for pixel
    image = data["sections"][0]["comparison"]["images"][0]
    shown = next(p for p in image["points"]["jpeg"] if p["point"] == "30")
    crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(shown["src"].split(",", 1)[1]))))
    x, info = read_image(rd_folder / image["id"])
    decoded = quantize_8bit(code_image(load_codec("jpeg", 30), x, info).x_hat).mul(255).round().byte().permute(1, 2, 0).numpy()
    top, left, h, w = image["box"]
    assert np.array_equal(crop, decoded[top : top + h, left : left + w])


def test_the_comparison_shows_the_kept_images_with_the_judges_names(page, report_sweeps):
    data = Page(page.read_text()).data()
    task = data["sections"][1]["comparison"]
    index = read_index(crops_folder(report_sweeps["task"]))
    assert [i["id"] for i in task["images"]][0] == HOSTILE_ID  # pinned images first
    assert {i["id"] for i in task["images"]} == set(index["images"]) and len(task["images"]) == 3
    assert set(task["names"].values()) <= set(CLASS_NAMES) and task["names"]
    assert task["anchor"] == "jpeg" and task["curves"] == ["jpeg", "webp"]
    scores = [i["score"] for i in task["images"][1:]]
    assert scores == sorted(scores, reverse=True)  # then those where the curves disagree most
    record = task["images"][0]["points"]["jpeg"][0]
    assert 0 <= record["pred_confidence"] <= 1 and record["label"] == 2


def test_hostile_names_and_labels_are_escaped(report_sweeps, tmp_path):
    hostile = tmp_path / "<b>r&d<i>.json"  # a results file name with markup in it
    shutil.copy(report_sweeps["task"], hostile)
    shutil.copytree(crops_folder(report_sweeps["task"]), crops_folder(hostile))
    text = write_report([hostile], tmp_path / "page.html", bootstrap=20, title="<script>alert('title')</script>").read_text()
    for raw in ("<script>alert", "<b>bold", "<img src=x", "<b>r&d", "<i>.json"):
        assert raw not in text
    assert "&lt;b&gt;r&amp;d&lt;i&gt;.json" in text and "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt;" in text
    parsed = Page(text)
    assert {tag for tag, _ in parsed.tags} <= PAGE_TAGS
    assert len([tag for tag, _ in parsed.tags if tag == "script"]) == 3  # the data, plotly.js, the page's own
    data = parsed.data()  # and the strings come back exactly
    assert data["title"] == "<script>alert('title')</script>"
    assert HOSTILE_ID in [i["id"] for i in data["sections"][0]["comparison"]["images"]]
    assert "<img src=x onerror=alert(1)>" in data["sections"][0]["comparison"]["names"].values()


def test_the_page_names_no_url(page):
    text = page.read_text()
    parsed = Page(text)
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "action", "data", "poster", "srcset", "formaction"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
    (policy,) = [a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert policy.startswith("default-src 'none';") and "connect-src" not in policy
    scripts = {attrs.get("id"): body for attrs, body in parsed.scripts}
    assert "http" not in scripts[DATA_ID] and "url(" not in text.split("<style>")[1].split("</style>")[0]
    assert len(text) < 8_000_000  # plotly.js (4.8 MB) and some crops


def test_bad_input_is_one_line_naming_the_fix(report_sweeps, tmp_path):
    rd, task = report_sweeps["rd"], report_sweeps["task"]
    with pytest.raises(ConfigError, match=r"^results file .*missing.json does not exist; pass the files"):
        write_report([tmp_path / "missing.json"], tmp_path / "p.html")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match=r"other.json is not a mocodec results file with per-image records; a page is made from"):
        write_report([tmp_path / "other.json"], tmp_path / "p.html")
    bare = tmp_path / "bare.json"
    shutil.copy(rd, bare)
    with pytest.raises(
        ConfigError,
        match=r"^no decoded crops beside the results \(bare.crops/\): rerun the sweep with --keep-crops N into a new --out, "
        r"or pass --no-images for a page of curves and tables only$",
    ):
        write_report([bare], tmp_path / "p.html")
    data = Page(write_report([bare], tmp_path / "p.html", with_images=False, bootstrap=10).read_text()).data()
    assert data["sections"][0]["comparison"] is None and data["sections"][0]["figure"]["data"]
    with pytest.raises(ConfigError, match=r"^--images: no results file has image 'nope.png'; name images by the ids"):
        write_report([rd, task], tmp_path / "p.html", images=["nope.png"])
    kept = set(read_index(crops_folder(task))["images"])
    (not_kept,) = [i for i in (HOSTILE_ID, "tile1.png", "tile2.png", "tile3.png") if i not in kept]
    with pytest.raises(
        ConfigError,
        match=rf"^image '{not_kept}' of task.json has no decoded crops \(kept: .*\); rerun the sweep into a new --out with --keep-images '{not_kept}'$",
    ):
        write_report([task], tmp_path / "p.html", images=[not_kept])
    with pytest.raises(ConfigError, match=r"^--bd-metrics: no file has rate-dependent values of 'top-9'"):
        write_report([task], tmp_path / "p.html", bd_metrics=["top-9"])


def test_chosen_images_in_their_order(report_sweeps, tmp_path):
    kept = list(read_index(crops_folder(report_sweeps["task"]))["images"])
    chosen = list(reversed(kept))
    data = Page(
        write_report([report_sweeps["rd"], report_sweeps["task"]], tmp_path / "p.html", images=chosen, bootstrap=10).read_text()
    ).data()
    assert [i["id"] for i in data["sections"][1]["comparison"]["images"]] == chosen
    assert data["sections"][0]["comparison"]["images"] == []  # the rd file has none of them


def test_cli_writes_the_page_and_refuses_to_overwrite(cli, report_sweeps, tmp_path):
    out = tmp_path / "page.html"
    args = ["report", str(report_sweeps["rd"]), str(report_sweeps["task"]), "--out", str(out), "--bootstrap", "20", "--anchor", "webp"]
    run = cli(*args)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"page: {out} (") and Page(out.read_text()).data()["sections"][1]["bd"]["anchor"] == "webp"
    again = cli(*args)
    assert again.returncode == 2 and again.stderr.strip().splitlines() == [
        f"mocodec: error: {out} already exists; pass --force to overwrite it"
    ]
