"""Closed-form uncertainty against its Monte Carlo reference: speed at equal accuracy.

``python -m benchmark uncertainty`` (or ``python -m benchmark.uncertainty_speed``) fits JANUS on
adult, scores every training row with the closed form and with Monte Carlo, and writes
``<output>/uncertainty_speed.md`` and ``.csv``.

Both estimators run through the same pipeline: figures once per leaf of every tree, then each row
is routed to its leaves and gathers their figures. Only the per-leaf estimator differs. The
closed form is exact up to float64 rounding (checked here against a 40-digit evaluation). Monte
Carlo is given the number of Dirichlet draws per leaf at which its standard error on every
scored row's total, aleatoric and epistemic figure is at most ``tolerance`` nats; that number
comes from the per-draw spread measured by a pilot run. The ratio is the Monte Carlo time at
that many draws over the closed-form time, both measured in this one run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import sys
import time
from pathlib import Path

import numpy as np

from benchmark import datasets, runner
from sdv_janus.engine.uncertainty import (
    encode_for_scoring,
    leaf_table,
    monte_carlo_uncertainty,
    score_states,
    within_bin_entropy,
)

LOGGER = logging.getLogger(__name__)

FIGURES = ("total", "aleatoric", "epistemic")
REPORT_NAME = "uncertainty_speed"
COMMAND = "python -m benchmark uncertainty"


@dataclasses.dataclass
class SpeedResult:
    """Figures of one benchmark run (times in seconds, uncertainties in nats)."""

    dataset: str
    rows: int
    columns: int
    leaves: int
    leaf_cells: int
    fit_seconds: float
    tolerance: float
    pilot_draws: int
    worst_row_sd: dict
    draws: int
    closed_form_seconds: float
    closed_form_leaf_seconds: float
    closed_form_error: float
    monte_carlo_seconds: float
    monte_carlo_leaf_seconds: float
    monte_carlo_worst_row_se: dict
    monte_carlo_rms_error: dict
    monte_carlo_max_error: dict
    within_tolerance: dict
    repeats: int
    seed: int
    command: str

    @property
    def ratio(self) -> float:
        """Monte Carlo time over closed-form time, scoring every row."""
        return self.monte_carlo_seconds / self.closed_form_seconds

    @property
    def leaf_ratio(self) -> float:
        """Monte Carlo time over closed-form time, per-leaf figures only."""
        return self.monte_carlo_leaf_seconds / self.closed_form_leaf_seconds


@dataclasses.dataclass
class _Problem:
    """A fitted model's trees, within-bin entropies and the encoded rows to score."""

    trees: list
    within: list
    states: np.ndarray
    leaves: list


