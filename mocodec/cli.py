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
    p.add_argument("--codec", default=None, help="registry name (see `mocodec list`; default bmshj2018-hyperprior, or the checkpoint's own)")
    p.add_argument("--checkpoint", default=None, help="trained weights: one rate point (a glob of several files: one point each)")
    p.add_argument("--pretrained", action="store_true", help="use the published weights (downloaded once, cached)")
    p.add_argument("--qualities", default=None, help="e.g. 1-8 (the default for learned codecs), or 10,30,50 for jpeg/webp/avif")
    p.add_argument("--dataset", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="results JSON (one curve per codec, each in CompressAI's schema, plus per-image records); "
                                                "an existing file of the same run is resumed")
    p.add_argument("--fidelity", default="psnr-rgb,ms-ssim,bpp-estimated", help="what to measure of each decoded image: "
                   "psnr-rgb, ms-ssim, bpp-estimated (the likelihood rate of learned codecs), or none")
    p.add_argument("--plot", default=None, help="RD plot to write (.png/.pdf)")
    p.add_argument("--compare", nargs="*", default=[], help="other results JSON files (e.g. CompressAI's published curves) to draw beside")
    p.add_argument("--chunk-size", type=int, default=16, help="images read and coded together")
    p.add_argument("--force", action="store_true", help="start --out afresh and overwrite --plot")
    _scale_out_args(p)


def _scale_out_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=0, help="coding processes (read, encode, decode, measure) feeding the judge; "
                                                          "0: code in the judge's process")
    p.add_argument("--devices", type=int, default=1, help="split the images across this many processes and merge their results")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="judge only shard I of N (0-based) into --out; join the shards with `mocodec merge`")


def _rd_curve_text(args: argparse.Namespace) -> str:
    """The one curve eval-rd codes, in eval-task's --codecs syntax."""
    from mocodec.errors import ConfigError

    if args.checkpoint and (args.pretrained or args.qualities):
        raise ConfigError("a checkpoint is one rate point (its quality is recorded in the file): drop --pretrained/--qualities, "
                          "or give several checkpoints with a glob")
    if args.checkpoint:
        return f"{args.codec}:{args.checkpoint}" if args.codec else f"ckpt:{args.checkpoint}"
    codec = args.codec or "bmshj2018-hyperprior"
    return f"{codec}@pretrained" if args.pretrained else codec


def _run_sweep(args: argparse.Namespace, make_task, curves, dataset_options: dict, fidelity) -> dict | None:
    """Run (or resume) the sweep of ``args`` in this process, in --devices processes or as a --shard; the document."""
    from mocodec.evaluation.shards import split_run
    from mocodec.evaluation.sweep import evaluate, evaluate_split

    shard, launched = split_run(args.shard, args.devices)
    options = dict(fidelity=fidelity, chunk_size=args.chunk_size, workers=args.workers, progress=_progress)
    if launched:
        return evaluate_split(make_task, curves, args.out, args.dataset, dataset_options, args.devices, force=args.force, **options)
    return evaluate(make_task(), curves, args.out, args.dataset, dataset_options, force=args.force, shard=shard, **options).doc


def _print_entries(doc: dict) -> None:
    from mocodec.utils.tables import to_text

    task = [m for m in doc["metrics"] if m not in doc["fidelity"] and any(v is not None for e in doc["entries"] for v in e["results"].get(m, []))]
    shown = ["point", "quality", "bpp", *doc["fidelity"], *task, "encoding_time", "decoding_time"]
    for entry in doc["entries"]:
        print(f"== {entry['name']}")
        res = entry["results"]
        rows = [{c: res[c][i] for c in shown if c in res} for i in range(len(res.get("point", [])))]
        print(to_text(rows, [c for c in shown if c in res]), end="")
    if doc["skipped"]:
        print(f"skipped {len(doc['skipped'])} unreadable image(s):", file=sys.stderr)
        for s in doc["skipped"]:
            print(f"  {s['path']}: {s['reason']}", file=sys.stderr)


