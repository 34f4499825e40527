"""The report's first screen: the headline numbers, their change against a baseline, and what to look at first.

Pure functions over the metrics the stages already write (dicts in, dataclasses out; no files, no Caffe):

- per model, from evaluate's metrics.json (final accuracy, errors, images) and parse-log's metrics.json
  (training seconds, last iteration): accuracy with its 95% Wilson interval, errors, training time and it/s
  (iterations over training seconds; the seconds include the test passes, as a user waiting for the run sees);
- the read benchmark's headline ratios (bench-io's metrics.json: LMDB over JPEG files, Python and Caffe, warm);
- each model's most-confused pair (analyze's summary.json headline) and its share of the errors;
- every number's change against the same file at the baseline commit (baseline.py), like `dvc metrics diff`;
- "worth looking at": every finding the data supports, each with a score, a sentence and the section it links
  to; the page shows the highest three. The scores rank problems first (weights that do not reproduce, a
  regression beyond noise, a test loss that turned upward), then differences that are statistically clear,
  then plain facts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from caffepipe.evaluation.error_stats import wilson_interval

HIGHLIGHTS_SHOWN = 3
# Read-benchmark ratios shown on the first screen: (metrics.json key, what it compares)
BENCH_RATIOS = (("python_lmdb_over_jpeg_warm", "LMDB over JPEG files, Python reader"),
                ("caffe_lmdb_over_jpeg_warm", "LMDB Data layer over JPEG ImageData layer, Caffe"))
# A test loss this much above its minimum at the last test pass reads as overfitting (or a diverging run).
LOSS_RISE = 1.10
# Unequal class error rates are worth a look when the chi-square test rejects equal rates at this level.
CLASS_TEST_LEVEL = 0.01


# ---------------------------------------------------------------------------------------------------------
# Numbers and their change

@dataclass(frozen=True)
class Change:
    """A number's change against the baseline, as the page shows it."""
    text: str                 # "+0.0012", "−3", "+12%"
    verdict: str              # better | worse | same | noise (inside the current 95% interval)


@dataclass(frozen=True)
class Number:
    value: float | None
    text: str                 # formatted
    change: Change | None = None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def signed(value: float, digits: int) -> str:
    """"+0.0012" / "−0.0012" (a true minus sign) / "±0"."""
    if round(value, digits) == 0:
        return "±0"
    text = f"{abs(value):,.{digits}f}"
    return ("+" if value > 0 else "−") + text


def change(current: float | None, baseline: float | None, higher_is_better: bool | None, digits: int = 4,
           relative: bool = False, noise: tuple[float, float] | None = None) -> Change | None:
    """The change from baseline to current (absolute, or relative in percent); None without both numbers.
    higher_is_better None: no verdict (a count whose direction means nothing by itself). `noise`: the current
    value's interval; a baseline inside it is no evidence of a change."""
    if current is None or baseline is None:
        return None
    if relative:
        if baseline == 0:
            return None
        delta = (current - baseline) / abs(baseline) * 100
        text = signed(delta, 0 if abs(delta) >= 10 else 1) + "%"
    else:
        delta = current - baseline
        text = signed(delta, digits)
    if noise is not None and noise[0] <= baseline <= noise[1] and delta != 0:
        verdict = "noise"
    elif text.startswith("±") or higher_is_better is None:
        verdict = "same"
    else:
        verdict = "better" if (delta > 0) == higher_is_better else "worse"
    return Change(text, verdict)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


# ---------------------------------------------------------------------------------------------------------
# Per model

