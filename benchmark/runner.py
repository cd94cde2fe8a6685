"""Running jobs in isolated processes, with time limits, a result cache and a progress bar.

Each job runs in its own process started with ``spawn``. The parent waits at most the
job's time limit, then kills it; a crash, an exception or a timeout becomes a result row with
its error text. Finished jobs are cached as JSON under ``<output>/cache/`` keyed by (dataset,
synthesizer, scenario, seed), so a run that stops can resume where it stopped.
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import logging
import multiprocessing
import os
import platform
import time
from pathlib import Path

from benchmark import jobs
from benchmark.jobs import Job, JobResult, JobSettings
from benchmark.synthesizers import Budget

LOGGER = logging.getLogger(__name__)

CONFIG_FILE = "run_config.json"
ENVIRONMENT_FILE = "environment.json"
FINAL_STATUSES = ("ok", "error")
START_METHOD_ENV = "JANUS_BENCHMARK_START_METHOD"
_KILL_GRACE = 5.0
_LIVE: set = set()  # job processes running now
_EXTRA_PRELOAD: list = []


@dataclasses.dataclass
class RunConfig:
    """Everything that defines a run; saved beside its results so it can resume.

    Attributes
    ----------
    datasets : list of str
        Dataset names.
    synthesizers : list of str
        Registry names.
    seeds : list of int
        Seeds (each gives its own train/holdout split).
    scenarios : list of str
        Scenario ids; ``"none"`` is the unconstrained job. Scenarios of other datasets are
        skipped for a dataset.
    output_dir : str
        Folder of the cache, results and reports.
    settings : JobSettings
        Budgets, data folder, scenario file and metrics.
    """

    datasets: list
    synthesizers: list
    seeds: list
    scenarios: list
    output_dir: str
    settings: JobSettings = dataclasses.field(default_factory=JobSettings)

    def to_dict(self) -> dict:
        """Return the configuration as JSON-friendly data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """Rebuild a configuration saved by :meth:`to_dict`."""
        settings = dict(values["settings"])
        settings["budget"] = Budget(**settings["budget"])
        settings["metrics"] = tuple(settings["metrics"])
        return cls(**{**values, "settings": JobSettings(**settings)})

    def save(self) -> Path:
        """Write ``run_config.json`` in the output folder and return its path."""
        path = Path(self.output_dir) / CONFIG_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, output_dir: str | os.PathLike) -> RunConfig:
        """Read the configuration saved in ``output_dir``."""
        path = Path(output_dir) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"No {CONFIG_FILE} in {output_dir}: start the run with `python -m benchmark run`."
            )
        return cls.from_dict(json.loads(path.read_text()))


def scenario_datasets(scenario_file: str | None) -> dict[str, str]:
    """Return scenario id to dataset name for the scenarios in ``scenario_file``."""
    if not scenario_file:
        return {}
    with open(scenario_file) as handle:
        return {s["id"]: s["dataset"] for s in json.load(handle)["scenarios"]}


def plan_jobs(config: RunConfig) -> list[Job]:
    """Return the jobs of a run, in a stable order (dataset, scenario, seed, synthesizer).

    Parameters
    ----------
    config : RunConfig
        The run.

    Returns
    -------
    list of Job
        One job per (dataset, synthesizer, scenario, seed) combination that applies.
    """
    owners = scenario_datasets(config.settings.scenario_file)
    planned = []
    for dataset in config.datasets:
        for scenario in config.scenarios:
            if scenario != jobs.NO_SCENARIO and owners.get(scenario) != dataset:
                continue
            for seed in config.seeds:
                for synthesizer in config.synthesizers:
                    planned.append(Job(dataset, synthesizer, scenario, int(seed)))

    return planned


def cache_path(output_dir: str | os.PathLike, job: Job) -> Path:
    """Return the JSON cache file of ``job``."""
    return Path(output_dir) / "cache" / f"{job.key}.json"


def read_cached(output_dir: str | os.PathLike, job: Job) -> JobResult | None:
    """Return the cached result of ``job``, or None."""
    path = cache_path(output_dir, job)
    if not path.is_file():
        return None
    return JobResult.from_dict(json.loads(path.read_text()))


def write_cached(output_dir: str | os.PathLike, result: JobResult) -> Path:
    """Write a job's result to the cache and return the file."""
    job = Job(result.dataset, result.synthesizer, result.scenario, result.seed)
    path = cache_path(output_dir, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str))
    tmp.replace(path)
    return path


