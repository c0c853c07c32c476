"""``mocodec decompress``: a bitstream file back into an image; codec and quality are read from the file."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "decompress"
HELP = "decode a bitstream file into an image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="bitstream file written by `mocodec compress`")
    parser.add_argument("output", help="image file to write (.png is lossless)")
    parser.add_argument("--checkpoint", default=None, help="the weights the file was encoded with, if not published ones")
    parser.add_argument(
        "--pretrained", action="store_true", help="the file was encoded with the published weights (the shipped ones are recognised)"
    )
    parser.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: Pillow's bomb limit)")
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec import bitstream
    from mocodec.codecs import CODECS, load_codec, shipped
    from mocodec.data.io import DEFAULT_MAX_PIXELS, write_image
    from mocodec.errors import BitstreamError
    from mocodec.files import check_writable

    out = check_writable(args.output, args.force)
    path = Path(args.input)
    if not path.is_file():
        raise BitstreamError(f"bitstream file {path} does not exist; check the path")
    bs = bitstream.unpack(path.read_bytes(), args.max_pixels or DEFAULT_MAX_PIXELS)
    if bs.codec not in CODECS:
        raise BitstreamError(f"bitstream was written by codec '{bs.codec}', which this mocodec does not know")
    # A file coded with the weights mocodec ships names them by digest: no flag needed to decode it.
    pretrained = args.pretrained or (args.checkpoint is None and shipped.is_shipped(bs.codec, bs.quality, bs.weights_id))
    if not pretrained and args.checkpoint is None and (weights := shipped.retired_weights(bs.weights_id)) is not None:
        raise BitstreamError(
            f"{path} was coded with {weights}; decode it with a mocodec from before then, or pass those weights as --checkpoint"
        )
    codec = load_codec(bs.codec, bs.quality, checkpoint=args.checkpoint, pretrained=pretrained)
    x_hat, info = bitstream.decode(codec, bs)
    write_image(out, x_hat, info)
    print(f"{out}: {bs.width}x{bs.height} ({bs.codec} q{bs.quality})")
