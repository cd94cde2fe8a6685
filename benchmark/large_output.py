"""Writing 10 million sampled rows to disk with bounded memory.

``python -m benchmark large_output`` fits JANUS on a ~20-column dataset (house_sales: 21
columns of numbers, a date, a key and a categorical zip code), then calls
``sample(num_rows, output_folder_path=...)``, which streams the rows to a CSV file batch by
batch. A thread samples the process's resident memory (RSS) every 50 ms; the kernel's own
high-water mark (``ru_maxrss``) is reported beside it. The report goes to
``<output>/large_output.md`` with the command that produced it; the CSV file is deleted
afterwards unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmark import datasets, runner

LOGGER = logging.getLogger(__name__)

REPORT_NAME = "large_output.md"
COMMAND = "python -m benchmark large_output"


@dataclasses.dataclass
class LargeOutputResult:
    """Figures of one run: sizes, seconds and bytes."""

    dataset: str
    training_rows: int
    columns: int
    rows: int
    batch_size: int
    rows_in_file: int
    file_bytes: int
    fit_seconds: float
    write_seconds: float
    rss_before_bytes: int
    peak_rss_bytes: int
    max_rss_bytes: int
    command: str

    @property
    def rows_per_second(self) -> float:
        """Rows written per second, sampling and CSV formatting included."""
        return self.rows / self.write_seconds


class _PeakMemory:
    """Sample this process's RSS in a background thread and keep the largest value."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> _PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _count_rows(path: Path) -> int:
    """Data rows of a CSV file (lines minus the header), read in 16 MiB blocks."""
    lines = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            lines += block.count(b"\n")

    return lines - 1


def run(
    data_dir=None,
    output_dir="results",
    dataset="house_sales",
    rows=10_000_000,
    batch_size=100_000,
    keep=False,
    work_dir=None,
    command=COMMAND,
) -> LargeOutputResult:
    """Fit JANUS on ``dataset``, write ``rows`` sampled rows to a CSV file, measure memory.

    Parameters
    ----------
    data_dir : path-like, optional
        The datasets folder (see :func:`benchmark.datasets.resolve_data_dir`).
    output_dir : path-like, default "results"
        Where ``large_output.md`` is written.
    dataset : str, default "house_sales"
        Training table (21 columns).
    rows : int, default 10,000,000
        Rows to write.
    batch_size : int, default 100,000
        Rows per batch.
    keep : bool, default False
        Keep the CSV file (in ``work_dir``) instead of deleting it.
    work_dir : path-like, optional
        Folder for the CSV file (default: a new temporary folder).
    command : str
        The command line recorded in the report.

    Returns
    -------
    LargeOutputResult
    """
    from sdv_janus import JanusSynthesizer

    loaded = datasets.load_dataset(dataset, data_dir)
    synthesizer = JanusSynthesizer(loaded.metadata)
    started = time.perf_counter()
    synthesizer.fit({dataset: loaded.data})
    fit_seconds = time.perf_counter() - started
    LOGGER.info("Fitted %s (%d x %d) in %.1fs", dataset, *loaded.data.shape, fit_seconds)

    folder = Path(work_dir or tempfile.mkdtemp(prefix="janus_large_output_"))
    rss_before = psutil.Process().memory_info().rss
    try:
        with _PeakMemory() as memory:
            started = time.perf_counter()
            path = synthesizer.sample(rows, batch_size=batch_size, output_folder_path=folder)
            write_seconds = time.perf_counter() - started

        path = Path(path[dataset])
        result = LargeOutputResult(
            dataset=dataset,
            training_rows=len(loaded.data),
            columns=loaded.data.shape[1],
            rows=rows,
            batch_size=batch_size,
            rows_in_file=_count_rows(path),
            file_bytes=path.stat().st_size,
            fit_seconds=fit_seconds,
            write_seconds=write_seconds,
            rss_before_bytes=rss_before,
            peak_rss_bytes=memory.peak,
            max_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            command=command,
        )
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)

    report = Path(output_dir) / REPORT_NAME
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(_markdown(result))
    LOGGER.info("Wrote %s", report)
    return result


def _markdown(result: LargeOutputResult) -> str:
    """The report: what was run, and the figures."""
    mib = 2**20
    return "\n".join(
        [
            "# Large output: sampled rows streamed to a CSV file",
            "",
            f"Command: `{result.command}`",
            "",
            f"Written {runner.utc_now()} on {_machine()}.",
            "",
            f"JANUS fitted on `{result.dataset}` ({result.training_rows:,} rows, "
            f"{result.columns} columns), then `sample({result.rows:,}, "
            f"batch_size={result.batch_size:,}, output_folder_path=...)`.",
            "",
            "| figure | value |",
            "|---|---|",
            f"| rows asked for | {result.rows:,} |",
            f"| data rows in the file | {result.rows_in_file:,} |",
            f"| columns | {result.columns} |",
            f"| file size | {result.file_bytes / mib:,.0f} MiB |",
            f"| fit time | {result.fit_seconds:.1f} s |",
            f"| write time (sampling + CSV) | {result.write_seconds:.1f} s |",
            f"| rows per second | {result.rows_per_second:,.0f} |",
            f"| RSS after fit, before sampling | {result.rss_before_bytes / mib:,.0f} MiB |",
            f"| peak RSS while writing (sampled every 50 ms) | "
            f"{result.peak_rss_bytes / mib:,.0f} MiB |",
            f"| peak RSS of the whole process (`ru_maxrss`) | "
            f"{result.max_rss_bytes / mib:,.0f} MiB |",
            "",
            "Memory holds one batch at a time: the peak does not grow with the number of rows.",
            "",
        ]
    )


def _machine() -> str:
    """One line on the machine: cores, memory, Python and library versions."""
    info = runner.environment_info()
    versions = info["versions"]
    return (
        f"{info['cpu_count']} cores, {info['memory_gb']} GB, Python {info['python']}, "
        f"sdv {versions['sdv']}, pandas {versions['pandas']}, numpy {versions['numpy']}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this benchmark's own options (all but ``--data-dir``) to ``parser``."""
    parser.add_argument("--output", default="results", help="results folder (default results)")
    parser.add_argument("--dataset", default="house_sales")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument("--work-dir", help="folder for the CSV file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the CSV file")


def run_from_args(args, command: str | None = None) -> int:
    """Run with parsed arguments and print the Markdown report; return the exit code."""
    result = run(
        data_dir=args.data_dir,
        output_dir=args.output,
        dataset=args.dataset,
        rows=args.rows,
        batch_size=args.batch_size,
        keep=args.keep,
        work_dir=args.work_dir,
        command=command or " ".join(["python -m benchmark", *sys.argv[1:]]),
    )
    sys.stdout.write(_markdown(result))
    return 0 if result.rows_in_file == result.rows else 1