@dataclass(frozen=True)
class ModelRun:
    """What the summary needs of one model, from evaluate's and parse-log's metrics.json."""
    model: str
    accuracy: float | None
    errors: int | None
    images: int | None
    iterations: float | None
    seconds: float | None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% Wilson interval of the accuracy (correct answers over images)."""
        if self.errors is None or not self.images:
            return None
        low, high = wilson_interval(self.images - self.errors, self.images)
        return float(low), float(high)

    @property
    def iterations_per_s(self) -> float | None:
        if self.iterations is None or not self.seconds:
            return None
        return self.iterations / self.seconds


def model_run(model: str, eval_metrics: Any, train_metrics: Any) -> ModelRun:
    """A ModelRun from the two metrics files (either may be None: a baseline without them)."""
    eval_metrics = eval_metrics if isinstance(eval_metrics, dict) else {}
    train_metrics = train_metrics if isinstance(train_metrics, dict) else {}
    errors, images = _finite(eval_metrics.get("errors")), _finite(eval_metrics.get("images"))
    return ModelRun(model=model, accuracy=_finite(eval_metrics.get("accuracy")),
                    errors=None if errors is None else int(errors), images=None if images is None else int(images),
                    iterations=_finite(train_metrics.get("iteration")), seconds=_finite(train_metrics.get("seconds")))


@dataclass(frozen=True)
class ModelSummary:
    model: str
    accuracy: Number
    interval: str             # "0.9886–0.9925"
    errors: Number
    training_time: Number
    iterations_per_s: Number
    top_pair: str             # "4/9: 11 errors (11.83% of all)"


def model_summary(current: ModelRun, baseline: ModelRun | None, top_pair: str) -> ModelSummary:
    before = baseline or ModelRun(current.model, None, None, None, None, None)
    interval = current.interval
    speed = current.iterations_per_s
    return ModelSummary(
        model=current.model,
        accuracy=Number(current.accuracy, _fixed(current.accuracy, 4),
                        change(current.accuracy, before.accuracy, True, digits=4, noise=interval)),
        interval="–" if interval is None else f"{interval[0]:.4f}–{interval[1]:.4f}",
        errors=Number(current.errors, _count(current.errors, current.images),
                      change(current.errors, before.errors, False, digits=0)),
        training_time=Number(current.seconds, format_seconds(current.seconds),
                             change(current.seconds, before.seconds, False, relative=True)),
        iterations_per_s=Number(speed, _fixed(speed, 1), change(speed, before.iterations_per_s, True, relative=True)),
        top_pair=top_pair or "–",
    )


def _fixed(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _count(errors: int | None, images: int | None) -> str:
    if errors is None:
        return "–"
    return f"{errors:,} of {images:,}" if images else f"{errors:,}"


# ---------------------------------------------------------------------------------------------------------
# The read benchmark

@dataclass(frozen=True)
class Ratio:
    what: str
    number: Number


def bench_ratios(metrics: Any, baseline: Any) -> list[Ratio]:
    metrics = metrics if isinstance(metrics, dict) else {}
    baseline = baseline if isinstance(baseline, dict) else {}
    ratios = []
    for key, what in BENCH_RATIOS:
        value = _finite(metrics.get(key))
        if value is not None:
            ratios.append(Ratio(what, Number(value, f"{value:,.1f}×",
                                             change(value, _finite(baseline.get(key)), True, relative=True))))
    return ratios


# ---------------------------------------------------------------------------------------------------------
# Worth looking at

@dataclass(frozen=True)
class Highlight:
    score: float              # higher first
    text: str
    anchor: str               # the section (or sub-section) id it links to
    link: str                 # the link's words


@dataclass(frozen=True)
class Findings:
    """Everything the highlights are computed from; every field may be empty."""
    runs: dict[str, ModelRun]
    baseline_runs: dict[str, ModelRun]
    not_reproducible: list[str]                     # "<model> (<why>)"
    test_losses: dict[str, list[float]]             # per model, the test loss of every test pass in order
    analysis: dict[str, dict[str, Any]]             # analyze's metrics per model (analysis-metrics.json)
    top_pairs: dict[str, str]                       # per model, analyze's headline text of its top pair
    bench: dict[str, Any]                           # bench-io's metrics.json
    finetune_runs: list[dict[str, Any]]             # finetune's runs.csv rows: mode, size, accuracy
    slowest_layers: dict[str, tuple[str, float]]    # per model, (layer, share of forward+backward time)


def highlights(findings: Findings, shown: int = HIGHLIGHTS_SHOWN) -> list[Highlight]:
    """The `shown` findings with the highest scores (ties: in the order the finders run)."""
    found = [*_reproducibility(findings), *_regressions(findings), *_rising_loss(findings),
             *_model_gap(findings), *_class_imbalance(findings), *_confused_pairs(findings), *_forgetting(findings),
             *_transfer(findings), *_bench(findings), *_layers(findings)]
    return sorted(found, key=lambda highlight: -highlight.score)[:shown]


def _reproducibility(findings: Findings) -> list[Highlight]:
    if not findings.not_reproducible:
        return []
    return [Highlight(100, f"Weights not bit-reproducible: {'; '.join(findings.not_reproducible)}.", "training",
                      "Training curves")]


def _regressions(findings: Findings) -> list[Highlight]:
    """Accuracy changed against the baseline by more than the current interval allows."""
    found = []
    for model, run in findings.runs.items():
        before = findings.baseline_runs.get(model)
        interval = run.interval
        if before is None or before.accuracy is None or run.accuracy is None or interval is None:
            continue
        if interval[0] <= before.accuracy <= interval[1]:
            continue
        worse = run.accuracy < before.accuracy
        found.append(Highlight(90 if worse else 60,
                               f"{model}'s accuracy {'fell' if worse else 'rose'} from {before.accuracy:.4f} to "
                               f"{run.accuracy:.4f}, outside its 95% interval: a real change, not noise.",
                               "training", "Training curves against the baseline"))
    return found


def _rising_loss(findings: Findings) -> list[Highlight]:
    found = []
    for model, losses in findings.test_losses.items():
        finite = [loss for loss in losses if math.isfinite(loss)]
        if len(finite) < 3 or finite[-1] <= min(finite) * LOSS_RISE:
            continue
        found.append(Highlight(70, f"{model}'s test loss rose to {finite[-1]:.4g} at the end, from a minimum of "
                                   f"{min(finite):.4g}: overfitting, or a learning rate too high.",
                               "training", "Training curves"))
    return found


def _model_gap(findings: Findings) -> list[Highlight]:
    """The best and worst model, when their intervals do not overlap."""
    rated = [run for run in findings.runs.values() if run.accuracy is not None and run.interval is not None]
    if len(rated) < 2:
        return []
    best = max(rated, key=lambda run: run.accuracy)
    worst = min(rated, key=lambda run: run.accuracy)
    if best.interval[0] <= worst.interval[1]:
        return []
    factor = f"{worst.errors / best.errors:.1f}× fewer errors" if best.errors else "no errors"
    return [Highlight(50, f"{best.model} makes {factor} than {worst.model} ({best.errors:,} against {worst.errors:,}), "
                          "and their 95% intervals do not overlap.", "comparison", "Model comparison")]


def _class_imbalance(findings: Findings) -> list[Highlight]:
    found = []
    for model, numbers in findings.analysis.items():
        p, worst = _finite(numbers.get("chi2_p")), _finite(numbers.get("worst_class_error"))
        overall = _finite(numbers.get("final_error"))
        if p is None or p >= CLASS_TEST_LEVEL or worst is None or not overall:
            continue
        found.append(Highlight(45 - p, f"{model}'s errors are not spread evenly over the classes (χ² p = {p:.2g}): its "
                                       f"worst class is wrong {worst / overall:.1f}× as often as the average.",
                               "analysis-per_class", "Is every class equally likely to be wrong?"))
    return found[:1]


def _confused_pairs(findings: Findings) -> list[Highlight]:
    found = []
    for model, numbers in findings.analysis.items():
        share = _finite(numbers.get("top_pair_share"))
        text = findings.top_pairs.get(model)
        if share is None or not text:
            continue
        found.append(Highlight(30 + 50 * share, f"{model}'s most-confused pair: {text}.", "analysis-why",
                               "Why are they wrong?"))
    return sorted(found, key=lambda highlight: -highlight.score)[:1]


def _forgetting(findings: Findings) -> list[Highlight]:
    found = []
    for model, numbers in findings.analysis.items():
        forgotten, never = _finite(numbers.get("images_forgotten")), _finite(numbers.get("never_learned"))
        run = findings.runs.get(model)
        if forgotten is None or run is None or not run.images or forgotten / run.images < 0.05:
            continue
        never_text = f"; never learned: {int(never):,}" if never is not None else ""
        found.append(Highlight(35, f"{model} got {int(forgotten):,} test images ({forgotten / run.images:.0%}) right "
                                   f"at one snapshot and wrong at a later one{never_text}.",
                               "analysis-forgetting", "Right first, wrong later?"))
    return found[:1]


def _transfer(findings: Findings) -> list[Highlight]:
    """Whether reusing the trained net beat training from scratch at the smallest target size."""
    rows = [row for row in findings.finetune_runs if _finite(row.get("accuracy")) is not None]
    if not rows:
        return []
    smallest = min(row["size"] for row in rows)
    at_smallest = {row["mode"]: float(row["accuracy"]) for row in rows if row["size"] == smallest}
    if "scratch" not in at_smallest or len(at_smallest) < 2:
        return []
    best = max(at_smallest, key=at_smallest.get)
    if best == "scratch":
        text = (f"Fine-tuning: with {smallest:,} target images, training from scratch ({at_smallest['scratch']:.3f}) "
                "beats reusing the trained net: the source's features do not transfer.")
    else:
        text = (f"Fine-tuning: with {smallest:,} target images, {best} reaches {at_smallest[best]:.3f} against "
                f"{at_smallest['scratch']:.3f} from scratch: the trained features transfer.")
    return [Highlight(32, text, "finetune", "Fine-tuning")]


def _bench(findings: Findings) -> list[Highlight]:
    ratio = _finite(findings.bench.get(BENCH_RATIOS[0][0]))
    if ratio is None:
        return []
    return [Highlight(20, f"Reading training images from LMDB is {ratio:,.0f}× faster than from JPEG files "
                          "(Python, warm page cache).", "bench", "Read benchmark")]


def _layers(findings: Findings) -> list[Highlight]:
    found = [Highlight(10 + 10 * share, f"{layer} takes {share:.0%} of {model}'s forward and backward time.",
                       "timing", "Layer timings")
             for model, (layer, share) in findings.slowest_layers.items()]
    return sorted(found, key=lambda highlight: -highlight.score)[:1]
