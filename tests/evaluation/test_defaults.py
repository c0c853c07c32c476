"""Every registered codec works with the commands' defaults: its own qualities, never another codec's range."""

from __future__ import annotations

import pytest
from PIL import Image

from mocodec.codecs import create_codec, default_quality, is_classic, list_codecs, quality_range, sweep_qualities
from mocodec.commands import main
from mocodec.errors import ConfigError
from mocodec.evaluation.plan import plan_curves
from mocodec.iqa.distortions import create_family


@pytest.mark.parametrize("name", list_codecs())
def test_a_codec_accepts_exactly_the_qualities_it_declares(name):
    qualities = quality_range(name)
    tiny = {"N": 8, "M": 12} if not (is_classic(name) or name.startswith("mlicpp")) else {}  # MLIC++'s range is checked before building
    for quality in (qualities[0], qualities[-1]):
        if name != "mlicpp":  # 83.5 M parameters: its size is not the question here
            assert create_codec(name, quality=quality, **tiny).quality == quality
    for quality in (qualities[0] - 1, qualities[-1] + 1):
        with pytest.raises(ConfigError, match=f"quality {quality} is out of range for {name}: use {qualities[0]}-{qualities[-1]}"):
            create_codec(name, quality=quality, **tiny)
    assert default_quality(name) in qualities


@pytest.mark.parametrize("name", list_codecs())
def test_sweeps_and_pcmp_default_to_the_codec_s_own_qualities(name):
    (curve,) = plan_curves([name])
    points = [p.quality for p in curve.points]
    assert points == sweep_qualities(name) and set(points) <= set(quality_range(name))
    if not is_classic(name):
        assert points == list(quality_range(name))  # a learned codec: every quality it has
        (pretrained,) = plan_curves([f"{name}@pretrained"])
        assert [p.quality for p in pretrained.points] == points
    family = create_family(name if is_classic(name) else f"{name}@pretrained")
    assert set(family.levels) <= set(quality_range(name))
    if not is_classic(name):
        assert list(family.levels) == sweep_qualities(name, 4)  # four of its qualities, lowest to highest


def test_the_shipped_codec_beside_jpeg_needs_no_qualities():
    """The case that failed: ``--codecs jpeg,mbt2018-mean-small@pretrained`` asked the shipped codec for quality 5-8."""
    jpeg, small = plan_curves(["jpeg,mbt2018-mean-small@pretrained"])
    assert [p.quality for p in small.points] == [1, 2, 3, 4] and [p.quality for p in jpeg.points] == [5, 10, 20, 30, 50, 75, 95]
    assert sweep_qualities("mbt2018", 4) == [1, 3, 6, 8] and sweep_qualities("mlicpp", 4) == [1, 3, 4, 6]


@pytest.fixture
def photo(tmp_path, astronaut):
    path = tmp_path / "photo.png"
    Image.fromarray(astronaut[100:148, 150:214]).save(path)
    return path


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "mlicpp" else n for n in list_codecs()])
def test_eval_rd_eval_task_compress_and_decompress_run_every_codec_with_their_defaults(name, photo, tmp_path, capsys):
    """The real commands, defaults only (learned codecs with seeded weights; eval-task with a tiny random judge). The
    full-size MLIC++ (83.5 M parameters, 6 qualities, 30 s) is a slow test."""
    folder = photo.parent
    assert main(["eval-rd", "--codec", name, "--dataset", str(folder), "--out", str(tmp_path / "rd.json")]) == 0
    task = ["eval-task", "--model", "test_efficientnet", "--random-init", "--codecs", name, "--dataset", str(folder)]
    assert main([*task, "--out", str(tmp_path / "task.json")]) == 0
    capsys.readouterr()
    assert main(["compress", str(photo), str(tmp_path / "a.moc"), "--codec", name]) == 0
    assert f"({name} q{default_quality(name)}, 64x48" in capsys.readouterr().out
    assert main(["decompress", str(tmp_path / "a.moc"), str(tmp_path / "a.png")]) == 0
