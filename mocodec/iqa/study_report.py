"""Writing a PCMP study (:mod:`mocodec.iqa.study`): tables, the plain reading, the figure, the per-pair records.

Layout of ``OUT/``::

    scores/           per-image scores, one .npz per metric configuration (the cache a rerun reads)
    pairs.csv         per pair: ids, families, levels, PSNRs, fold, every voter's vote, each rotation's
                      labelling label (``labelling@V``) and every metric's scores of A and B (``A:METRIC``,
                      ``B:METRIC``; fitted weights depend on the rotation: ``A:METRIC@V``)
    twoafc.csv        per rotation, label set and metric: 2AFC, 95 % interval, n, the judge relation
    comparisons.csv   every paired test: difference, bootstrap and Wilcoxon p-values, outcome
    agreement.csv     the held-out voter against the labelling label: overall, per family, per pair of families
    weights.csv       fitted weights per rotation, backbone and fold, with the fit's in-sample 2AFC
    study.md          the reading, the summary table, the agreement tables, one section per rotation
    study.png         2AFC with 95 % intervals per metric, one panel per rotation, both label sets
    study.json        everything above as data (settings, build, timings): written last

Each file is written atomically.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mocodec.evaluation.plots import pyplot
from mocodec.evaluation.results import write_results
from mocodec.files import atomic_write_bytes, atomic_write_text
from mocodec.iqa.study import BASELINES, LABEL_SETS, STUDY_FILE, WEIGHTING_TESTS, Rotation, StudyResult
from mocodec.utils.tables import to_csv, to_markdown

FORMAT, VERSION = "mocodec-iqa-study", 1
OWN_MARK = "†"  # a 2AFC judged by (a label set including) the metric's own backbone


def _figure(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.2g}"


def _with_interval(row: dict[str, Any]) -> str:
    mark = OWN_MARK if row["judge"] == "own" else ""
    return f"{_figure(row['2afc'])} [{_figure(row['low'])}, {_figure(row['high'])}]{mark}"


def judge_text(relation: str, label_set: str, backbone: str) -> str:
    """The judge relation in words, for the reading."""
    if relation == "own":
        where = "among the labelling voters" if label_set == "labelling" else "the held-out voter"
        return f"judged by its own backbone: {backbone} is {where}"
    if relation == "other":
        where = "held out, not a labelling voter" if label_set == "labelling" else "a labelling voter, not the held-out one"
        return f"not judged by its own backbone: {backbone} is {where}"
    return f"{backbone} is not a voter" if relation else ""


def _find(rows: Sequence[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _comparison_text(c: dict[str, Any]) -> str:
    return (
        f"{_figure(c['2afc_a'])} vs {c['b']} {_figure(c['2afc_b'])}: {c['outcome']} "
        f"(p_boot {_p(c['p_bootstrap'])}, p_wilcoxon {_p(c['p_wilcoxon'])})"
    )


def reading(result: StudyResult) -> list[str]:
    """The plain reading: for each comparison which way it came out, whether significant, and who judged it."""
    settings = result.info["settings"]
    feature, alpha = settings["feature_metric"]["label"], settings["alpha"]
    baselines = [spec.label for spec in BASELINES]
    lines = [
        f"Significant means p_boot < {alpha:g} (paired cluster bootstrap over references); p_wilcoxon treats pairs as "
        "independent and is shown alongside. p-values are per comparison, not corrected for multiplicity.",
        "",
    ]
    lines.append("**Overall** (default layers, against the held-out voter's votes, over the rotations):")
    lines.append("")
    for backbone in settings["backbones"]:
        metric = f"{feature}[{backbone}]"
        for base in baselines:
            found = [c for c in result.comparisons if c["a"] == metric and c["b"] == base and c["labels"] == "held-out"]
            parts = []
            for relation, words in (
                ("own", "judged by its own backbone"),
                ("other", "judged by another voter"),
                ("not a voter", "its backbone not a voter"),
            ):
                subset = [c for c in found if c["judge"] == relation]
                if subset:
                    outcomes = Counter(c["outcome"] for c in subset)
                    parts.append(f"{words}: {len(subset)} rotation(s), " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))
            lines.append(f"- {metric} vs {base}: " + "; ".join(parts) + ".")
        for kind, (a_suffix, _, asks) in WEIGHTING_TESTS.items():
            found = [c for c in result.comparisons if c["a"] == metric + a_suffix and c["comparison"] == kind and c["labels"] == "held-out"]
            if found:
                lines.append(f"- {metric} {asks}: " + "; ".join(f"held out {c['rotation']}: {c['outcome']}" for c in found) + ".")
    extras = [m.label for m in result.metrics if m.backbone is None and m.label not in baselines]
    for metric in extras:
        for base in baselines:
            found = [c for c in result.comparisons if c["a"] == metric and c["b"] == base and c["labels"] == "held-out"]
            lines.append(f"- {metric} vs {base}: " + "; ".join(f"held out {c['rotation']}: {c['outcome']}" for c in found) + ".")
    for rotation in result.rotations:
        lines += ["", f"**Held out {rotation.heldout}** (labels from {', '.join(rotation.labelling)}):", ""]
        for backbone in settings["backbones"]:
            metric = f"{feature}[{backbone}]"
            for label_set in LABEL_SETS:
                tests = [
                    c for c in result.comparisons if c["rotation"] == rotation.heldout and c["labels"] == label_set and c["a"] == metric
                ]
                if not tests:
                    continue
                words = "held-out votes" if label_set == "held-out" else "labelling label"
                lines.append(
                    f"- {metric} (default layers) on the {words} ({judge_text(tests[0]['judge'], label_set, backbone)}): "
                    + "; ".join(_comparison_text(c) for c in tests)
                    + "."
                )
            for kind, (a_suffix, _, asks) in WEIGHTING_TESTS.items():
                tests = [
                    c
                    for c in result.comparisons
                    if c["rotation"] == rotation.heldout and c["comparison"] == kind and c["a"] == metric + a_suffix
                ]
                lines.append(
                    f"- {metric} {asks}: "
                    + "; ".join(
                        f"{'held-out votes' if c['labels'] == 'held-out' else 'labelling label'} {_comparison_text(c)}" for c in tests
                    )
                    + "."
                )
            singles = [
                r
                for r in result.twoafc
                if r["rotation"] == rotation.heldout
                and r["labels"] == "held-out"
                and r["backbone"] == backbone
                and r["variant"].startswith("layer")
            ]
            if singles:
                best, worst = max(singles, key=lambda r: r["2afc"]), min(singles, key=lambda r: r["2afc"])
                lines.append(
                    f"- {metric} single layers on the held-out votes: best {best['variant']} ({_figure(best['2afc'])}), "
                    f"worst {worst['variant']} ({_figure(worst['2afc'])})."
                )
        for metric in extras:
            tests = [c for c in result.comparisons if c["rotation"] == rotation.heldout and c["a"] == metric]
            lines.append(f"- {metric}: " + "; ".join(f"{c['labels']} {_comparison_text(c)}" for c in tests) + ".")
        overall = _find(result.agreement, rotation=rotation.heldout, group_kind="all")
        lines.append(
            f"- the held-out voter agrees with the labelling label on {_figure(overall['agreement'])} of the pairs "
            f"[{_figure(overall['low'])}, {_figure(overall['high'])}] (ties count half)."
        )
    return lines


def summary_table(result: StudyResult) -> list[dict[str, Any]]:
    """Metric x rotation: the held-out 2AFC with its interval and the p-values against PSNR and MS-SSIM."""
    out = []
    for info in result.metrics:
        row: dict[str, Any] = {"metric": info.label}
        for rotation in result.rotations:
            found = _find(result.twoafc, rotation=rotation.heldout, labels="held-out", metric=info.label)
            row[f"held out {rotation.heldout}"] = _with_interval(found)
            for base in (spec.label for spec in BASELINES):
                c = _find(result.comparisons, rotation=rotation.heldout, labels="held-out", a=info.label, b=base)
                row[f"p vs {base} ({rotation.heldout})"] = _p(c["p_bootstrap"]) if c else ""
        out.append(row)
    return out


def rotation_table(result: StudyResult, rotation: Rotation) -> list[dict[str, Any]]:
    out = []
    for info in result.metrics:
        row: dict[str, Any] = {"metric": info.label}
        for label_set in LABEL_SETS:
            found = _find(result.twoafc, rotation=rotation.heldout, labels=label_set, metric=info.label)
            row[f"2afc[{label_set}]"] = _with_interval(found)
            row[f"judge[{label_set}]"] = found["judge"]
        fitted = _find(result.twoafc, rotation=rotation.heldout, labels="labelling", metric=info.label)
        row["2afc in-sample"] = _figure(fitted["2afc_in_sample"]) if "2afc_in_sample" in fitted else ""
        for base in (spec.label for spec in BASELINES):
            c = _find(result.comparisons, rotation=rotation.heldout, labels="held-out", a=info.label, b=base)
            row[f"p vs {base} [held-out]"] = _p(c["p_bootstrap"]) if c else ""
        out.append(row)
    return out


def agreement_tables(result: StudyResult) -> str:
    sections = []
    for kind, title in (("all", "Overall"), ("family", "Per family involved"), ("pair", "Per pair of families")):
        groups = list(dict.fromkeys(r["group"] for r in result.agreement if r["group_kind"] == kind))
        rows = []
        for group in groups:
            row: dict[str, Any] = {"group": group}
            for rotation in result.rotations:
                r = _find(result.agreement, rotation=rotation.heldout, group_kind=kind, group=group)
                row[f"held out {rotation.heldout}"] = f"{_figure(r['agreement'])} [{_figure(r['low'])}, {_figure(r['high'])}]"
                if kind == "all":
                    row[f"undecided ({rotation.heldout})"] = _figure(r["undecided"])
                    row[f"decided pairs only ({rotation.heldout})"] = (
                        _figure(r["agreement_decided"]) if r["agreement_decided"] is not None else ""
                    )
            row["n"] = r["n"]
            rows.append(row)
        sections.append(f"### {title}\n\n{to_markdown(rows)}")
    return "\n".join(sections)


def study_markdown(result: StudyResult) -> str:
    build, settings = result.info["build"], result.info["settings"]
    header = [
        "# PCMP study: which metric predicts machine preference?",
        "",
        f"PCMP build `{result.root}`: {build['pairs']} pairs of {build['references']} references ({build['images']} distorted images), "
        f"PSNR tolerance {build['tolerance']} dB; families: {', '.join(build['families'] or [])}; voters: {', '.join(result.voters)}.",
        f"Feature metric {settings['feature_metric']['label']} on {', '.join(settings['backbones'])}; fitted weights cross-fitted over "
        f"{settings['folds']} folds of references (ridge {settings['ridge']:g}); 95 % intervals and p_boot by a paired cluster bootstrap "
        f"over references ({settings['n_resamples']} resamples, seed {settings['seed']}). {result.info['images_scored']} images scored "
        f"once per metric ({result.info['seconds']['scoring']:.0f} s), statistics {result.info['seconds']['statistics']:.0f} s.",
        "",
        "Each rotation holds one voter out: the *labelling* label is the soft label (share of votes for A, ties half) of the other "
        "voters, the *held-out* label the held-out voter's votes. 2AFC = p·[metric prefers A] + (1 − p)·[metric prefers B], "
        "equal scores count half. `judge`: `own` = the metric's backbone is a voter of that label (it is judged by its own "
        f"backbone; marked {OWN_MARK}), `other` = its backbone is another voter of the build, `not a voter`. Fitted weights are "
        "fitted on the labelling label of the other folds' references only.",
        "",
        "## Reading",
        "",
        *reading(result),
        "",
        "## Summary: 2AFC against the held-out voter",
        "",
        f"Per rotation: 2AFC [95 % interval] ({OWN_MARK}: the held-out voter is the metric's own backbone), then p_boot against "
        "PSNR and against MS-SSIM.",
        "",
        to_markdown(summary_table(result)),
        "## Label agreement (error analysis of the PCMP proxy)",
        "",
        "Share of pairs on which the held-out voter's vote picks the image the labelling label picks (the label rounded: above ½ A, "
        "below ½ B); a tie of the held-out voter or an undecided label (exactly ½) counts half. `undecided`: share of pairs where "
        "either is undecided; `decided pairs only`: agreement on the others. Intervals: cluster bootstrap over references.",
        "",
        agreement_tables(result),
    ]
    for rotation in result.rotations:
        header += [
            "",
            f"## Held out {rotation.heldout} (labels from {', '.join(rotation.labelling)})",
            "",
            to_markdown(rotation_table(result, rotation)),
        ]
        weights = [w for w in result.weights if w["rotation"] == rotation.heldout]
        if weights:
            header += ["Fitted weights per fold (each scores the pairs of its fold; fitted on the other folds):", "", to_markdown(weights)]
    header += ["", "Every paired test, with its outcome: `comparisons.csv`; per-pair scores and labels: `pairs.csv`.", ""]
    return "\n".join(header)


def study_figure(result: StudyResult, path: Path) -> Path:
    """One panel per rotation: each metric's 2AFC with its interval, against the labelling label and the held-out votes."""
    plt = pyplot()
    labels = [m.label for m in result.metrics]
    y = np.arange(len(labels))
    panels = len(result.rotations)
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels + 3.2, 0.24 * len(labels) + 1.6), sharex=True, sharey=True, squeeze=False)
    styles = {"labelling": ("o", -0.17, "tab:blue"), "held-out": ("s", 0.17, "tab:orange")}
    backbones = [m.backbone for m in result.metrics]
    for ax, rotation in zip(axes[0], result.rotations):
        for k, backbone in enumerate(dict.fromkeys(b for b in backbones if b)):  # a light band behind each backbone's rows
            rows = [i for i, b in enumerate(backbones) if b == backbone]
            if k % 2 == 0:
                ax.axhspan(min(rows) - 0.5, max(rows) + 0.5, color="0.93", zorder=0)
        for label_set, (marker, offset, colour) in styles.items():
            rows = [_find(result.twoafc, rotation=rotation.heldout, labels=label_set, metric=m) for m in labels]
            values = np.array([r["2afc"] for r in rows], dtype=float)
            errors = np.abs(np.array([[r["low"], r["high"]] for r in rows], dtype=float).T - values)
            ax.errorbar(
                values,
                y + offset,
                xerr=np.nan_to_num(errors),
                fmt=marker,
                ms=4,
                capsize=2,
                color=colour,
                lw=0.8,
                label="labelling voters' soft label" if label_set == "labelling" else "held-out voter's votes",
            )
            own = np.array([r["judge"] == "own" for r in rows])
            if own.any():
                ax.scatter(
                    values[own],
                    (y + offset)[own],
                    s=70,
                    facecolors="none",
                    edgecolors="black",
                    lw=0.9,
                    zorder=3,
                    label="judged by its own backbone",
                )
        ax.axvline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"held out {rotation.heldout}\n(labels: {', '.join(rotation.labelling)})", fontsize=9)
        ax.set_xlabel("2AFC")
        ax.grid(True, axis="x", alpha=0.3)
    axes[0][0].set_yticks(y, labels, fontsize=8)
    axes[0][0].invert_yaxis()
    handles, names = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(names, handles))  # the own-backbone ring is drawn for both label sets: list it once
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.5 / (0.24 * len(labels) + 1.6), 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=130)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_study(result: StudyResult, out: str | Path) -> list[Path]:
    """Write every file of the layout above; ``study.json`` last. Returns the paths written."""
    out = Path(out)
    tables = {
        "pairs.csv": result.pairs,
        "twoafc.csv": result.twoafc,
        "comparisons.csv": result.comparisons,
        "agreement.csv": result.agreement,
        "weights.csv": result.weights,
    }
    written = []
    for name, rows in tables.items():
        atomic_write_text(out / name, to_csv(rows))
        written.append(out / name)
    atomic_write_text(out / "study.md", study_markdown(result))
    written += [out / "study.md", study_figure(result, out / "study.png")]
    payload = {
        "format": FORMAT,
        "version": VERSION,
        **result.info,
        "voters": result.voters,
        "rotations": [{"heldout": r.heldout, "labelling": list(r.labelling)} for r in result.rotations],
        "metrics": [m.__dict__ for m in result.metrics],
        "twoafc": result.twoafc,
        "comparisons": result.comparisons,
        "agreement": result.agreement,
        "weights": result.weights,
    }
    write_results(out / STUDY_FILE, payload)  # every value is a Python number or string already
    return [*written, out / STUDY_FILE]