def run(
    data_dir=None,
    output_dir="results",
    dataset="adult",
    tolerance=1e-3,
    pilot_draws=2048,
    repeats=7,
    seed=0,
    command=COMMAND,
) -> SpeedResult:
    """Fit JANUS, time both estimators at equal accuracy and write the report.

    Parameters
    ----------
    data_dir : path-like, optional
        The datasets folder (see :func:`benchmark.datasets.resolve_data_dir`).
    output_dir : path-like, default "results"
        Where ``uncertainty_speed.md`` and ``uncertainty_speed.csv`` are written.
    dataset : str, default "adult"
        Dataset to fit on and score (every row).
    tolerance : float, default 1e-3
        Largest Monte Carlo standard error allowed on any row's figure, in nats.
    pilot_draws : int, default 2048
        Draws per leaf of the pilot run that measures the per-draw spread.
    repeats : int, default 7
        Closed-form timings to take the median of (it runs in milliseconds).
    seed : int, default 0
        Seed of the Monte Carlo draws.
    command : str
        The command line recorded in the report.

    Returns
    -------
    SpeedResult
    """
    rng = np.random.default_rng(seed)
    loaded = datasets.load_dataset(dataset, data_dir)
    problem, fit_seconds = _fit(loaded)
    LOGGER.info("Fitted %s in %.1fs: %d leaves", dataset, fit_seconds, sum(problem.leaves))

    exact, closed_seconds, closed_leaf_seconds = _time_closed_form(problem, repeats)
    worst_sd = _pilot_spread(problem, pilot_draws, rng)
    draws = int(np.ceil(max(worst_sd.values()) ** 2 / tolerance**2))
    LOGGER.info(
        "Monte Carlo needs %d draws per leaf for a %.0e-nat standard error", draws, tolerance
    )
    estimate, worst_se, mc_seconds, mc_leaf_seconds = _time_monte_carlo(problem, draws, rng)

    errors = {name: getattr(estimate, name) - getattr(exact, name) for name in FIGURES}
    result = SpeedResult(
        dataset=dataset,
        rows=len(problem.states),
        columns=problem.states.shape[1],
        leaves=sum(problem.leaves),
        leaf_cells=sum(len(tree.prior) * (tree.n_leaves + 1) for tree in problem.trees),
        fit_seconds=fit_seconds,
        tolerance=tolerance,
        pilot_draws=pilot_draws,
        worst_row_sd=worst_sd,
        draws=draws,
        closed_form_seconds=closed_seconds,
        closed_form_leaf_seconds=closed_leaf_seconds,
        closed_form_error=_closed_form_error(problem),
        monte_carlo_seconds=mc_seconds,
        monte_carlo_leaf_seconds=mc_leaf_seconds,
        monte_carlo_worst_row_se=worst_se,
        monte_carlo_rms_error={k: float(np.sqrt(np.mean(v**2))) for k, v in errors.items()},
        monte_carlo_max_error={k: float(np.max(np.abs(v))) for k, v in errors.items()},
        within_tolerance={k: float(np.mean(np.abs(v) <= tolerance)) for k, v in errors.items()},
        repeats=repeats,
        seed=seed,
        command=command,
    )
    for path in write_report(result, output_dir):
        LOGGER.info("Wrote %s", path)

    return result


def _fit(loaded):
    """Fit JANUS through SDV and encode the table's rows for scoring."""
    from sdv_janus import JanusSynthesizer

    synthesizer = JanusSynthesizer(loaded.metadata)
    started = time.perf_counter()
    synthesizer.fit({loaded.name: loaded.data})
    fit_seconds = time.perf_counter() - started

    model = synthesizer._model
    processed = synthesizer._data_processor.transform(loaded.data, is_condition=True)
    columns = {name: processed[name].to_numpy() for name in model.columns}
    states, _ = encode_for_scoring(model.codecs_, columns)
    problem = _Problem(
        trees=list(model.trees_),
        within=[within_bin_entropy(codec) for codec in model.codecs_],
        states=states,
        leaves=[tree.n_leaves for tree in model.trees_],
    )
    return problem, fit_seconds


def _score(problem, estimator=None):
    """Per-leaf figures, then every row; returns (row Figures, seconds, per-leaf seconds)."""
    started = time.perf_counter()
    if estimator is None:
        tables = [leaf_table(t, w) for t, w in zip(problem.trees, problem.within, strict=True)]
    else:
        tables = [
            leaf_table(t, w, estimator) for t, w in zip(problem.trees, problem.within, strict=True)
        ]

    leaf_seconds = time.perf_counter() - started
    rows = score_states(tables, problem.states).row_figures()
    return rows, time.perf_counter() - started, leaf_seconds


def _time_closed_form(problem, repeats):
    """Median time of the closed form (after one warm-up run that loads the numba cache)."""
    _score(problem)
    runs = [_score(problem) for _ in range(repeats)]
    rows = runs[0][0]
    return rows, float(np.median([r[1] for r in runs])), float(np.median([r[2] for r in runs]))


def _pilot_spread(problem, n_draws, rng):
    """Largest per-draw standard deviation of a row's figure, from a pilot Monte Carlo run.

    A row's Monte Carlo figure is a sum of independent per-tree estimates, so its variance per
    draw is the sum of its leaves' variances; the worst row sets the draws needed.
    """
    variance = {name: np.zeros(len(problem.states)) for name in FIGURES}
    for tree, within in zip(problem.trees, problem.within, strict=True):
        pilot = monte_carlo_uncertainty(tree.posterior, n_draws, rng, within)
        leaves = tree.leaves_of(problem.states)
        for name in FIGURES:
            per_draw = getattr(pilot.standard_errors, name) * np.sqrt(n_draws)
            variance[name] += per_draw[leaves] ** 2

    return {name: float(np.sqrt(values.max())) for name, values in variance.items()}


