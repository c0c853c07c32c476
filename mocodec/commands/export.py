"""``mocodec export``: a training checkpoint's codec (weights + CDF tables) as a file for ``compress --checkpoint``."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a training checkpoint's codec (weights + CDF tables) for `compress --checkpoint`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.ckpt) written by `mocodec train`")
    parser.add_argument("output", nargs="?", help="codec weights file to write (.pth), for `mocodec compress --checkpoint`")
    parser.add_argument(
        "--half", action="store_true", help="store the transforms' weights as float16 (half the file; entropy models exact)"
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help="maintainers: ship the codec with mocodec (half precision, into "
        "mocodec/codecs/weights/, entered in its manifest) for `--pretrained`",
    )
    parser.add_argument(
        "--codec", help="the registry codec the file names instead of the one it trained as (same architecture), e.g. a variant of its own"
    )
    parser.add_argument("--quality", type=int, help="the quality the file names instead of the one it trained as")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec.errors import ConfigError
    from mocodec.files import check_writable
    from mocodec.training import export_codec, ship_codec

    if args.ship == (args.output is not None):
        raise ConfigError("give an OUTPUT file to export to, or --ship (the package's weights folder), not both")
    if args.ship:
        entry = ship_codec(args.checkpoint, name=args.codec, quality=args.quality)
        print(f"shipped {entry['file']}: sha256 {entry['sha256'][:16]}..., {entry['bytes']} bytes, {entry['steps']} steps")
        return
    out = check_writable(args.output, args.force)
    record = export_codec(args.checkpoint, out, half=args.half, name=args.codec, quality=args.quality)
    print(f"{out}: {record['name']} quality {record['quality']} ({out.stat().st_size} bytes)")
