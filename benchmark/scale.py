"""Scale: fit and sample time and peak memory from 10 thousand to a million rows.

``python -m benchmark scale`` enlarges a real table by drawing its rows with replacement (seed
0; the row-id key column is dropped, since a row number is not data) to each size, then fits
each synthesizer on it and samples as many rows as it was fitted on. Every (synthesizer, size)
job runs in a fresh process so that peak memory figures do not mix; the peak is the process's
resident-set high-water mark (``ru_maxrss``), loading the data included. A job that exceeds the
time cap is recorded as timed out. Finished jobs found in ``<output>/scale.csv`` are skipped, so
an interrupted run resumes. Writes ``scale.csv``, ``scale.md`` and ``scale_loglog.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import multiprocessing
import queue
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from benchmark import datasets, synthesizers
from benchmark.synthesizers import Budget

LOGGER = logging.getLogger(__name__)

COMMAND = "python -m benchmark scale"
DEFAULT_SIZES = (10_000, 30_000, 100_000, 300_000, 1_000_000)
FIELDS = (
    "synthesizer",
    "dataset",
    "rows",
    "columns",
    "status",
    "fit_seconds",
    "sample_seconds",
    "sample_rows_per_second",
    "peak_rss_gb",
    "data_rss_gb",
)


@dataclasses.dataclass
class ScaleJob:
    """One synthesizer fitted on one enlarged table."""

    synthesizer: str
    dataset: str
    rows: int
    data_dir: str | None = None


def add_arguments(parser) -> None:
    """Add the options of ``python -m benchmark scale`` to ``parser``."""
    parser.add_argument("--dataset", default="credit_default")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(DEFAULT_SIZES))
    parser.add_argument("--synthesizers", nargs="+", default=["JANUS", "GaussianCopula"])
    parser.add_argument("--output", default="results/scale")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds per job (default 900)"
    )
    parser.add_argument("--force", action="store_true", help="rerun finished jobs")


def enlarge(data, n_rows, seed=0):
    """``n_rows`` rows of ``data`` drawn with replacement, with a fresh index."""
    rows = np.random.default_rng(seed).integers(0, len(data), n_rows)
    return data.iloc[rows].reset_index(drop=True)


def load_enlarged(job: ScaleJob):
    """The job's table at its size, and metadata without the row-id key."""
    from sdv.metadata import Metadata

    dataset = datasets.load_dataset(job.dataset, job.data_dir)
    metadata = dataset.metadata.to_dict()
    table = metadata["tables"][dataset.name]
    key = table.pop("primary_key", None)
    data = dataset.data
    if key is not None:
        table["columns"].pop(key)
        data = data.drop(columns=key)

    return dataset.name, enlarge(data, job.rows), Metadata.load_from_dict(metadata)


def measure(job: ScaleJob) -> dict:
    """Fit and sample one job in this process; return a results row."""
    name, data, metadata = load_enlarged(job)
    data_rss = _peak_rss_gb()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesizer = synthesizers.get(job.synthesizer).build(metadata, Budget())
        started = time.perf_counter()
        synthesizer.fit({name: data})
        fit_seconds = time.perf_counter() - started
        del data
        started = time.perf_counter()
        sample = synthesizer.sample(job.rows)[name]
        sample_seconds = time.perf_counter() - started

    return {
        "synthesizer": job.synthesizer,
        "dataset": job.dataset,
        "rows": job.rows,
        "columns": sample.shape[1],
        "status": "ok",
        "fit_seconds": round(fit_seconds, 2),
        "sample_seconds": round(sample_seconds, 2),
        "sample_rows_per_second": round(job.rows / sample_seconds),
        "peak_rss_gb": round(_peak_rss_gb(), 3),
        "data_rss_gb": round(data_rss, 3),
    }


def _peak_rss_gb() -> float:
    """Resident-set high-water mark of the process, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _child(job: ScaleJob, results) -> None:
    """Process entry point: measure and report through ``results``."""
    try:
        results.put(measure(job))
    except Exception as error:  # a failure becomes a results row, not a crash
        LOGGER.exception("Scale job %s failed", job)
        results.put({**_empty_row(job), "status": f"error: {type(error).__name__}: {error}"})


def _empty_row(job: ScaleJob) -> dict:
    row = {field: "" for field in FIELDS}
    row.update(synthesizer=job.synthesizer, dataset=job.dataset, rows=job.rows)
    return row


def run_isolated(job: ScaleJob, timeout: float) -> dict:
    """Run a job in a fresh process with a time cap; a job over the cap is recorded as such."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_child, args=(job, results))
    process.start()
    try:
        row = results.get(timeout=timeout)
    except queue.Empty:
        row = {**_empty_row(job), "status": f"timeout after {timeout:g} s"}

    process.join(timeout=30)
    if process.is_alive():
        process.kill()
        process.join()

    return row


