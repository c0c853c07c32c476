"""A hand-made judge with hostile class names, and photo crops, for the report tests (no weights, milliseconds per call)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from mocodec.tasks.base import Sample
from mocodec.tasks.classification import ClassificationTask, Classifier, Preprocessing

HOSTILE_ID = "<script>alert(1)</script>.png"
CLASS_NAMES = ["<b>bold</b> finch", "goldfinch", "<img src=x onerror=alert(1)>", "house finch"]
QUALITIES = "5,15,30,50,80"


class MeanColour(nn.Module):
    """Logits from the mean colour: a 4-class judge whose predictions move with what a codec does to colour."""

    def __init__(self):
        super().__init__()
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(3, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[40.0, -20, -20], [-20, 40.0, -20], [-20, -20, 40.0], [10.0, 10.0, 10.0]]))
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(self.pool(x))


class HandTask(ClassificationTask):
    """The mean-colour judge, with hostile class names, on a hand-made list of samples (ids chosen here)."""

    def __init__(self, samples: list[Sample]):
        super().__init__(Classifier(MeanColour(), Preprocessing(8, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), crop_pct=1.0), CLASS_NAMES))
        self.samples = samples

    def dataset(self, root=None, **options):
        return list(self.samples)


def write_crops(folder: Path, astronaut, count: int, size=(56, 72)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        top, left = 40 + 70 * i, 60 + 50 * i
        path = folder / f"photo{i}.png"
        Image.fromarray(astronaut[top : top + size[0], left : left + size[1]]).save(path)
        paths.append(path)
    return paths
