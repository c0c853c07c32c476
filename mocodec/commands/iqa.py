"""``mocodec iqa``: evaluate quality metrics (``iqa eval``), fit ML-CLIPSim's layer weights (``iqa ablate``), the PCMP study
(``iqa study``), write MPD's manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "iqa"
HELP = "evaluate quality metrics: `iqa eval` (IQA datasets, PCMP), `iqa ablate` (layer weights), `iqa study` (held-out voters), `iqa mpd-manifest`"


def _add_common_arguments(parser: argparse.ArgumentParser, out_help: str = "results folder (tables, plots, results.json)") -> None:
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for intervals and p-values")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite results already in --out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="iqa_command", metavar="ACTION", required=True)
    e = sub.add_parser("eval", help="2AFC / SRCC / KRCC / PLCC of metrics on IQA datasets, with paired tests")
    e.add_argument(
        "--dataset",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="live, live-realigned, tid2013, kadid10k, mpd (manifest CSV), mpd-pairs, pcmp; repeatable",
    )
    e.add_argument(
        "--metric",
        nargs="+",
        required=True,
        metavar="NAME[:CONFIG]",
        help="registered metrics (psnr, msssim, lpips, ml-clipsim, ...); :CONFIG is a YAML of keyword arguments",
    )
    e.add_argument("--label-voters", nargs="+", default=None, help="pcmp: voters whose votes label the pairs (default: all not held out)")
    e.add_argument("--heldout-voters", nargs="+", default=None, help="pcmp: disjoint voters whose votes give a second, held-out label")
    e.add_argument("--logistic", choices=("4", "5"), default="5", help="parameters of the logistic fit before PLCC (default 5)")
    _add_common_arguments(e)
    a = sub.add_parser("ablate", help="ML-CLIPSim layer ablation on PCMP, with per-layer weights fitted on a training split")
    a.add_argument("--pcmp", required=True, help="a complete PCMP dataset folder")
    a.add_argument("--metric", default="ml-clipsim", metavar="NAME[:CONFIG]", help="multi-layer metric and its base arguments")
    a.add_argument("--subset", action="append", default=None, metavar="LAYERS", help="a layer subset to score, e.g. 3,6,9,12 (repeatable)")
    a.add_argument("--train-fraction", type=float, default=0.5, help="share of references whose pairs fit the weights")
    a.add_argument("--ridge", type=float, default=1e-3, help="L2 penalty of the fit on standardised components")
    a.add_argument("--heldout-voters", nargs="+", default=None, help="disjoint voters giving a second, held-out label")
    _add_common_arguments(a)
    s = sub.add_parser(
        "study",
        help="the PCMP study: every voter held out in turn; 2AFC of PSNR, MS-SSIM, ml-featsim per backbone, "
        "layer and fitted weights; paired tests; label agreement",
    )
    s.add_argument("--pcmp", required=True, help="a complete PCMP dataset folder with the votes of at least 2 voters")
    s.add_argument(
        "--backbones",
        nargs="+",
        default=["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"],
        metavar="MODEL",
        help="backbones of the feature metric (its model argument; default: EfficientNet-Lite0/1/2)",
    )
    s.add_argument(
        "--feature-metric",
        default="ml-featsim",
        metavar="NAME[:CONFIG]",
        help="multi-layer metric and its base arguments (default ml-featsim; layers/weights in CONFIG set its default variant)",
    )
    s.add_argument("--metric", nargs="+", default=[], metavar="NAME[:CONFIG]", help="further metrics, each compared with PSNR and MS-SSIM")
    s.add_argument("--folds", type=int, default=2, help="reference folds of the cross-fitted weights (default 2)")
    s.add_argument("--ridge", type=float, default=1e-3, help="L2 penalty of the fit on standardised components")
    _add_common_arguments(s, "study folder (study.json, study.md, study.png, CSVs, scores/: the per-image score cache)")
    m = sub.add_parser("mpd-manifest", help="write the manifest CSV that `--dataset mpd=` reads, from MPD's archive and score table")
    m.add_argument("--root", required=True, help="the extracted archive (searched recursively for the listed files)")
    m.add_argument("--scores", required=True, help="the score table (CSV)")
    m.add_argument("--out", required=True, help="manifest CSV to write")
    m.add_argument("--distorted-column", default="distorted")
    m.add_argument("--reference-column", default="reference")
    m.add_argument("--score-column", default="score")
    m.add_argument("--type-column", default=None)
    m.add_argument("--force", action="store_true", help="overwrite --out")


def run(args: argparse.Namespace) -> None:
    # Each action imports its own part of mocodec.iqa: writing a manifest loads no metric.
    {"eval": _evaluate, "ablate": _ablate, "study": _study, "mpd-manifest": _mpd_manifest}[args.iqa_command](args)


def _mpd_manifest(args: argparse.Namespace) -> None:
    from mocodec.files import check_writable
    from mocodec.iqa.datasets import write_mpd_manifest

    out = check_writable(args.out, args.force)
    n = write_mpd_manifest(
        args.root,
        args.scores,
        out,
        distorted_column=args.distorted_column,
        reference_column=args.reference_column,
        score_column=args.score_column,
        type_column=args.type_column,
    )
    print(f"{out}: {n} scored images")


def _ablate(args: argparse.Namespace) -> None:
    from mocodec.iqa.ablation import run_ablation, write_weights
    from mocodec.iqa.datasets import load_iqa_dataset
    from mocodec.iqa.evaluate import MetricSpec
    from mocodec.iqa.report import check_output_folder, write_reports
    from mocodec.scoring import METRIC_ALIASES
    from mocodec.utils.progress import progress_bar

    out = check_output_folder(args.out, args.force)
    subsets = [[int(v) for v in s.split(",") if v.strip()] for s in args.subset] if args.subset else None
    dataset = load_iqa_dataset("pcmp", args.pcmp, heldout_voters=args.heldout_voters)
    spec = MetricSpec.parse(args.metric, aliases=METRIC_ALIASES)
    result = run_ablation(
        dataset,
        spec,
        subsets=subsets,
        train_fraction=args.train_fraction,
        ridge=args.ridge,
        n_resamples=args.resamples,
        seed=args.seed,
        progress=progress_bar,
    )
    weights = write_weights(out / f"{spec.name}-fitted.yaml", result.fitted, spec.name)
    write_reports([result.report], out, extra={"fitted": result.fitted, "components": result.components})
    print((out / f"{result.report.dataset}.md").read_text())
    print(f"fitted weights: {weights} (use --metric {spec.name}:{weights})")


def _study(args: argparse.Namespace) -> None:
    from mocodec.iqa.evaluate import MetricSpec
    from mocodec.iqa.study import StudySettings, run_study
    from mocodec.iqa.study_report import write_study
    from mocodec.scoring import METRIC_ALIASES
    from mocodec.utils.progress import progress_bar

    settings = StudySettings(
        feature_metric=MetricSpec.parse(args.feature_metric, aliases=METRIC_ALIASES),
        backbones=tuple(args.backbones),
        metrics=tuple(MetricSpec.parse(m, aliases=METRIC_ALIASES) for m in args.metric),
        folds=args.folds,
        ridge=args.ridge,
        n_resamples=args.resamples,
        seed=args.seed,
    )
    result = run_study(args.pcmp, args.out, settings, force=args.force, progress=progress_bar)
    write_study(result, args.out)
    text = (Path(args.out) / "study.md").read_text()
    print(text[text.index("## Reading") : text.index("## Label agreement")].rstrip())
    print(f"study: {Path(args.out) / 'study.md'} (tables, reading), study.png, pairs.csv, study.json")


def _evaluate(args: argparse.Namespace) -> None:
    from mocodec.errors import ConfigError
    from mocodec.iqa.datasets import load_iqa_dataset
    from mocodec.iqa.evaluate import MetricSpec, evaluate_metrics
    from mocodec.iqa.report import check_output_folder, write_reports
    from mocodec.scoring import METRIC_ALIASES
    from mocodec.utils.progress import progress_bar

    out = check_output_folder(args.out, args.force)
    datasets = []
    for text in args.dataset:
        name, sep, path = text.partition("=")
        if not sep:
            raise ConfigError(f"--dataset takes NAME=PATH, got '{text}'")
        options = {"label_voters": args.label_voters, "heldout_voters": args.heldout_voters} if name.strip() == "pcmp" else {}
        datasets.append(load_iqa_dataset(name.strip(), path, **options))
    metrics = [MetricSpec.parse(m, aliases=METRIC_ALIASES) for m in args.metric]
    reports = evaluate_metrics(datasets, metrics, logistic=args.logistic, n_resamples=args.resamples, seed=args.seed, progress=progress_bar)
    write_reports(reports, out, extra={"metrics": [m.label for m in metrics]})
    for report in reports:
        print((out / f"{report.dataset}.md").read_text())
    print(f"results: {out}")
