"""Weights shipped inside the package: exported in half precision, checksummed, loaded offline by --pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec import bitstream
from mocodec.codecs import load_codec, shipped
from mocodec.codecs.zoo import TINY_HYPERPRIOR
from mocodec.errors import ConfigError, WeightsError
from mocodec.training import CodecModule, ship_codec

SHIPPED = shipped.manifest()


@pytest.fixture
def weights_folder(tmp_path, monkeypatch):
    """An empty weights folder in place of the package's."""
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", folder)
    return folder


def _checkpoint(tmp_path, quality: int) -> str:
    """A mocodec training checkpoint of a tiny mbt2018-mean-small, as `mocodec train` writes one."""
    import pytorch_lightning as pl

    torch.manual_seed(quality)
    module = CodecModule("mbt2018-mean-small", quality, codec_kwargs=dict(TINY_HYPERPRIOR), lmbda=0.0035 * quality)
    trainer = pl.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(module)
    path = tmp_path / f"q{quality}.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


def test_shipping_a_checkpoint_writes_half_precision_weights_and_their_digest(tmp_path, weights_folder):
    entry = ship_codec(_checkpoint(tmp_path, 2))
    path = weights_folder / "mbt2018-mean-small-q2.pth"
    assert entry["file"] == path.name and entry["sha256"] == shipped.sha256(path) and entry["lmbda"] == pytest.approx(0.007)
    assert json.loads((weights_folder / "manifest.json").read_text())["mbt2018-mean-small"]["2"] == entry
    state = torch.load(path, weights_only=True)["state_dict"]
    assert state["g_a.0.weight"].dtype == torch.float16  # transforms halved ...
    assert state["entropy_bottleneck.quantiles"].dtype == torch.float32  # ... entropy models exact
    codec = load_codec("mbt2018-mean-small", 2, pretrained=True)
    assert (codec.quality, codec.weights_id.hex()) == (2, entry["sha256"][:16])
    assert codec.g_a[0].weight.dtype == torch.float32
    assert torch.equal(codec.g_a[0].weight, state["g_a.0.weight"].float())


def test_damaged_or_missing_shipped_weights_are_one_line(tmp_path, weights_folder):
    ship_codec(_checkpoint(tmp_path, 1))
    with pytest.raises(ConfigError, match=r"^mocodec ships no weights for mbt2018-mean-small quality 3; qualities with weights: 1$"):
        load_codec("mbt2018-mean-small", 3, pretrained=True)
    path = weights_folder / "mbt2018-mean-small-q1.pth"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        WeightsError, match=r"are damaged \(SHA-256 mismatch\); reinstall mocodec \(pip install --force-reinstall mocodec\)$"
    ):
        load_codec("mbt2018-mean-small", 1, pretrained=True)
    path.unlink()
    with pytest.raises(WeightsError, match=r"are missing; reinstall mocodec"):
        load_codec("mbt2018-mean-small", 1, pretrained=True)


def test_a_weights_digest_is_recognised_as_the_shipped_weights(tmp_path, weights_folder):
    entry = ship_codec(_checkpoint(tmp_path, 2))
    digest = bytes.fromhex(entry["sha256"])[:8]
    assert shipped.is_shipped("mbt2018-mean-small", 2, digest)
    assert not shipped.is_shipped("mbt2018-mean-small", 1, digest)  # no weights shipped at quality 1
    assert not shipped.is_shipped("mbt2018-mean-small", 2, bytes(8))  # random init
    assert not shipped.is_shipped("bmshj2018-hyperprior", 2, digest)


def test_shipped_weights_never_touch_the_network(tmp_path, weights_folder, monkeypatch):
    ship_codec(_checkpoint(tmp_path, 1))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was asked for shipped weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr("mocodec.codecs.fetch_url", no_network)
    assert load_codec("mbt2018-mean-small", 1, pretrained=True).quality == 1


@pytest.mark.skipif(not SHIPPED, reason="this installation ships no codec weights")
@pytest.mark.parametrize("name,quality", [(n, int(max(entries, key=int))) for n, entries in SHIPPED.items()])
def test_the_shipped_weights_decode_identically_in_a_fresh_process(name, quality, tmp_path, astronaut, cli):
    """The real shipped files, through the command line: checksums hold, and a file coded here decodes bit-exactly in
    another process (one quality; every quality's files in fresh processes are test_portability.py's slow matrix)."""
    photo = tmp_path / "photo.png"
    Image.fromarray(astronaut[100:228, 140:300]).save(photo)
    codec = load_codec(name, quality, pretrained=True)
    x = torch.from_numpy(astronaut[100:228, 140:300].copy()).permute(2, 0, 1).float() / 255
    here, _ = bitstream.decode(codec, bitstream.encode(codec, x))
    run = cli("compress", str(photo), str(tmp_path / "a.moc"), "--codec", name, "--quality", str(quality), "--pretrained")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "a.moc").read_bytes() == bitstream.encode(codec, x)
    run = cli("decompress", str(tmp_path / "a.moc"), str(tmp_path / "a.png"))  # the header's weights digest names them
    assert run.returncode == 0, run.stderr
    there = torch.from_numpy(np.array(Image.open(tmp_path / "a.png"))).permute(2, 0, 1).float() / 255
    assert torch.equal(there, here.mul(255).round().div(255))