def _finish_record(job: Job, updates: dict, wall: float) -> JobResult:
    """Turn the merged updates of a job into a result row."""
    details = {k[len("details_") :]: v for k, v in updates.items() if k.startswith("details_")}
    result = JobResult.from_dict({**updates, **job._asdict()})
    result.wall_seconds = wall
    result.details = json.dumps(details, default=str) if details else ""
    if result.feasible is False:
        result.infeasible_outcome = infeasible_outcome(result)
        result.infeasible_detected = result.infeasible_outcome == "detected"
    return result


def infeasible_outcome(result: JobResult) -> str:
    """Classify what a synthesizer did with an infeasible scenario.

    Parameters
    ----------
    result : JobResult
        A job on an infeasible scenario.

    Returns
    -------
    str
        ``rows_returned`` (it returned rows, which must violate something), ``timeout``,
        ``exhausted`` (SDV's rejection sampling gave up: "Unable to sample any rows"),
        ``crashed`` (only built-in exceptions such as TypeError: a bug, not a refusal), or
        ``detected`` (an error of the library's own, e.g. ``ConstraintNotMetError`` or an
        infeasibility error, before any row was returned).
    """
    if result.rows_returned:
        return "rows_returned"
    if result.status == "timeout":
        return "timeout"
    if result.status == "ok":
        return "no_rows"
    if "Unable to sample any rows" in result.error:
        return "exhausted"
    chain = [name.strip() for name in (result.error_chain or result.error_type).split("<-")]
    if all(_is_builtin_error(name) for name in chain):
        return "crashed"
    return "detected"


def _is_builtin_error(name: str) -> bool:
    """Whether ``name`` is a Python built-in exception (a crash, not a deliberate refusal)."""
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def job_context():
    """Return the multiprocessing context that starts job processes.

    ``forkserver`` where available: a server process imports the harness (SDV, torch,
    SDMetrics) once, and each job is a fresh fork of that clean server, so it is isolated
    without paying several seconds of imports. Elsewhere, ``spawn``. The environment
    variable ``JANUS_BENCHMARK_START_METHOD`` overrides the choice.

    Returns
    -------
    multiprocessing.context.BaseContext
        The context.
    """
    methods = multiprocessing.get_all_start_methods()
    method = os.environ.get(START_METHOD_ENV) or (
        "forkserver" if "forkserver" in methods else "spawn"
    )
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["benchmark.jobs", *_EXTRA_PRELOAD])
    return context


def preload_for(synthesizers: list[str]) -> None:
    """Choose extra modules for the fork server to import once, before its first job.

    JANUS's package (numba kernels, about 7 s to import) is preloaded when a run includes
    JANUS; it has no effect once the fork server runs, or with ``spawn``.

    Parameters
    ----------
    synthesizers : list of str
        The synthesizers the run will use.
    """
    _EXTRA_PRELOAD[:] = ["sdv_janus"] if "JANUS" in synthesizers else []


def run_job(job: Job, settings: JobSettings) -> JobResult:
    """Run one job in its own process with the budget's time limit.

    Parameters
    ----------
    job : Job
        What to run.
    settings : JobSettings
        Budgets and paths.

    Returns
    -------
    JobResult
        The result; ``status`` is ``ok``, ``error`` or ``timeout``.
    """
    context = job_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=jobs.child_main, args=(job, settings, sender), daemon=True)
    start = time.perf_counter()
    with _child_environment():
        process.start()
    _LIVE.add(process)
    sender.close()
    updates = {"status": "running"}
    deadline = start + settings.budget.timeout
    while updates["status"] not in FINAL_STATUSES:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            updates.update(_timeout_fields(settings.budget.timeout, updates.get("phase", "")))
            break
        if not receiver.poll(min(remaining, 1.0)):
            if not process.is_alive() and not receiver.poll(0.1):
                updates.update(_died_fields(process, updates.get("phase", "")))
            continue
        try:
            updates.update(receiver.recv())
        except (EOFError, OSError):
            updates.update(_died_fields(process, updates.get("phase", "")))

    _stop(process)
    _LIVE.discard(process)
    receiver.close()
    result = _finish_record(job, updates, time.perf_counter() - start)
    _log_result(result)
    return result


@contextlib.contextmanager
def _child_environment():
    """Set environment variables inherited by a job process (tqdm bars off), then restore."""
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = saved


def _timeout_fields(limit: float, phase: str) -> dict:
    return {
        "status": "timeout",
        "error": f"Time limit of {limit:g} s exceeded during {phase or 'startup'}",
        "error_type": "Timeout",
    }


def _died_fields(process, phase: str) -> dict:
    process.join(timeout=_KILL_GRACE)
    exitcode = process.exitcode
    return {
        "status": "error",
        "error": f"Job process exited with code {exitcode} during {phase or 'startup'}",
        "error_type": "ProcessDied",
    }