def _time_monte_carlo(problem, n_draws, rng):
    """Score every row by Monte Carlo at ``n_draws`` per leaf; also each figure's worst row SE."""
    results = []

    def estimator(alpha, within):
        results.append(monte_carlo_uncertainty(alpha, n_draws, rng, within))
        return results[-1].figures

    rows, seconds, leaf_seconds = _score(problem, estimator)
    variance = {name: np.zeros(len(problem.states)) for name in FIGURES}
    for tree, result in zip(problem.trees, results, strict=True):
        leaves = tree.leaves_of(problem.states)
        for name in FIGURES:
            variance[name] += getattr(result.standard_errors, name)[leaves] ** 2

    worst_se = {name: float(np.sqrt(values.max())) for name, values in variance.items()}
    return rows, worst_se, seconds, leaf_seconds


def _closed_form_error(problem):
    """Largest absolute error of the per-leaf closed form against 40-digit arithmetic (nats)."""
    import mpmath

    worst = 0.0
    with mpmath.workdps(40):
        for tree, within in zip(problem.trees, problem.within, strict=True):
            table = leaf_table(tree, within)
            for leaf, alpha in enumerate(tree.posterior):
                exact = _exact_figures(alpha, within)
                worst = max(worst, float(np.max(np.abs(table.leaf_figures[:, leaf] - exact))))

    return worst


def _exact_figures(alpha, within):
    """Total, aleatoric and epistemic of one Dirichlet in mpmath arithmetic, as float64."""
    import mpmath

    alpha = [mpmath.mpf(float(a)) for a in alpha]
    alpha_0 = mpmath.fsum(alpha)
    mean = [a / alpha_0 for a in alpha]
    known = mpmath.fsum(p * mpmath.mpf(float(w)) for p, w in zip(mean, within, strict=True))
    total = -mpmath.fsum(p * mpmath.log(p) for p in mean if p > 0) + known
    aleatoric = mpmath.digamma(alpha_0 + 1) + known
    aleatoric -= mpmath.fsum(p * mpmath.digamma(a + 1) for p, a in zip(mean, alpha, strict=True))
    return np.array([float(total), float(aleatoric), float(total - aleatoric)])


