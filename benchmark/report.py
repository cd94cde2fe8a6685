"""Reports: the CSV of every job, a Markdown leaderboard and PNG plots.

Written into a run's output folder by ``python -m benchmark report`` (and at the end of
``run`` and ``resume``):

- ``results.csv``: one row per job, every field of :class:`benchmark.jobs.JobResult`;
- ``rare_categories.csv``: real and synthetic frequency of every rare category, per job;
- ``leaderboard.md``: budgets, then per-dataset tables and their mean, best in bold, then the
  constraint-scenario summary;
- ``detection.png``, ``fit_time.png``, ``constraint_validity.png``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import runner
from benchmark.jobs import NO_SCENARIO, JobResult
from benchmark.synthesizers import Budget

LOGGER = logging.getLogger(__name__)

# (column, header, higher is better, format)
METRICS = [
    ("tree_detection", "Tree det.", True, "{:.3f}"),
    ("logistic_detection", "Logistic det.", True, "{:.3f}"),
    ("svc_detection", "SVC det.", True, "{:.3f}"),
    ("quality_score", "Quality", True, "{:.3f}"),
    ("diagnostic_score", "Diagnostic", True, "{:.3f}"),
    ("coverage_mean", "Coverage", True, "{:.3f}"),
    ("coverage_min", "Cov. min", True, "{:.3f}"),
    ("rare_present", "Rare present", True, "{:.3f}"),
    ("new_row_synthesis", "New rows", True, "{:.3f}"),
    ("exact_copies", "Copies", False, "{:.4f}"),
    ("natural_valid_share", "Natural valid", True, "{:.3f}"),
    ("fit_seconds", "Fit s", False, "{:.1f}"),
    ("sample_seconds", "Sample s", False, "{:.2f}"),
    ("peak_memory_mb", "Peak MB", False, "{:.0f}"),
    ("model_size_mb", "Model MB", False, "{:.2f}"),
]


def results_frame(results: list[JobResult]) -> pd.DataFrame:
    """Return the results as a DataFrame, one row per job.

    Parameters
    ----------
    results : list of JobResult
        Job results.

    Returns
    -------
    pandas.DataFrame
        Columns are the fields of :class:`JobResult`.
    """
    columns = list(JobResult.__dataclass_fields__)
    return pd.DataFrame([r.to_dict() for r in results], columns=columns)


def _format(value, fmt: str, bold: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = fmt.format(value)
    return f"**{text}**" if bold else text


def markdown_table(table: pd.DataFrame, metrics: list[tuple]) -> str:
    """Render synthesizers x metrics as Markdown, with each column's best value in bold.

    Parameters
    ----------
    table : pandas.DataFrame
        Indexed by synthesizer, with metric columns.
    metrics : list of tuple
        ``(column, header, higher_is_better, format)``.

    Returns
    -------
    str
        The table.
    """
    metrics = [m for m in metrics if m[0] in table and table[m[0]].notna().any()]
    lines = [
        "| Synthesizer | " + " | ".join(m[1] for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    best = {}
    for column, _, higher, _ in metrics:
        values = table[column].astype(float)
        best[column] = values.max() if higher else values.min()

    for name, row in table.iterrows():
        cells = []
        for column, _, _, fmt in metrics:
            value = row[column]
            is_best = pd.notna(value) and np.isclose(float(value), best[column])
            cells.append(_format(value, fmt, is_best and len(table) > 1))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    return "\n".join(lines) + "\n"


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [m[0] for m in METRICS if m[0] in frame]
    return frame[columns].apply(pd.to_numeric, errors="coerce")


def _status_note(frame: pd.DataFrame) -> str:
    failed = frame[frame.status != "ok"]
    if failed.empty:
        return ""
    lines = ["Failed or timed-out jobs (metrics missing):", ""]
    for _, row in failed.iterrows():
        lines.append(
            f"- {row.dataset} / {row.synthesizer} / {row.scenario} / seed {row.seed}: "
            f"{row.status}: {str(row.error)[:200]}"
        )
    return "\n".join(lines) + "\n\n"


def _budget(output_dir: str | Path) -> dict:
    """The budgets recorded beside the results (empty when there are none)."""
    path = Path(output_dir) / runner.ENVIRONMENT_FILE
    return json.loads(path.read_text()).get("budget", {}) if path.is_file() else {}


def budget_text(output_dir: str | Path) -> str:
    """Return a paragraph stating the run's budgets, seeds and machine."""
    path = Path(output_dir) / runner.ENVIRONMENT_FILE
    if not path.is_file():
        return "Budgets: unknown (no environment.json).\n"
    info = json.loads(path.read_text())
    budget = info.get("budget", {})
    versions = ", ".join(f"{k} {v}" for k, v in info.get("versions", {}).items() if v)
    return (
        f"Budgets: training rows {budget.get('rows') or 'all'}, epochs "
        f"{budget.get('epochs') or 'model default'}, time limit {budget.get('timeout')} s per "
        f"job, detection on at most {budget.get('eval_rows')} rows per side, held-out share "
        f"{budget.get('holdout')}. Seeds: {info.get('seeds')}. Machine: {info.get('cpu_count')} "
        f"CPUs, {info.get('memory_gb')} GB, {info.get('platform')}. Peak memory: process RSS "
        "high-water mark during fit and sample, minus RSS before fit. "
        f"torch.set_flush_denormal(True) in every job. Versions: {versions}.\n"
    )


