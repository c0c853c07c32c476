"""The report page: one self-contained HTML file of a sweep's (or an experiment's) results, to look at.

``mocodec report RESULTS... --out page.html`` (and ``make demo``, and every experiment) writes
one HTML file that opens offline in any browser -- plotly.js, styles, script, data and
images all inlined -- with

- the rate–distortion and rate–task curves, interactive (hover a point for its codec,
  quality, bpp and value; click a legend entry to hide a curve in every panel);
- the BD tables with their bootstrap intervals and verdicts (:mod:`mocodec.experiment.analysis`);
- a visual comparison: for the images the sweep kept crops of (:mod:`mocodec.evaluation.crops`;
  by default those where the codecs disagree most), the original and each codec's decoded
  crop at matched rates, side by side with a synchronized zoom, each labelled with its bpp,
  fidelity and, for a classification judge, its top-1 class, confidence and whether it is right.

Modules, one concept each: :mod:`.figures` (the curves as plotly figures: the one place
plotly is imported), :mod:`.content` (what a page shows of a results document: curve
series, kept images and their records), :mod:`.page` (the HTML: every string escaped, data
as JSON in a ``<script type="application/json">``; the template, style and script are
package files under ``assets/``), :mod:`.build` (a page from results files: ``mocodec report``),
:mod:`.browser` (the page opened in headless Chromium: checks, timings, screenshots; the one
place selenium is imported). This package's ``__init__`` imports nothing, so the experiment's
report can use :mod:`.page` without importing :mod:`.build`.
"""
