"""``mocodec export``: a training checkpoint's codec (weights + CDF tables) as a file for ``compress --checkpoint``."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a training checkpoint's codec (weights + CDF tables) for `compress --checkpoint`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.ckpt) written by `mocodec train`")
    parser.add_argument("output", help="codec weights file to write (.pth), for `mocodec compress --checkpoint`")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec.files import check_writable
    from mocodec.training import export_codec

    out = check_writable(args.output, args.force)
    record = export_codec(args.checkpoint, out)
    print(f"{out}: {record['name']} quality {record['quality']} ({out.stat().st_size} bytes)")