def _stop(process) -> None:
    """Terminate a job process, then kill it if it does not stop."""
    process.join(timeout=1.0 if process.is_alive() else 0)
    if process.is_alive():
        process.terminate()
        process.join(timeout=_KILL_GRACE)
    if process.is_alive():
        process.kill()
        process.join()


def _stop_all() -> None:
    """Stop every job process still running (after an interruption)."""
    for process in list(_LIVE):
        _stop(process)
        _LIVE.discard(process)


def _log_result(result: JobResult) -> None:
    key = f"{result.dataset}/{result.synthesizer}/{result.scenario}/seed{result.seed}"
    if result.status == "ok":
        LOGGER.info(
            "%s: ok, fit %.1f s, sample %.1f s", key, result.fit_seconds or 0,
            result.sample_seconds or 0,
        )  # fmt: skip
    else:
        LOGGER.error("%s: %s: %s", key, result.status, result.error)


def utc_now() -> str:
    """Return the current UTC time as ISO text, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def environment_info() -> dict:
    """Return library versions, machine and Python details for the results folder."""
    packages = [
        "sdv", "sdmetrics", "rdt", "ctgan", "copulas", "torch", "numpy", "pandas", "scipy",
        "scikit-learn", "numba", "networkx", "sdv-janus",
    ]  # fmt: skip
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "versions": versions,
        "torch_flush_denormal": "set to True in every job process before any torch model",
    }


def _memory_gb() -> float | None:
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages / 2**30, 1)


def write_environment(config: RunConfig, started: str, finished: str | None) -> Path:
    """Write versions, seeds, machine and budgets beside the results.

    Parameters
    ----------
    config : RunConfig
        The run.
    started, finished : str
        ISO timestamps (``finished`` None while running).

    Returns
    -------
    pathlib.Path
        The file written (``environment.json``).
    """
    info = environment_info()
    info.update(
        {
            "started": started,
            "finished": finished,
            "seeds": config.seeds,
            "budget": dataclasses.asdict(config.settings.budget),
            "datasets": config.datasets,
            "synthesizers": config.synthesizers,
            "scenario_file": config.settings.scenario_file,
            "metrics": list(config.settings.metrics),
        }
    )
    path = Path(config.output_dir) / ENVIRONMENT_FILE
    path.write_text(json.dumps(info, indent=2, default=str))
    return path


def run(
    config: RunConfig, force: bool = False, progress: bool = True, workers: int = 1
) -> list[JobResult]:
    """Run every job of ``config`` that is not cached yet.

    Parameters
    ----------
    config : RunConfig
        The run; saved to the output folder first.
    force : bool, default False
        Rerun cached jobs too.
    progress : bool, default True
        Show a tqdm progress bar (jobs done, time left).
    workers : int, default 1
        Jobs run at the same time, each in its own process. Timings are only comparable
        between jobs run with the same number of workers on the same machine.

    Returns
    -------
    list of JobResult
        Results of all planned jobs, cached ones included, in plan order.
    """
    from tqdm.auto import tqdm

    config.save()
    preload_for(config.synthesizers)
    started = utc_now()
    write_environment(config, started, None)
    planned = plan_jobs(config)
    done = {} if force else {job: read_cached(config.output_dir, job) for job in planned}
    done = {job: result for job, result in done.items() if result is not None}
    todo = [job for job in planned if job not in done]
    LOGGER.info("%d jobs planned, %d cached, %d to run", len(planned), len(done), len(todo))
    with tqdm(total=len(planned), initial=len(done), unit="job", disable=not progress) as bar:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers))
        futures = {pool.submit(run_job, job, config.settings): job for job in todo}
        try:
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                write_cached(config.output_dir, result)
                done[futures[future]] = result
                bar.set_postfix_str(futures[future].key)
                bar.update(1)
        except BaseException:
            # Interrupted (Ctrl-C): drop queued jobs and stop the running ones.
            pool.shutdown(wait=False, cancel_futures=True)
            _stop_all()
            raise
        pool.shutdown()

    finished = utc_now()
    write_environment(config, started, finished)
    LOGGER.info("Run finished: %d jobs in %s", len(planned), config.output_dir)
    return [done[job] for job in planned]


def collect(output_dir: str | os.PathLike) -> list[JobResult]:
    """Return every cached result under ``output_dir``, sorted by key.

    Parameters
    ----------
    output_dir : path-like
        A run's output folder.

    Returns
    -------
    list of JobResult
        All cached results.
    """
    files = sorted((Path(output_dir) / "cache").glob("**/*.json"))
    return [JobResult.from_dict(json.loads(path.read_text())) for path in files]