def write_report(result: SpeedResult, output_dir) -> list[Path]:
    """Write ``uncertainty_speed.md`` and ``uncertainty_speed.csv``.

    Parameters
    ----------
    result : SpeedResult
        The run's figures.
    output_dir : path-like
        The results folder.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"{REPORT_NAME}.csv"
    row = _flat_row(result)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)

    md_path = folder / f"{REPORT_NAME}.md"
    md_path.write_text(_markdown(result))
    return [md_path, csv_path]


def _flat_row(result):
    """One CSV row: scalar fields, dict fields spread per figure, and the two ratios."""
    row = {}
    for field, value in dataclasses.asdict(result).items():
        if isinstance(value, dict):
            row.update({f"{field}_{key}": value[key] for key in value})
        else:
            row[field] = value

    row["ratio"] = result.ratio
    row["leaf_ratio"] = result.leaf_ratio
    return row


def _markdown(r: SpeedResult) -> str:
    """Render the report as Markdown."""
    env = runner.environment_info()
    lines = [
        "# Analytical uncertainty vs Monte Carlo: speed at equal accuracy",
        "",
        f"Command: `{r.command}` (one run; seed {r.seed}). Machine: {env['cpu_count']} cores, "
        f"{env['platform']}, Python {env['python']}, numpy {env['versions']['numpy']}, "
        f"scipy {env['versions']['scipy']}.",
        "",
        f"JANUS fitted on all {r.rows:,} rows of {r.dataset} ({r.columns} columns) in "
        f"{r.fit_seconds:.1f} s: {r.leaves} leaves, {r.leaf_cells:,} Dirichlet parameters "
        "(with one prior per tree). Every training row is scored: per-leaf figures, then each "
        "row is routed to its leaves and gathers theirs; the two estimators differ only in the "
        "per-leaf figures.",
        "",
        "## Accuracy",
        "",
        f"- Closed form: largest absolute error on any leaf figure, against 40-digit mpmath "
        f"arithmetic: {r.closed_form_error:.1e} nats (float64 rounding).",
        f"- Target for Monte Carlo: a standard error of at most {r.tolerance:g} nats on every "
        "row's total, aleatoric and epistemic figure (a row figure sums 15 per-column figures).",
        f"- Pilot run ({r.pilot_draws:,} draws per leaf): worst row's per-draw standard "
        "deviation " + ", ".join(f"{k} {v:.3f}" for k, v in r.worst_row_sd.items()) + " nats; "
        f"draws needed = ceil(max sd^2 / tolerance^2) = **{r.draws:,} per leaf**.",
        "- Check at that many draws: worst row's batch-means standard error "
        + ", ".join(f"{k} {v:.1e}" for k, v in r.monte_carlo_worst_row_se.items())
        + "; RMS error over rows against the closed form "
        + ", ".join(f"{k} {v:.1e}" for k, v in r.monte_carlo_rms_error.items())
        + "; largest "
        + ", ".join(f"{k} {v:.1e}" for k, v in r.monte_carlo_max_error.items())
        + "; share of rows within the tolerance "
        + ", ".join(f"{k} {v:.0%}" for k, v in r.within_tolerance.items())
        + ". The pilot's spread is itself estimated (from 32 batch means, about 12% relative "
        "error), so the realised worst-row standard error lands near, not exactly at, the target.",
        "",
        "## Speed",
        "",
        "| | closed form | Monte Carlo | ratio |",
        "|---|---|---|---|",
        f"| score {r.rows:,} rows (per-leaf figures + routing + gather) | "
        f"{r.closed_form_seconds * 1e3:.1f} ms | {r.monte_carlo_seconds:.1f} s | "
        f"**{r.ratio:,.0f}x** |",
        f"| per-leaf figures only ({r.leaves} leaves) | {r.closed_form_leaf_seconds * 1e3:.2f} ms "
        f"| {r.monte_carlo_leaf_seconds:.1f} s | {r.leaf_ratio:,.0f}x |",
        "",
        f"Closed-form times are the median of {r.repeats} runs after a warm-up; the Monte Carlo "
        "time is one run. Target: at least 1000x.",
        "",
        "## Why the ratio is what it is",
        "",
        "Monte Carlo costs one gamma variate, one logarithm and one exponential per state per draw "
        "per leaf, so its time grows as draws x Dirichlet parameters; the closed form costs one "
        "digamma and one logarithm per parameter, once. The draws needed grow as "
        "(spread / tolerance)^2: halving the tolerance quadruples the Monte Carlo time and "
        "leaves the closed form unchanged. Routing and gathering are shared by both and bound "
        "the end-to-end ratio: they are most of the closed-form time. Monte Carlo here already "
        "gets the per-leaf gather; drawing per row instead of per leaf would multiply its time "
        f"by the rows per leaf (about {r.rows / max(r.leaves, 1):.0f} on average).",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this benchmark's own options (all but ``--data-dir``) to ``parser``."""
    parser.add_argument("--output", default="results", help="results folder (default results)")
    parser.add_argument("--dataset", default="adult")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="nats (default 1e-3)")
    parser.add_argument("--pilot-draws", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m benchmark.uncertainty_speed``."""
    parser = argparse.ArgumentParser(prog="python -m benchmark.uncertainty_speed")
    parser.add_argument("--data-dir", help="datasets folder (else $JANUS_DATA_DIR, ...)")
    add_arguments(parser)
    return parser


def run_from_args(args, command=COMMAND) -> int:
    """Run with parsed arguments and print the Markdown report; return the exit code."""
    result = run(
        data_dir=args.data_dir,
        output_dir=args.output,
        dataset=args.dataset,
        tolerance=args.tolerance,
        pilot_draws=args.pilot_draws,
        repeats=args.repeats,
        seed=args.seed,
        command=command,
    )
    sys.stdout.write(_markdown(result))
    return 0


def main(argv=None) -> int:
    """Entry point of ``python -m benchmark.uncertainty_speed``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("benchmark").setLevel(logging.INFO)
    return run_from_args(args, " ".join(["python -m benchmark.uncertainty_speed", *sys.argv[1:]]))


if __name__ == "__main__":
    sys.exit(main())
