"""``mocodec merge``: join the results files of disjoint images (the shards of ``--shard I/N`` runs) into one."""

from __future__ import annotations

import argparse

NAME = "merge"
HELP = "merge eval-task / eval-rd results of disjoint images (the files of --shard runs) into one file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="results file to write")
    parser.add_argument("inputs", nargs="+", help="results files of disjoint images: the shards of a --shard I/N run")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def run(args: argparse.Namespace) -> None:
    from mocodec.evaluation.crops import merge_crops
    from mocodec.evaluation.results import write_results
    from mocodec.evaluation.sweep import merge_files
    from mocodec.files import check_writable

    out = check_writable(args.out, args.force)
    merged = merge_files(args.inputs)
    write_results(out, merged)
    entries = merged["entries"]
    print(f"{out}: {sum(len(e['per_image']) for e in entries)} per-image records of {len(entries)} curve(s) from {len(args.inputs)} files")
    kept = merge_crops(args.inputs, out)  # the decoded crops the shards kept (for `mocodec report`), as one run would have kept them
    if kept:
        print(f"{out}: decoded crops of {kept} image(s) kept")