def _dataset_budget(group: pd.DataFrame, budget: dict) -> str:
    """One line saying what each dataset's jobs were trained on, and which budgets cut them."""
    rows = sorted({int(n) for n in group.train_rows.dropna()})
    text = f"Trained on {', '.join(map(str, rows))} rows"
    if budget.get("rows"):
        text += f" (capped at {budget['rows']} sampled rows before the held-out split)"

    if budget.get("epochs") and group.synthesizer.isin(["CTGAN", "TVAE"]).any():
        text += f"; CTGAN and TVAE at {budget['epochs']} epochs (SDV's default: 300)"

    return text + ".\n"


def unconstrained_section(frame: pd.DataFrame, budget: dict | None = None) -> str:
    """Per-dataset tables and the mean over datasets, for the unconstrained jobs."""
    plain = frame[frame.scenario == NO_SCENARIO]
    if plain.empty:
        return ""
    ok = plain[plain.status == "ok"]
    parts = ["## Unconstrained jobs\n", _status_note(plain)]
    per_dataset = []
    for dataset, group in ok.groupby("dataset", sort=False):
        table = _numeric(group).groupby(group.synthesizer).mean()
        per_dataset.append(table.assign(dataset=dataset))
        note = _dataset_budget(group, budget or {})
        parts += [f"### {dataset}\n", note, markdown_table(table, METRICS), ""]

    if per_dataset:
        every = pd.concat(per_dataset)
        mean = every.drop(columns="dataset").groupby(level=0).mean()
        count = every.groupby(level=0)["dataset"].nunique()
        parts += [
            "### Mean over datasets\n",
            f"Datasets per synthesizer: {count.to_dict()} (a mean over fewer datasets is not "
            "comparable).\n",
            markdown_table(mean, METRICS),
        ]
    return "\n".join(parts)


