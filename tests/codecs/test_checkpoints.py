"""--checkpoint accepts CompressAI's files (zoo and training-script layouts) and mocodec exports."""

from __future__ import annotations

import pytest
import torch

from mocodec import bitstream
from mocodec.codecs import codec_state, create_codec, load_codec
from mocodec.errors import WeightsError


@pytest.fixture
def trained_like():
    torch.manual_seed(3)
    codec = create_codec("bmshj2018-hyperprior", quality=2, N=8, M=12)
    codec.update(force=True)
    return codec


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_compressai_zoo_layout_plain_state_dict(tmp_path, trained_like):
    path = tmp_path / "zoo.pth.tar"
    torch.save(trained_like.state_dict(), path)
    codec = load_codec("bmshj2018-hyperprior", 2, checkpoint=path)
    assert _same_weights(codec, trained_like)
    assert (codec.N, codec.M) == (8, 12)  # inferred from the file, not the quality table


def test_compressai_training_script_layout(tmp_path, trained_like):
    path = tmp_path / "checkpoint.pth.tar"
    sd = {f"module.{k}": v for k, v in trained_like.state_dict().items()}  # saved from DataParallel
    torch.save({"epoch": 3, "state_dict": sd, "loss": torch.tensor(1.0), "optimizer": {}, "aux_optimizer": {}}, path)
    assert _same_weights(load_codec("bmshj2018-hyperprior", 2, checkpoint=path), trained_like)


def test_mocodec_export_records_architecture(tmp_path, trained_like):
    path = tmp_path / "export.pth"
    torch.save(codec_state(trained_like, {"N": 8, "M": 12}), path)
    codec = load_codec("bmshj2018-hyperprior", 7, checkpoint=path)  # quality comes from the file
    assert codec.quality == 2 and _same_weights(codec, trained_like)
    x = torch.rand(3, 40, 50)
    y, _ = bitstream.decode(load_codec("bmshj2018-hyperprior", 2, checkpoint=path), bitstream.encode(codec, x))
    assert y.shape == x.shape


def test_checkpoint_of_another_architecture(tmp_path, trained_like):
    path = tmp_path / "hp.pth"
    torch.save(trained_like.state_dict(), path)
    with pytest.raises(WeightsError, match=r"checkpoint .*hp.pth does not match mbt2018 quality 2 \(.*\); pass the --codec/--quality"):
        load_codec("mbt2018", 2, checkpoint=path)


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "obj": WeightsError("x")}, path)
    with pytest.raises(WeightsError, match="contains pickled code, which mocodec refuses to execute"):
        load_codec("bmshj2018-hyperprior", 2, checkpoint=path)


def test_not_a_torch_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"definitely not a zip")
    with pytest.raises(WeightsError, match="is not a readable torch file"):
        load_codec("bmshj2018-hyperprior", 2, checkpoint=path)


def test_pretrained_offline_names_url_and_alternative():
    with pytest.raises(
        WeightsError,
        match=r"cannot download pretrained bmshj2018-hyperprior quality 3 \(mse\) from https://compressai.*; place that file at .*bmshj2018-hyperprior-3-.*, or pass --checkpoint PATH",
    ):
        load_codec("bmshj2018-hyperprior", 3, pretrained=True)