@command("eval-rd", "rate-distortion (file bpp, PSNR, MS-SSIM, times) of a codec over qualities", _eval_rd_args)
def eval_rd(args: argparse.Namespace) -> None:
    from mocodec.evaluation.metrics import parse_fidelity
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.results import read_curves
    from mocodec.evaluation.sweep import FidelityOnly
    from mocodec.files import check_writable

    fidelity = parse_fidelity(args.fidelity)
    resuming = Path(args.out).is_file() and not args.force  # an unrelated file is refused by the sweep
    plot = check_writable(args.plot, args.force or resuming) if args.plot else None
    others = read_curves(args.compare)[0] if args.compare else []
    curves = plan_curves([_rd_curve_text(args)], [args.qualities] if args.qualities else [])
    doc = _run_sweep(args, FidelityOnly, curves, {}, fidelity)
    if doc is None:  # a torchrun rank other than 0: rank 0 reports
        return
    _print_entries(doc)
    if plot:
        plot_results(doc, plot, others=others)
        print(f"plot: {plot}")
    print(f"results: {args.out}{' (resumed)' if resuming else ''}")


# --------------------------------------------------------------------------- score

# Metric names that are not registry names: PSNR is the score of the `mse` term.
_METRIC_ALIASES = {"psnr": "mse", "ms-ssim": "msssim"}
# Constructor keyword -> the option that sets it; a metric accepts the options its factory takes.
_SCORE_OPTIONS = {
    "model": "--model", "net": "--net", "pretrained": "--pretrained", "layers": "--layers", "layer_weights": "--weights",
    "global_weight": "--global-weight", "resize_mode": "--resize-mode", "include_cls": "--include-cls",
}


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, e.g. 1,1,1,1; got '{text}'") from None


