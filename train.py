"""Train a codec: ``python train.py fit --config configs/train/tiny_cpu.yaml`` (same as ``mocodec train``)."""

import sys

from mocodec.commands import main

sys.exit(main(["train", *sys.argv[1:]]))