def scenario_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Summarize constrained jobs per synthesizer.

    Parameters
    ----------
    frame : pandas.DataFrame
        All results.

    Returns
    -------
    pandas.DataFrame
        Indexed by synthesizer: feasible jobs, share finished, share with every returned row
        valid, mean valid share, mean rows returned / requested, mean fit and sample seconds,
        mean tree detection, infeasible jobs and share detected.
    """
    constrained = frame[frame.scenario != NO_SCENARIO]
    rows = {}
    for name, group in constrained.groupby("synthesizer", sort=False):
        feasible = group[group.feasible != False]  # noqa: E712 (None counts as feasible)
        infeasible = group[group.feasible == False]  # noqa: E712
        done = feasible[feasible.status == "ok"]
        returned = pd.to_numeric(done.rows_returned, errors="coerce")
        requested = pd.to_numeric(done.rows_requested, errors="coerce")
        fully_valid = (done.all_valid == True) & (returned == requested)  # noqa: E712
        rows[name] = {
            "feasible_jobs": len(feasible),
            "finished": len(done) / len(feasible) if len(feasible) else np.nan,
            "all_rows_valid": fully_valid.sum() / len(feasible) if len(feasible) else np.nan,
            "valid_share": pd.to_numeric(done.valid_share, errors="coerce").mean(),
            "rows_returned": (returned / requested).mean(),
            "fit_seconds": pd.to_numeric(done.fit_seconds, errors="coerce").mean(),
            "sample_seconds": pd.to_numeric(done.sample_seconds, errors="coerce").mean(),
            "tree_detection": pd.to_numeric(done.tree_detection, errors="coerce").mean(),
            "infeasible_jobs": len(infeasible),
            "infeasible_detected": (
                infeasible.infeasible_detected.astype(bool).mean() if len(infeasible) else np.nan
            ),
            "infeasible_outcomes": _counts_text(infeasible.infeasible_outcome),
            "detection_errors": _counts_text(
                infeasible.error_type[infeasible.infeasible_outcome == "detected"]
            ),
        }

    return pd.DataFrame.from_dict(rows, orient="index")


def _counts_text(values: pd.Series) -> str:
    counts = values[values.astype(str) != ""].value_counts()
    return ", ".join(f"{name} {count}" for name, count in counts.items())


SCENARIO_METRICS = [
    ("feasible_jobs", "Feasible jobs", True, "{:.0f}"),
    ("finished", "Finished", True, "{:.3f}"),
    ("all_rows_valid", "100% valid & all rows", True, "{:.3f}"),
    ("valid_share", "Mean valid share", True, "{:.4f}"),
    ("rows_returned", "Rows returned / asked", True, "{:.3f}"),
    ("fit_seconds", "Fit s", False, "{:.1f}"),
    ("sample_seconds", "Sample s", False, "{:.2f}"),
    ("tree_detection", "Tree det.", True, "{:.3f}"),
    ("infeasible_jobs", "Infeasible jobs", True, "{:.0f}"),
    ("infeasible_detected", "Infeasible detected", True, "{:.3f}"),
]


def scenario_section(frame: pd.DataFrame) -> str:
    """Return the constraint-scenario part of the leaderboard."""
    summary = scenario_summary(frame)
    if summary.empty:
        return ""
    outcomes = [
        f"- {name}: outcomes {row.infeasible_outcomes or '-'}; errors counted as detection: "
        f"{row.detection_errors or '-'}"
        for name, row in summary.iterrows()
        if row.infeasible_jobs
    ]
    return (
        "## Constraint scenarios\n\n"
        "Validity is checked by the harness on the returned rows. '100% valid & all rows': "
        "share of feasible jobs that finished with every row valid and as many rows as asked. "
        "'Infeasible detected': the synthesizer refused with an error of its own (not SDV's "
        "'Unable to sample any rows' after exhausting rejection sampling, not a bare "
        "TypeError-like crash) and returned no rows.\n\n"
        + markdown_table(summary, SCENARIO_METRICS)
        + ("\nInfeasible scenarios:\n\n" + "\n".join(outcomes) + "\n" if outcomes else "")
    )


def shared_scenarios_section(frame: pd.DataFrame) -> str:
    """Validity and times, side by side, on every scenario that several synthesizers ran."""
    constrained = frame[frame.scenario != NO_SCENARIO]
    runs = constrained.groupby("scenario").synthesizer.nunique()
    shared = constrained[constrained.scenario.isin(runs[runs > 1].index)]
    if shared.empty:
        return ""

    names = list(dict.fromkeys(shared.synthesizer))
    header = " | ".join(f"{name} valid | {name} fit s | {name} sample s" for name in names)
    lines = [
        "## Same constraints, every synthesizer\n",
        "Each scenario below ran on several synthesizers (the baselines through SDV's own "
        "constraint handling). 'valid': share of returned rows that satisfy every constraint; "
        "a job that did not finish shows its status.\n",
        f"| Scenario | {header} |",
        "|---|" + "---|---|---|" * len(names),
    ]
    for scenario, group in shared.groupby("scenario", sort=True):
        cells = [_scenario_cells(group[group.synthesizer == name]) for name in names]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")

    return "\n".join(lines) + "\n"


def _scenario_cells(jobs: pd.DataFrame) -> str:
    """Valid share, fit and sample seconds of one synthesizer's jobs on one scenario."""
    if jobs.empty:
        return "- | - | -"

    done = jobs[jobs.status == "ok"]
    if done.empty:
        return f"{jobs.status.iloc[0]} | - | -"

    valid, fit, sample = (
        pd.to_numeric(done[column], errors="coerce").mean()
        for column in ("valid_share", "fit_seconds", "sample_seconds")
    )
    return f"{valid:.4f} | {fit:.1f} | {sample:.2f}"


