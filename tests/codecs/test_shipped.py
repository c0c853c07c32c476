"""Weights shipped inside the package: exported in half precision, checksummed, loaded offline by --pretrained."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from mocodec import bitstream
from mocodec.codecs import load_codec, shipped
from mocodec.codecs.zoo import TINY_HYPERPRIOR
from mocodec.errors import ConfigError, WeightsError
from mocodec.training import CodecModule, export_codec, ship_codec

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


def test_shipped_files_leave_out_the_coder_tables_and_are_deflated(tmp_path, weights_folder):
    """Twelve files must fit 40 MB: the CDF tables are derived on loading, equal to those a full export holds."""
    checkpoint = _checkpoint(tmp_path, 2)
    ship_codec(checkpoint)
    path = weights_folder / "mbt2018-mean-small-q2.pth"
    export_codec(checkpoint, tmp_path / "full.pth", half=True)
    full = torch.load(tmp_path / "full.pth", weights_only=True)["state_dict"]
    compact = torch.load(path, weights_only=True)["state_dict"]
    tables = {k for k in full if k.rsplit(".", 1)[1] in ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")}
    assert len(tables) == 7 and set(full) - set(compact) == tables
    assert all(torch.equal(full[k], compact[k]) for k in compact)
    assert {info.compress_type for info in zipfile.ZipFile(path).infolist()} == {zipfile.ZIP_DEFLATED}
    shipped_codec = load_codec("mbt2018-mean-small", 2, pretrained=True)
    assert all(torch.equal(shipped_codec.state_dict()[k], full[k]) for k in tables)  # derived at once, as trained
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    for arithmetic in ("exact", "float"):
        shipped_codec.set_arithmetic(arithmetic)
        exported = load_codec("mbt2018-mean-small", 2, checkpoint=tmp_path / "full.pth", arithmetic=arithmetic)
        assert shipped_codec.compress(x)["strings"] == exported.compress(x)["strings"]


def test_a_run_ships_as_the_codec_and_quality_it_is_given(tmp_path, weights_folder):
    """An experiment's run becomes quality 4 of the shipped codec (or a codec of its own): the file names that identity."""
    checkpoint = _checkpoint(tmp_path, 2)
    entry = ship_codec(checkpoint, quality=4)
    assert entry["file"] == "mbt2018-mean-small-q4.pth" and entry["trained_as"] == "mbt2018-mean-small quality 2"
    assert list(shipped.manifest()["mbt2018-mean-small"]) == ["4"]
    codec = load_codec("mbt2018-mean-small", 4, pretrained=True)
    x = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(1))
    header = bitstream.unpack(bitstream.encode(codec, x))
    assert (header.codec, header.quality, header.weights_id) == ("mbt2018-mean-small", 4, bytes.fromhex(entry["sha256"])[:8])
    trained = load_codec("mbt2018-mean-small", 2, checkpoint=checkpoint)
    assert all(torch.equal(codec.state_dict()[k], v.half().float()) for k, v in trained.state_dict().items() if k.startswith("g_"))
    export_codec(checkpoint, tmp_path / "as_mean.pth", name="mbt2018-mean", quality=1)
    assert torch.load(tmp_path / "as_mean.pth", weights_only=True)["mocodec_codec"]["name"] == "mbt2018-mean"
    with pytest.raises(ConfigError, match=r"^bmshj2018-hyperprior quality 2 is another architecture than the mbt2018-mean-small"):
        ship_codec(checkpoint, name="bmshj2018-hyperprior")


def test_a_file_coded_with_replaced_weights_says_which_weights_it_needs(tmp_path, weights_folder, capsys):
    """Shipping new weights for a quality retires the old ones by digest: their files are told apart from damaged ones."""
    from mocodec.commands import main

    ship_codec(_checkpoint(tmp_path, 2))
    old = load_codec("mbt2018-mean-small", 2, pretrained=True)
    (tmp_path / "old.moc").write_bytes(bitstream.encode(old, torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(2))))
    assert main(["decompress", str(tmp_path / "old.moc"), str(tmp_path / "old.png")]) == 0
    replaced = tmp_path / "replaced"
    replaced.mkdir()
    ship_codec(_checkpoint(replaced, 3), quality=2)  # other weights, shipped as quality 2
    ((digest, entry),) = shipped.retired().items()
    assert digest.startswith(old.weights_id.hex()) and (entry["codec"], entry["quality"]) == ("mbt2018-mean-small", 2)
    assert main(["decompress", str(tmp_path / "old.moc"), str(tmp_path / "again.png")]) != 0
    message = capsys.readouterr().err.strip()
    assert message.endswith(
        f"was coded with the mbt2018-mean-small quality 2 weights mocodec shipped until {entry['retired']}; "
        "decode it with a mocodec from before then, or pass those weights as --checkpoint"
    ), message
    assert not (tmp_path / "again.png").exists()


def test_weights_without_tables_replace_the_tables_a_codec_held(tmp_path):
    """Loading into a codec that holds tables of other weights: the tables follow the new weights at once."""
    export_codec(_checkpoint(tmp_path, 3), tmp_path / "full.pth")
    full = torch.load(tmp_path / "full.pth", weights_only=True)["state_dict"]
    codec = load_codec("mbt2018-mean-small", 3, **TINY_HYPERPRIOR)  # the portable random init
    codec.update(force=True)
    tables = codec.coder_table_keys()
    assert not torch.equal(codec.state_dict()["entropy_bottleneck._offset"], full["entropy_bottleneck._offset"])
    codec.load_state_dict({k: v for k, v in full.items() if k not in tables})
    assert all(torch.equal(codec.state_dict()[k], full[k]) for k in tables)
    with pytest.raises(RuntimeError, match=r"unmatched keys g_a\.0\.weight$"):
        codec.load_state_dict({k: v for k, v in full.items() if k not in tables and k != "g_a.0.weight"})


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