def read_rows(path: Path) -> list[dict]:
    """Rows of an existing results CSV (empty when there is none)."""
    if not path.exists():
        return []

    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write the results CSV, sorted by synthesizer then size."""
    rows = sorted(rows, key=lambda row: (row["dataset"], row["synthesizer"], int(row["rows"])))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run(args, command: str) -> int:
    """Run every missing job, then write the report and the plot."""
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    csv_path = output / "scale.csv"
    rows = [] if args.force else read_rows(csv_path)
    done = {(row["synthesizer"], row["dataset"], int(row["rows"])) for row in rows}
    for size in args.sizes:
        for name in args.synthesizers:
            if (name, args.dataset, size) in done:
                LOGGER.info("Skipping %s at %d rows: already measured", name, size)
                continue

            LOGGER.info("Fitting %s on %d rows of %s", name, size, args.dataset)
            row = run_isolated(ScaleJob(name, args.dataset, size, args.data_dir), args.timeout)
            LOGGER.info("%s", row)
            rows.append(row)
            write_rows(csv_path, rows)

    write_rows(csv_path, rows)
    write_report(output, read_rows(csv_path), command)
    return 0


def run_from_args(args) -> int:
    """Entry point of ``python -m benchmark scale``."""
    return run(args, " ".join([COMMAND, *sys.argv[2:]]))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def write_report(output: Path, rows: list[dict], command: str) -> None:
    """Write ``scale.md`` (a table and the JANUS/GaussianCopula ratios) and the plot."""
    lines = [
        "# Scale: fit, sample and peak memory against table size",
        "",
        f"Command: `{command}`, with no thread caps: each synthesizer may use every core",
        "(JANUS runs its row kernels in one thread per core; GaussianCopula's BLAS is threaded).",
        "",
        "Rows drawn with replacement from the real table (seed 0), row-id key dropped; each job",
        "in a fresh process; the sample has as many rows as the fit. Peak RSS is the process's",
        "high-water mark, loading the data included (`data RSS` is that mark before the fit).",
        "",
        "| synthesizer | dataset | rows | cols | status | fit s | sample s | rows/s sampled "
        "| peak RSS GB | data RSS GB |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: (r["dataset"], r["synthesizer"], int(r["rows"]))):
        lines.append("| " + " | ".join(str(row[field]) for field in FIELDS) + " |")

    lines += ["", *_ratio_lines(rows)]
    (output / "scale.md").write_text("\n".join(lines) + "\n")
    _plot(output / "scale_loglog.png", rows)


def _ratio_lines(rows: list[dict]) -> list[str]:
    """GaussianCopula's time over JANUS's, per dataset and size where both finished."""
    by_key = {(row["synthesizer"], row["dataset"], int(row["rows"])): row for row in rows}
    sizes = sorted({(row["dataset"], int(row["rows"])) for row in rows})
    lines = [
        "| dataset | rows | fit: GaussianCopula / JANUS | sample: GaussianCopula / JANUS |",
        "|---|---:|---:|---:|",
    ]
    for dataset, size in sizes:
        janus = by_key.get(("JANUS", dataset, size))
        copula = by_key.get(("GaussianCopula", dataset, size))
        if not janus or not copula:
            continue

        fit = _number(copula["fit_seconds"]) / _number(janus["fit_seconds"])
        sample = _number(copula["sample_seconds"]) / _number(janus["sample_seconds"])
        lines.append(f"| {dataset} | {size:,} | {fit:.1f}x | {sample:.1f}x |")

    return lines


def _plot(path: Path, rows: list[dict]) -> None:
    """Log-log plot of fit and sample time against rows, one line per synthesizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    for name, dataset in sorted({(row["synthesizer"], row["dataset"]) for row in rows}):
        mine = [r for r in rows if (r["synthesizer"], r["dataset"]) == (name, dataset)]
        mine.sort(key=lambda r: int(r["rows"]))
        sizes = [int(r["rows"]) for r in mine]
        for field, style in (("fit_seconds", "-o"), ("sample_seconds", "--s")):
            times = [_number(r[field]) for r in mine]
            label = f"{name} {field.split('_')[0]} ({dataset}, {mine[0]['columns']} cols)"
            axis.plot(sizes, times, style, label=label)

    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("rows")
    axis.set_ylabel("seconds")
    axis.set_title("Fit and sample time against rows (log-log)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