def leaderboard(frame: pd.DataFrame, output_dir: str | Path) -> str:
    """Return the Markdown leaderboard of a run."""
    return "\n".join(
        [
            "# Benchmark leaderboard\n",
            budget_text(output_dir),
            "Detection scores: 1 = indistinguishable from held-out real rows. Bold: best in "
            "column (lower is better for times, memory, size and copies).\n",
            unconstrained_section(frame, _budget(output_dir)),
            scenario_section(frame),
            shared_scenarios_section(frame),
        ]
    )


def _bar_plot(table: pd.DataFrame, title: str, ylabel: str, path: Path, log: bool = False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(table) + 3), 4))
    if table.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
    else:
        table.plot.bar(ax=ax, logy=log, rot=30)
        ax.legend(fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(frame: pd.DataFrame, output_dir: str | Path) -> list[Path]:
    """Write the detection, fit-time and constraint-validity plots.

    Parameters
    ----------
    frame : pandas.DataFrame
        All results.
    output_dir : path-like
        Folder for the PNG files.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(output_dir)
    ok = frame[(frame.status == "ok") & (frame.scenario == NO_SCENARIO)]
    detection = _pivot(ok, "tree_detection")
    fit = _pivot(ok, "fit_seconds")
    summary = scenario_summary(frame)
    validity = summary[["all_rows_valid", "valid_share"]] if not summary.empty else pd.DataFrame()
    return [
        _bar_plot(detection, "Tree detection (1 = indistinguishable)", "score",
                  out / "detection.png"),
        _bar_plot(fit, "Fit time (unconstrained jobs)", "seconds (log scale)",
                  out / "fit_time.png", log=True),
        _bar_plot(validity, "Constraint validity per synthesizer", "share",
                  out / "constraint_validity.png"),
    ]  # fmt: skip


def _pivot(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame()
    values = pd.to_numeric(frame[column], errors="coerce")
    return values.groupby([frame.dataset, frame.synthesizer]).mean().unstack("synthesizer")


def rare_category_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (job, rare category) with its real and synthetic frequency.

    Parameters
    ----------
    frame : pandas.DataFrame
        All results (their ``details`` hold the frequencies).

    Returns
    -------
    pandas.DataFrame
        Columns dataset, synthesizer, scenario, seed, column, category, real_frequency,
        synthetic_frequency.
    """
    rows = []
    for _, job in frame.iterrows():
        details = json.loads(job.details) if isinstance(job.details, str) and job.details else {}
        for column, categories in details.get("rare", {}).items():
            for category, (real, synthetic) in categories.items():
                rows.append(
                    (job.dataset, job.synthesizer, job.scenario, job.seed, column, category,
                     real, synthetic)
                )  # fmt: skip
    columns = ["dataset", "synthesizer", "scenario", "seed", "column", "category",
               "real_frequency", "synthetic_frequency"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def write_reports(output_dir: str | Path) -> list[Path]:
    """Write ``results.csv``, ``leaderboard.md`` and the plots of a run's output folder.

    Parameters
    ----------
    output_dir : path-like
        The run's output folder (with its ``cache/``).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(output_dir)
    frame = results_frame(runner.collect(out))
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    frame.to_csv(csv_path, index=False)
    rare_path = out / "rare_categories.csv"
    rare_category_frame(frame).to_csv(rare_path, index=False)
    md_path = out / "leaderboard.md"
    md_path.write_text(leaderboard(frame, out))
    return [csv_path, rare_path, md_path, *write_plots(frame, out)]


def main_leaderboard(results: list[JobResult], budget: Budget, janus_missing: bool) -> str:
    """Return the short leaderboard printed by ``python -m benchmark main``.

    Parameters
    ----------
    results : list of JobResult
        One result per synthesizer, same dataset.
    budget : Budget
        The budgets used.
    janus_missing : bool
        Whether JANUS was asked for but could not be imported.

    Returns
    -------
    str
        Markdown text.
    """
    if not results:
        return "No synthesizer ran.\n"
    by_name = {r.synthesizer: r for r in results}
    base = by_name.get("GaussianCopula")
    first = results[0]
    lines = [
        f"# {first.dataset}: {first.train_rows} training rows, sampled as many "
        f"(metrics against the training rows)\n",
        "| Synthesizer | Status | Fit s | Sample s | Fit / GC | Peak MB | LogisticDetection "
        "| Tree detection | Quality | Coverage mean | Coverage min | Rare present "
        "| Dtypes kept |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = (
            r.fit_seconds / base.fit_seconds
            if base and r.fit_seconds and base.fit_seconds
            else None
        )
        cells = [
            r.synthesizer, r.status, _fmt(r.fit_seconds, "{:.2f}"),
            _fmt(r.sample_seconds, "{:.2f}"), _fmt(ratio, "{:.2f}"),
            _fmt(r.peak_memory_mb, "{:.0f}"), _fmt(r.logistic_detection, "{:.4f}"),
            _fmt(r.tree_detection, "{:.4f}"),
            _fmt(r.quality_score, "{:.4f}"), _fmt(r.coverage_mean, "{:.4f}"),
            _fmt(r.coverage_min, "{:.4f}"), _fmt(r.rare_present, "{:.3f}"),
            _fmt(r.dtypes_preserved, "{}"),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")

    lines.append("")
    lines += _main_notes(results, budget, janus_missing)
    return "\n".join(lines) + "\n"


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _main_notes(results: list[JobResult], budget: Budget, janus_missing: bool) -> list[str]:
    notes = [
        f"Peak MB: {results[0].memory_method or 'n/a'} (process RSS high-water mark during fit "
        "and sample, minus RSS before fit; 'rss_hwm' = Linux VmHWM reset via clear_refs).",
        f"Time limit {budget.timeout:g} s per synthesizer; each ran in its own process; "
        "torch.set_flush_denormal(True) was set in each.",
        "Tree detection: HistGradientBoosting real-vs-synthetic, 3-fold ROC AUC, "
        "1 - (max(0.5, AUC) * 2 - 1); 1 = indistinguishable. Logistic detection is SDMetrics'.",
        f"Detection and quality on {'all' if not budget.eval_rows else budget.eval_rows} rows "
        "per side.",
    ]
    if janus_missing:
        notes.append("JANUS was not importable (sdv_janus.JanusSynthesizer): GaussianCopula only.")
    for r in results:
        if r.status != "ok":
            notes.append(f"{r.synthesizer} {r.status}: {r.error}")
        if r.dtype_mismatches:
            notes.append(f"{r.synthesizer} dtype changes: {r.dtype_mismatches}")
    return [f"- {n}" for n in notes]
