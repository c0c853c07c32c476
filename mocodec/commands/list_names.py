"""``mocodec list``: the registered codecs, distortions and tasks, and the codec weights mocodec ships."""

from __future__ import annotations

import argparse

NAME = "list"
HELP = "list registered codecs, distortions and tasks, and the codec weights shipped with mocodec"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``list`` takes no arguments."""


def run(args: argparse.Namespace) -> None:
    from mocodec.codecs import list_codecs, quality_range, shipped
    from mocodec.losses import list_distortions
    from mocodec.tasks import list_tasks

    print("codecs:      " + ", ".join(f"{name} ({quality_range(name)[0]}-{quality_range(name)[-1]})" for name in list_codecs()))
    print("distortions: " + ", ".join(list_distortions()))
    print("tasks:       " + ", ".join(list_tasks()))
    weights = [f"{name} quality {', '.join(entries)}" for name, entries in shipped.manifest().items()]
    if weights:  # offline, no download: --codec NAME --quality Q --pretrained
        print("shipped:     " + "; ".join(weights) + " (--pretrained, offline)")
