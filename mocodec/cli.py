"""The ``mocodec`` command line: one small function per command, each calling the library.

Each command is declared with :func:`command`, which names it, documents it and adds its
arguments; ``main`` dispatches. Library errors (:class:`~mocodec.errors.MocodecError`)
become one line on stderr, ``mocodec: error: ...``, and exit status 2.
Training (``mocodec train``) is LightningCLI's, configured by YAML (``--config``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from mocodec.errors import MocodecError

Runner = Callable[[argparse.Namespace], int | None]
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``fn`` as ``mocodec NAME``; ``arguments`` adds its options to a parser."""

    def decorate(fn: Runner) -> Runner:
        _COMMANDS[name] = (help, arguments, fn)
        return fn

    return decorate


def _progress(items, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit="img", leave=False, disable=None)


def _codec_args(p: argparse.ArgumentParser, quality_default: int | None = 3) -> None:
    p.add_argument("--codec", default="bmshj2018-hyperprior", help="registry name (see `mocodec list`)")
    p.add_argument("--checkpoint", default=None, help="weights file: CompressAI state dict or mocodec export/checkpoint")
    p.add_argument("--pretrained", action="store_true", help="use the published weights (downloaded once, cached)")


# --------------------------------------------------------------------------- compress / decompress


def _compress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="image file (PNG, JPEG, WebP, ...)")
    p.add_argument("output", help="bitstream file to write")
    _codec_args(p)
    p.add_argument("--quality", type=int, default=3, help="1-8 for learned codecs, 1-100 for jpeg/webp/avif")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: Pillow's bomb limit)")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


@command("compress", "compress one image into a bitstream file", _compress_args)
def compress(args: argparse.Namespace) -> None:
    from mocodec import bitstream
    from mocodec.codecs import load_codec
    from mocodec.data.io import DEFAULT_MAX_PIXELS, read_image
    from mocodec.files import atomic_write_bytes, check_writable

    out = check_writable(args.output, args.force)
    x, info = read_image(args.input, args.max_pixels or DEFAULT_MAX_PIXELS)
    codec = load_codec(args.codec, args.quality, checkpoint=args.checkpoint, pretrained=args.pretrained)
    data = bitstream.encode(codec, x, info)
    atomic_write_bytes(out, data)
    h, w = x.shape[-2:]
    print(f"{out}: {len(data)} bytes, {8 * len(data) / (h * w):.4f} bpp ({args.codec} q{args.quality}, {w}x{h})")


def _decompress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="bitstream file written by `mocodec compress`")
    p.add_argument("output", help="image file to write (.png is lossless)")
    p.add_argument("--checkpoint", default=None, help="the weights the file was encoded with, if not published ones")
    p.add_argument("--pretrained", action="store_true", help="the file was encoded with the published weights")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse larger images (default: Pillow's bomb limit)")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


@command("decompress", "decode a bitstream file into an image", _decompress_args)
def decompress(args: argparse.Namespace) -> None:
    from mocodec import bitstream
    from mocodec.codecs import load_codec
    from mocodec.data.io import DEFAULT_MAX_PIXELS, write_image
    from mocodec.errors import BitstreamError
    from mocodec.files import check_writable

    out = check_writable(args.output, args.force)
    path = Path(args.input)
    if not path.is_file():
        raise BitstreamError(f"bitstream file {path} does not exist; check the path")
    bs = bitstream.unpack(path.read_bytes(), args.max_pixels or DEFAULT_MAX_PIXELS)
    from mocodec.codecs import CODECS

    if bs.codec not in CODECS:
        raise BitstreamError(f"bitstream was written by codec '{bs.codec}', which this mocodec does not know")
    codec = load_codec(bs.codec, bs.quality, checkpoint=args.checkpoint, pretrained=args.pretrained)
    x_hat, info = bitstream.decode(codec, bs)
    write_image(out, x_hat, info)
    print(f"{out}: {bs.width}x{bs.height} ({bs.codec} q{bs.quality})")


# --------------------------------------------------------------------------- eval-rd


def _eval_rd_args(p: argparse.ArgumentParser) -> None:
    _codec_args(p)
    p.add_argument("--qualities", default="1-8", help="e.g. 1-8, or 10,30,50 for jpeg/webp/avif")
    p.add_argument("--dataset", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="results JSON (CompressAI's schema + per-image records)")
    p.add_argument("--plot", default=None, help="RD plot to write (.png/.pdf)")
    p.add_argument("--compare", nargs="*", default=[], help="other results JSON files to draw beside")
    p.add_argument("--force", action="store_true", help="overwrite --out/--plot if they exist")


@command("eval-rd", "rate-distortion (file bpp, PSNR, MS-SSIM, times) of a codec over qualities", _eval_rd_args)
def eval_rd(args: argparse.Namespace) -> None:
    from mocodec.evaluation.coding import CodecSpec, parse_qualities
    from mocodec.evaluation.plots import plot_curves
    from mocodec.evaluation.rd import eval_rd as run
    from mocodec.evaluation.results import read_results, write_results
    from mocodec.files import check_writable

    out = check_writable(args.out, args.force)
    plot = check_writable(args.plot, args.force) if args.plot else None
    others = [read_results(p) for p in args.compare]
    if args.checkpoint:
        spec = CodecSpec(args.codec, checkpoint=args.checkpoint, label=f"{args.codec}:{Path(args.checkpoint).stem}")
    else:
        spec = CodecSpec(args.codec, pretrained=args.pretrained, label=args.codec)
    results = run(spec, parse_qualities(args.qualities), args.dataset, progress=_progress)
    write_results(out, results)
    _print_table(results, ("quality", "bpp", "bpp-estimated", "psnr-rgb", "ms-ssim", "encoding_time", "decoding_time"))
    for path, why in results.get("skipped", []):
        print(f"skipped {path}: {why}", file=sys.stderr)
    if plot:
        plot_curves([results, *others], plot, metrics=("psnr-rgb", "ms-ssim"))
        print(f"plot: {plot}")
    print(f"results: {out}")


def _print_table(results: dict, columns: Sequence[str]) -> None:
    res = results["results"]
    cols = [c for c in columns if c in res]
    print(" ".join(f"{c:>14}" for c in cols))
    for i in range(len(res["quality"])):
        cells = []
        for c in cols:
            v = res[c][i]
            cells.append(f"{v:>14.4f}" if isinstance(v, float) else f"{str(v):>14}")
        print(" ".join(cells))


# --------------------------------------------------------------------------- list


@command("list", "list registered codecs, distortions and tasks", lambda p: None)
def list_names(args: argparse.Namespace) -> None:
    from mocodec.codecs import list_codecs
    from mocodec.losses import list_distortions

    print("codecs:      " + ", ".join(list_codecs()))
    print("distortions: " + ", ".join(list_distortions()))


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mocodec", description="machine-oriented learned image compression")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, runner) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=runner)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # compressai's import warns about torch.jit.script; it is noise for a CLI user.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
    if argv and argv[0] == "train":  # LightningCLI owns training's arguments and configs
        from mocodec.training import cli_main

        return _guard(lambda: cli_main(argv[1:]))
    args = build_parser().parse_args(argv)
    return _guard(lambda: args._run(args))


def _guard(fn: Callable[[], int | None]) -> int:
    try:
        return int(fn() or 0)
    except MocodecError as exc:
        print(f"mocodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mocodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
