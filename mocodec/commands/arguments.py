"""Arguments several commands share: a codec and its weights, and how an evaluation is split across processes."""

from __future__ import annotations

import argparse

from mocodec.errors import ConfigError


def add_codec_arguments(parser: argparse.ArgumentParser) -> None:
    """``--codec``, ``--checkpoint``, ``--pretrained``: a registered codec and where its weights come from."""
    parser.add_argument("--codec", default="bmshj2018-hyperprior", help="registry name (see `mocodec list`)")
    parser.add_argument("--checkpoint", default=None, help="weights file: CompressAI state dict or mocodec export/checkpoint")
    parser.add_argument("--pretrained", action="store_true", help="use the published weights (downloaded once, cached)")


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices N`` (processes launched and joined here) and ``--shard I/N`` (one shard of a run split elsewhere)."""
    parser.add_argument("--devices", type=int, default=1, help="split the images across this many processes and merge their results")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="judge only shard I of N (0-based) into --out; join the shards with `mocodec merge`")


def split_run(args: argparse.Namespace):
    """Whether ``args`` ask for a split run: (this run's --shard or None, True when processes are launched/joined)."""
    # Imported here, as every command's library: building the parser stays cheap (see mocodec.commands).
    from mocodec.evaluation.distributed import Shard

    shard = Shard.parse(args.shard) if args.shard else None
    launched = args.devices > 1 or Shard.from_environment() is not None
    if shard is not None and launched:
        raise ConfigError("--shard runs one shard in this process; drop --devices (and torchrun), or drop --shard")
    return shard, launched
