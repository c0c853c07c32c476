"""``mocodec compress``: one image into a bitstream file."""

from __future__ import annotations

import argparse

from mocodec.commands.arguments import add_codec_arguments

NAME = "compress"
HELP = "compress one image into a bitstream file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="image file (PNG, JPEG, WebP, ...)")
    parser.add_argument("output", help="bitstream file to write")
    add_codec_arguments(parser)
    parser.add_argument(
        "--quality", type=int, default=None, help="the codec's quality (`mocodec list` gives each codec's range; default: the codec's own)"
    )
    parser.add_argument(
        "--arithmetic",
        choices=("exact", "float"),
        default=None,
        help="how a learned codec computes its entropy parameters: exact (default where the codec has it; the file "
        "decodes on any machine) or float (CompressAI's coder; the file decodes only where it was written)",
    )
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: Pillow's bomb limit)")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec import bitstream
    from mocodec.codecs import default_quality, load_codec
    from mocodec.data.io import DEFAULT_MAX_PIXELS, read_image
    from mocodec.files import atomic_write_bytes, check_writable

    out = check_writable(args.output, args.force)
    x, info = read_image(args.input, args.max_pixels or DEFAULT_MAX_PIXELS)
    quality = args.quality if args.quality is not None else default_quality(args.codec)
    codec = load_codec(args.codec, quality, checkpoint=args.checkpoint, pretrained=args.pretrained, arithmetic=args.arithmetic)
    data = bitstream.encode(codec, x, info)
    atomic_write_bytes(out, data)
    h, w = x.shape[-2:]
    arithmetic = f", {codec.arithmetic} arithmetic" if codec.arithmetic else ""
    print(f"{out}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp ({args.codec} q{codec.quality}, {w}x{h}{arithmetic})")