def _score_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", help="reference image, or a folder of them (searched recursively)")
    p.add_argument("distorted", help="distorted image, or a folder: pairs are matched by file name, extension ignored")
    p.add_argument("--metric", default="ml-clipsim", help="psnr, msssim, lpips, ml-clipsim, ml-featsim, ... (see `mocodec list`)")
    p.add_argument("--model", help="ml-clipsim: open_clip model (ViT-B-32, ViT-B-16, ...) or timm:NAME; ml-featsim: efficientnet-lite0/1/2")
    p.add_argument("--net", help="lpips backbone: alex, vgg or squeeze")
    p.add_argument("--pretrained", help="pretrained tag (ml-clipsim: openai, laion2b_s34b_b79k, ...) or a local weights file")
    p.add_argument("--layers", help="1-based block numbers, e.g. 3,6,9,12 (negatives count from the end), or all")
    p.add_argument("--weights", dest="layer_weights", type=_floats, help="one weight per layer, e.g. 1,1,1,1 (default uniform)")
    p.add_argument("--global-weight", type=float, help="weight of the global-embedding term (default 1; all weights are normalised)")
    p.add_argument("--resize-mode", choices=("resize", "tiles", "none"), help="how images reach the encoder's input size")
    p.add_argument("--include-cls", action="store_true", default=None, help="also compare the class tokens")
    p.add_argument("--out", help="write the CSV to this file instead of printing it")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def _image_pairs(reference: Path, distorted: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(reference, distorted) pairs of two files, or of two folders by relative name without extension; unmatched."""
    from mocodec.data.io import list_images
    from mocodec.errors import ConfigError

    if reference.is_file() and distorted.is_file():
        return [(reference, distorted)], []
    if not (reference.is_dir() and distorted.is_dir()):
        raise ConfigError(f"give two image files or two folders, got {reference} and {distorted}")
    refs = {p.relative_to(reference).with_suffix(""): p for p in list_images(reference)}
    pairs, unmatched = [], []
    for p in list_images(distorted):
        key = p.relative_to(distorted).with_suffix("")
        if key in refs:
            pairs.append((refs[key], p))
        else:
            unmatched.append(p)
    if not pairs:
        raise ConfigError(f"no image in {distorted} has a namesake in {reference}; pairs are matched by file name")
    return pairs, unmatched


@command("score", "score distorted images against references (per-image CSV): ML-CLIPSim, PSNR, MS-SSIM, LPIPS, ...", _score_args)
def score(args: argparse.Namespace) -> None:
    import csv
    import inspect
    import io

    import torch

    from mocodec.data.io import read_image
    from mocodec.errors import ConfigError
    from mocodec.files import atomic_write_text, check_writable
    from mocodec.losses import DISTORTIONS, create_distortion
    from mocodec.registry import canonical_name

    out = check_writable(args.out, args.force) if args.out else None
    name = _METRIC_ALIASES.get(canonical_name(args.metric), args.metric)
    accepted = inspect.signature(DISTORTIONS.get(name)).parameters
    kwargs = {key: getattr(args, key) for key in _SCORE_OPTIONS if getattr(args, key) is not None}
    foreign = [_SCORE_OPTIONS[key] for key in kwargs if key not in accepted]
    if foreign:
        raise ConfigError(f"{', '.join(foreign)} does not apply to metric '{args.metric}'")
    pairs, unmatched = _image_pairs(Path(args.reference), Path(args.distorted))
    metric = create_distortion(name, **kwargs)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["reference", "distorted", metric.score_name])
    values = []
    for ref, dist in _progress(pairs, len(pairs), "score"):
        x, y = read_image(ref)[0], read_image(dist)[0]
        if x.shape != y.shape:
            why = f"{dist} is {y.shape[2]}x{y.shape[1]} but its reference {ref} is {x.shape[2]}x{x.shape[1]}; score images of one size"
            if len(pairs) == 1:
                raise ConfigError(why)
            print(f"skipped: {why}", file=sys.stderr)
            continue
        with torch.no_grad():
            values.append(metric.score(y[None], x[None]).item())
        writer.writerow([ref, dist, f"{values[-1]:.6f}"])
    if out:
        atomic_write_text(out, table.getvalue())
    else:
        print(table.getvalue(), end="")
    for p in unmatched:
        print(f"unmatched: {p} has no reference", file=sys.stderr)
    direction = "higher" if metric.higher_is_better else "lower"
    mean = sum(values) / len(values) if values else float("nan")
    print(f"{metric.score_name}: mean {mean:.6f} over {len(values)} image pairs ({direction} is better)", file=sys.stderr)


# --------------------------------------------------------------------------- export


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (.ckpt) written by `mocodec train`")
    p.add_argument("output", help="codec weights file to write (.pth), for `mocodec compress --checkpoint`")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


@command("export", "write a training checkpoint's codec (weights + CDF tables) for `compress --checkpoint`", _export_args)
def export(args: argparse.Namespace) -> None:
    from mocodec.files import check_writable
    from mocodec.training import export_codec

    out = check_writable(args.output, args.force)
    record = export_codec(args.checkpoint, out)
    print(f"{out}: {record['name']} quality {record['quality']} ({out.stat().st_size} bytes)")


# --------------------------------------------------------------------------- pcmp / iqa


def _pcmp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="dataset folder to write (an interrupted build in it is resumed)")
    p.add_argument("--references", required=True, help="folder of reference images (searched recursively)")
    p.add_argument("--distortions", nargs="+", default=None, metavar="FAMILY[=LEVELS]",
                   help="distortion families and optional levels, e.g. jpeg=10,30 gaussian-blur=1,2 ckpt:PATH NAME@pretrained=1-8 "
                        "(default: jpeg webp avif gaussian-blur gaussian-noise resample contrast colour-shift)")
    p.add_argument("--voters", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"],
                   metavar="MODEL[=WEIGHTS]", help="classifiers that vote (classification-task model names; default: EfficientNet-Lite0/1/2)")
    p.add_argument("--tolerance", type=float, default=0.5,
                   help="largest PSNR difference of a pair, in dB (default 0.5); pcmp.json also counts the pairs other tolerances give")
    p.add_argument("--seed", type=int, default=0, help="seed of noise, pair order and pair sampling")
    p.add_argument("--max-pairs", type=int, default=None, help="keep at most this many pairs per reference (sampled with --seed)")
    p.add_argument("--max-size", type=int, default=None, help="downscale references whose longer side exceeds this many pixels")
    p.add_argument("--soft", choices=("kl", "cosine"), default="kl", help="soft consistency deciding a vote when top-1 does not")
    p.add_argument("--tie-tolerance", type=float, default=1e-6, help="soft values closer than this tie (half a vote each)")
    p.add_argument("--force", action="store_true", help="delete a previous build in OUT and start again")


@command("pcmp", "build a PCMP dataset: PSNR-matched distortion pairs labelled by prediction-consistency votes", _pcmp_args)
def pcmp(args: argparse.Namespace) -> None:
    from mocodec.iqa.distortions import DEFAULT_FAMILIES, create_family
    from mocodec.iqa.pcmp import BuildSettings, build_pcmp, find_references
    from mocodec.iqa.voting import VoteRule, create_voter

    find_references(args.references)  # before loading any model
    settings = BuildSettings(args.tolerance, args.seed, args.max_pairs, args.max_size, VoteRule(args.soft, args.tie_tolerance))
    families = [create_family(spec) for spec in args.distortions or DEFAULT_FAMILIES]
    voters = [create_voter(spec) for spec in args.voters]
    summary = build_pcmp(args.references, args.out, families, voters, settings, force=args.force, progress=_progress)
    print(f"{args.out}: {summary['pairs']} pairs of {summary['images']} distorted images of {summary['references']} references")
    print("pairs per PSNR tolerance: " + ", ".join(f"{t} dB: {n}" for t, n in summary["pairs_per_tolerance"].items()))
    for name, stats in summary["voters"].items():
        print(f"  {name}: top-1 kept on {stats['top1_match_rate']:.1%} of images, mean KL {stats['mean_kl']:.4f}")
    for item in summary["skipped"]:
        print(f"skipped {item['reference']}: {item['why']}", file=sys.stderr)


def _iqa_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="iqa_command", metavar="ACTION", required=True)
    e = sub.add_parser("eval", help="2AFC / SRCC / KRCC / PLCC of metrics on IQA datasets, with paired tests")
    e.add_argument("--dataset", action="append", required=True, metavar="NAME=PATH",
                   help="live, live-realigned, tid2013, kadid10k, mpd (manifest CSV), mpd-pairs, pcmp; repeatable")
    e.add_argument("--metric", nargs="+", required=True, metavar="NAME[:CONFIG]",
                   help="registered metrics (psnr, msssim, lpips, ml-clipsim, ...); :CONFIG is a YAML of keyword arguments")
    e.add_argument("--label-voters", nargs="+", default=None, help="pcmp: voters whose votes label the pairs (default: all not held out)")
    e.add_argument("--heldout-voters", nargs="+", default=None, help="pcmp: disjoint voters whose votes give a second, held-out label")
    e.add_argument("--logistic", choices=("4", "5"), default="5", help="parameters of the logistic fit before PLCC (default 5)")
    _iqa_common_args(e)
    a = sub.add_parser("ablate", help="ML-CLIPSim layer ablation on PCMP, with per-layer weights fitted on a training split")
    a.add_argument("--pcmp", required=True, help="a complete PCMP dataset folder")
    a.add_argument("--metric", default="ml-clipsim", metavar="NAME[:CONFIG]", help="multi-layer metric and its base arguments")
    a.add_argument("--subset", action="append", default=None, metavar="LAYERS", help="a layer subset to score, e.g. 3,6,9,12 (repeatable)")
    a.add_argument("--train-fraction", type=float, default=0.5, help="share of references whose pairs fit the weights")
    a.add_argument("--ridge", type=float, default=1e-3, help="L2 penalty of the fit on standardised components")
    a.add_argument("--heldout-voters", nargs="+", default=None, help="disjoint voters giving a second, held-out label")
    _iqa_common_args(a)
    m = sub.add_parser("mpd-manifest", help="write the manifest CSV that `--dataset mpd=` reads, from MPD's archive and score table")
    m.add_argument("--root", required=True, help="the extracted archive (searched recursively for the listed files)")
    m.add_argument("--scores", required=True, help="the score table (CSV)")
    m.add_argument("--out", required=True, help="manifest CSV to write")
    m.add_argument("--distorted-column", default="distorted")
    m.add_argument("--reference-column", default="reference")
    m.add_argument("--score-column", default="score")
    m.add_argument("--type-column", default=None)
    m.add_argument("--force", action="store_true", help="overwrite --out")


def _iqa_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="results folder (tables, plots, results.json)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for intervals and p-values")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite results already in --out")


@command("iqa", "evaluate quality metrics: `iqa eval` (IQA datasets, PCMP), `iqa ablate` (layer weights), `iqa mpd-manifest`", _iqa_args)
def iqa(args: argparse.Namespace) -> None:
    from mocodec.iqa.report import check_output_folder, write_reports

    if args.iqa_command == "mpd-manifest":
        from mocodec.files import check_writable
        from mocodec.iqa.datasets import write_mpd_manifest

        out = check_writable(args.out, args.force)
        n = write_mpd_manifest(args.root, args.scores, out, distorted_column=args.distorted_column,
                               reference_column=args.reference_column, score_column=args.score_column, type_column=args.type_column)
        print(f"{out}: {n} scored images")
        return
    from mocodec.iqa.datasets import load_iqa_dataset
    from mocodec.iqa.evaluate import MetricSpec

    out = check_output_folder(args.out, args.force)
    if args.iqa_command == "ablate":
        from mocodec.iqa.ablation import run_ablation, write_weights

        subsets = [[int(v) for v in s.split(",") if v.strip()] for s in args.subset] if args.subset else None
        dataset = load_iqa_dataset("pcmp", args.pcmp, heldout_voters=args.heldout_voters)
        spec = MetricSpec.parse(args.metric, aliases=_METRIC_ALIASES)
        result = run_ablation(dataset, spec, subsets=subsets, train_fraction=args.train_fraction, ridge=args.ridge,
                              n_resamples=args.resamples, seed=args.seed, progress=_progress)
        weights = write_weights(out / f"{spec.name}-fitted.yaml", result.fitted, spec.name)
        write_reports([result.report], out, extra={"fitted": result.fitted, "components": result.components})
        print((out / f"{result.report.dataset}.md").read_text())
        print(f"fitted weights: {weights} (use --metric {spec.name}:{weights})")
        return
    datasets = []
    for text in args.dataset:
        name, sep, path = text.partition("=")
        if not sep:
            from mocodec.errors import ConfigError

            raise ConfigError(f"--dataset takes NAME=PATH, got '{text}'")
        options = {"label_voters": args.label_voters, "heldout_voters": args.heldout_voters} if name.strip() == "pcmp" else {}
        datasets.append(load_iqa_dataset(name.strip(), path, **options))
    from mocodec.iqa.evaluate import evaluate_metrics

    metrics = [MetricSpec.parse(m, aliases=_METRIC_ALIASES) for m in args.metric]
    reports = evaluate_metrics(datasets, metrics, logistic=args.logistic, n_resamples=args.resamples, seed=args.seed, progress=_progress)
    write_reports(reports, out, extra={"metrics": [m.label for m in metrics]})
    for report in reports:
        print((out / f"{report.dataset}.md").read_text())
    print(f"results: {out}")


# --------------------------------------------------------------------------- eval-task / bd


def _key_values(pairs: Sequence[str], flag: str) -> dict:
    """``KEY=VALUE`` texts -> a dict; values read as YAML scalars (``64`` an int, ``true`` a bool)."""
    import yaml

    from mocodec.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got '{pair}'")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value.strip() else None
    return out


def _eval_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="classification", help="task registry name (see `mocodec list`)")
    p.add_argument("--model", default=None, help="the task's judge, e.g. efficientnet_lite0 (offline), resnet50 (timm), torchvision:resnet50")
    p.add_argument("--weights", default=None, help="local weights file for --model instead of the published ones")
    p.add_argument("--random-init", action="store_true", help="judge with a randomly initialised model (smoke tests)")
    p.add_argument("--device", default=None, help="device of the task's model, e.g. cuda")
    p.add_argument("--task-option", action="append", default=[], metavar="KEY=VALUE", help="another task argument, e.g. batch_size=64")
    p.add_argument("--codecs", action="append", default=None, metavar="LIST",
                   help="comma-separated curves: NAME, NAME@pretrained, ckpt:PATH, or ckpt:GLOB (a series of checkpoints, one curve); "
                        "LABEL=... names a curve (default: jpeg,webp)")
    p.add_argument("--qualities", action="append", default=[], metavar="[KEY=]LIST",
                   help="rate points, e.g. jpeg=10,30,50 or 1-8; KEY is a curve label, a codec name, 'classic' or 'learned' "
                        "(defaults: classic 5,10,20,30,50,75,95; learned 1-8; checkpoints: their own)")
    p.add_argument("--dataset", default=None, help="image folder (ImageNet ImageFolder / LOC csv layout, or unlabeled); default: the task's offline set")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE", help="e.g. layout=unlabeled, labels=PATH.csv")
    p.add_argument("--out", required=True, help="results JSON; an existing file of the same task, model and dataset is resumed")
    p.add_argument("--plot", default=None, help="rate-task figure (.png/.pdf), one panel per metric; redrawn when resuming")
    p.add_argument("--anchor", default=None, help="curve the BD table compares against (default: the first)")
    p.add_argument("--bd-metric", default="agreement", help="metric of the BD table (default: agreement)")
    p.add_argument("--bd-method", default="pchip", help="BD interpolation: pchip, akima or cubic")
    p.add_argument("--fidelity", default="psnr-rgb,ms-ssim", help="what to measure of each decoded image besides the task: "
                   "psnr-rgb, ms-ssim, bpp-estimated, or none")
    p.add_argument("--chunk-size", type=int, default=16, help="images read and judged together")
    _scale_out_args(p)
    p.add_argument("--force", action="store_true", help="start --out afresh and overwrite --plot")


@command("eval-task", "rate-task curves: code a dataset at many rates, judge the decoded images with a task", _eval_task_args)
def eval_task(args: argparse.Namespace) -> None:
    import functools

    from mocodec.evaluation.metrics import parse_fidelity
    from mocodec.evaluation.plan import plan_curves
    from mocodec.evaluation.plots import plot_results
    from mocodec.evaluation.sweep import create_task_from_options
    from mocodec.files import check_writable

    options = _key_values(args.task_option, "--task-option")
    options.update({k: v for k, v in (("model", args.model), ("weights", args.weights), ("device", args.device)) if v is not None})
    if args.random_init:
        options["pretrained"] = False
    fidelity = parse_fidelity(args.fidelity)
    curves = plan_curves(args.codecs or ["jpeg,webp"], args.qualities)
    resuming = Path(args.out).is_file() and not args.force  # an unrelated file is refused by the sweep
    plot = check_writable(args.plot, args.force or resuming) if args.plot else None
    make_task = functools.partial(create_task_from_options, args.task, options)  # each process builds its own judge
    make_task()  # bad task options fail here, before any process starts
    doc = _run_sweep(args, make_task, curves, _key_values(args.dataset_option, "--dataset-option"), fidelity)
    if doc is None:  # a torchrun rank other than 0: rank 0 reports
        return
    _print_entries(doc)
    shown = [m for m, meta in doc["metrics"].items() if any(v is not None for e in doc["entries"] for v in e["results"].get(m, []))]
    if len(doc["entries"]) > 1 and args.bd_metric in shown:
        _print_bd(doc["entries"], args.anchor, args.bd_metric, args.bd_method, doc["metrics"][args.bd_metric]["higher_is_better"])
    if plot:
        plot_results(doc, plot)
        print(f"plot: {plot}")
    print(f"results: {args.out}{' (resumed)' if resuming else ''}")


def _print_bd(entries, anchor, metric: str, method: str, higher_is_better: bool, min_points: int | None = None) -> None:
    from mocodec.evaluation.bd import MIN_POINTS, bd_table, format_table

    rows = bd_table(entries, anchor, metric, method, higher_is_better, min_points=min_points or MIN_POINTS)
    print(format_table(rows, anchor or entries[0]["name"], metric, method))


def _bd_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", help="eval-task results and/or CompressAI-schema JSON files (eval-rd, published curves)")
    p.add_argument("--metric", default="agreement", help="metric to compare at equal rate / rate at equal metric (default: agreement)")
    p.add_argument("--anchor", default=None, help="curve name to compare against (default: the first)")
    p.add_argument("--method", default="pchip", help="interpolation: pchip (default), akima or cubic")
    p.add_argument("--lower-is-better", action="store_true", help="the metric improves downwards (mocodec results files say so themselves)")
    p.add_argument("--min-points", type=int, default=None, help="points each curve needs (default 4; fewer gives a curve of straight segments)")


@command("bd", "BD-rate and BD-metric of rate curves against an anchor curve", _bd_args)
def bd(args: argparse.Namespace) -> None:
    from mocodec.evaluation.bd import load_curves

    entries, higher = load_curves(args.results, args.metric)
    _print_bd(entries, args.anchor, args.metric, args.method, False if args.lower_is_better else (higher if higher is not None else True),
              args.min_points)


# --------------------------------------------------------------------------- merge


def _merge_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="results file to write")
    p.add_argument("inputs", nargs="+", help="results files of disjoint images: the shards of a --shard I/N run")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


@command("merge", "merge eval-task / eval-rd results of disjoint images (the files of --shard runs) into one file", _merge_args)
def merge(args: argparse.Namespace) -> None:
    from mocodec.evaluation.results import write_results
    from mocodec.evaluation.sweep import merge_files
    from mocodec.files import check_writable

    out = check_writable(args.out, args.force)
    merged = merge_files(args.inputs)
    write_results(out, merged)
    entries = merged["entries"]
    print(f"{out}: {sum(len(e['per_image']) for e in entries)} per-image records of {len(entries)} curve(s) from {len(args.inputs)} files")


# --------------------------------------------------------------------------- experiment


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="experiment recipe (YAML), e.g. configs/experiments/offline_small.yaml")
    p.add_argument("--out", default=None, help="results folder (default: experiments/<recipe name>); rerun to resume")
    p.add_argument("--jobs", type=int, default=1, help="training runs at once, each with 1/JOBS of the threads (default 1)")


@command("experiment", "train codecs on several distortion terms, judge them by tasks, report rate–task curves and BD-rates", _experiment_args)
def experiment(args: argparse.Namespace) -> None:
    from mocodec.experiment import load_recipe, run_experiment

    recipe = load_recipe(args.config)
    out = Path(args.out or Path("experiments") / recipe.name)
    command_line = f"mocodec experiment --config {args.config}" + (f" --out {args.out}" if args.out else "")
    command_line += f" --jobs {args.jobs}" if args.jobs != 1 else ""
    # flush: a run can take minutes, and progress lines must not wait in a pipe's buffer
    run_experiment(recipe, out, log=lambda line: print(line, flush=True), progress=_progress, command=command_line, jobs=args.jobs)


# --------------------------------------------------------------------------- list


@command("list", "list registered codecs, distortions and tasks", lambda p: None)
def list_names(args: argparse.Namespace) -> None:
    from mocodec.codecs import list_codecs
    from mocodec.losses import list_distortions
    from mocodec.tasks import list_tasks

    print("codecs:      " + ", ".join(list_codecs()))
    print("distortions: " + ", ".join(list_distortions()))
    print("tasks:       " + ", ".join(list_tasks()))


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
