"""One benchmark job: fit a synthesizer on one dataset (and scenario, and seed), then score it.

:func:`execute_job` runs inside the job's own process (see :mod:`benchmark.runner`). It reports
progress through a ``send`` callback with partial results, so that a job killed at its time
limit still leaves its fit time and the phase it was in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import resource
import time
import traceback
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from benchmark import constraints as cons
from benchmark import datasets, metrics, synthesizers
from benchmark.synthesizers import Budget

LOGGER = logging.getLogger(__name__)

NO_SCENARIO = "none"
FULL_METRICS = (
    "logistic_detection",
    "svc_detection",
    "tree_detection",
    "quality",
    "diagnostic",
    "coverage",
    "rare",
    "new_rows",
    "dtypes",
    "validity",
)
MAIN_METRICS = (
    "logistic_detection",
    "tree_detection",
    "quality",
    "coverage",
    "rare",
    "dtypes",
    "validity",
)


class Job(NamedTuple):
    """The cache key of a job."""

    dataset: str
    synthesizer: str
    scenario: str
    seed: int

    @property
    def key(self) -> str:
        """Path-like key, unique per job."""
        return f"{self.dataset}/{self.synthesizer}/{self.scenario}/seed{self.seed}"


@dataclasses.dataclass
class JobSettings:
    """What every job of a run shares.

    Attributes
    ----------
    budget : Budget
        Rows, epochs, time limit and metric sizes.
    data_dir : str or None
        The data folder (None: the default search).
    scenario_file : str or None
        JSON file of constraint scenarios.
    metrics : tuple of str
        Metrics to compute (names from ``FULL_METRICS``).
    log_level : int
        Logging level inside job processes.
    """

    budget: Budget = dataclasses.field(default_factory=Budget)
    data_dir: str | None = None
    scenario_file: str | None = None
    metrics: tuple = FULL_METRICS
    log_level: int = logging.INFO


@dataclasses.dataclass
class JobResult:
    """One row of the results table. Metrics left at None were not computed."""

    dataset: str
    synthesizer: str
    scenario: str
    seed: int
    status: str = "pending"
    phase: str = ""
    error: str = ""
    error_type: str = ""
    error_chain: str = ""
    train_rows: int | None = None
    eval_rows: int | None = None
    columns: int | None = None
    rows_requested: int | None = None
    rows_returned: int | None = None
    fit_seconds: float | None = None
    sample_seconds: float | None = None
    wall_seconds: float | None = None
    peak_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    memory_method: str = ""
    model_size_mb: float | None = None
    logistic_detection: float | None = None
    svc_detection: float | None = None
    tree_detection: float | None = None
    quality_score: float | None = None
    diagnostic_score: float | None = None
    coverage_mean: float | None = None
    coverage_min: float | None = None
    rare_present: float | None = None
    rare_frequency_ratio: float | None = None
    new_row_synthesis: float | None = None
    exact_copies: float | None = None
    dtypes_preserved: bool | None = None
    dtype_mismatches: str = ""
    n_constraints: int = 0
    constraint_mode: str = ""
    condition_mode: str = ""
    valid_share: float | None = None
    all_valid: bool | None = None
    natural_valid_share: float | None = None
    feasible: bool | None = None
    infeasible_outcome: str = ""
    infeasible_detected: bool | None = None
    flush_denormal: bool | None = None
    details: str = ""

    @classmethod
    def from_dict(cls, values: dict) -> JobResult:
        """Build a record from a dict, ignoring unknown keys."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict:
        """Return the record as a plain dict."""
        return dataclasses.asdict(self)


# -- memory ----------------------------------------------------------------------------------


def _read_status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_memory() -> tuple[str, float]:
    """Reset the process's peak-RSS mark if the OS allows; return the method and current RSS.

    Returns
    -------
    (str, float)
        ``"rss_hwm"`` (Linux VmHWM, reset through ``/proc/self/clear_refs``) or
        ``"ru_maxrss"`` (peak RSS since the process started; no reset), and the current RSS
        in MB.
    """
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return "rss_hwm", (_read_status_kb("VmRSS") or 0.0) / 1024
    except OSError:
        return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(method: str) -> float:
    """Return the process's peak RSS in MB according to ``method``."""
    if method == "rss_hwm":
        value = _read_status_kb("VmHWM")
        if value is not None:
            return value / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- scenarios -------------------------------------------------------------------------------


def load_scenario(scenario_file: str | None, scenario_id: str) -> dict:
    """Return a scenario by id; ``"none"`` is the unconstrained scenario.

    Parameters
    ----------
    scenario_file : str or None
        JSON file written by ``python -m benchmark scenarios``.
    scenario_id : str
        The scenario's id.

    Returns
    -------
    dict
        With ``constraints``, ``conditions`` and ``feasible``.
    """
    if scenario_id == NO_SCENARIO:
        return {"id": NO_SCENARIO, "constraints": [], "conditions": [], "feasible": True}
    if not scenario_file:
        raise ValueError(f"Scenario {scenario_id!r} requested but no scenario file was given.")

    with open(scenario_file) as handle:
        for scenario in json.load(handle)["scenarios"]:
            if scenario["id"] == scenario_id:
                return scenario

    raise KeyError(f"Scenario {scenario_id!r} is not in {scenario_file}.")


def _attach_constraints(synth, specs: list[dict], dataset, synthesizer: str) -> str:
    """Attach the specifications to ``synth``; return how (for the results table).

    SDV's built-ins are used where SDV allows them; for JANUS, other rules become JANUS
    ``Rule`` expressions where its rule language can say them; the rest become reject-only
    SDV programmable constraints.
    """
    if not specs:
        return ""

    objects, modes = [], set()
    for spec in specs:
        obj = None
        if synthesizer == "JANUS" and not cons.sdv_compatible(spec, dataset.sdtypes):
            obj = janus_constraint(spec, dataset.name, dataset.sdtypes)
        if obj is None:
            obj = cons.to_sdv(spec, dataset.name, dataset.sdtypes)
            modes.add("sdv-reject" if isinstance(obj, cons.RejectConstraint) else "sdv")
        else:
            modes.add("janus-rule")
        objects.append(obj)

    synth.add_constraints(objects)
    return "+".join(sorted(modes))


def janus_constraint(spec: dict, table_name: str, sdtypes: dict[str, str]):
    """Return a JANUS ``Rule`` for a specification SDV cannot express, or None.

    Parameters
    ----------
    spec : dict
        A constraint specification.
    table_name : str
        The table's name.
    sdtypes : dict
        Column name to sdtype.

    Returns
    -------
    sdv_janus.constraints.Rule or None
        None when ``sdv_janus.constraints.Rule`` is missing or the rule language cannot
        express the specification.
    """
    try:
        from sdv_janus.constraints import Rule
    except Exception:  # JANUS missing or broken: fall back to SDV's handling
        return None

    expression = cons.rule_expression(spec, sdtypes)
    if expression is None:
        return None
    return Rule(expression, name=cons.describe(spec), table_name=table_name)


# -- sampling --------------------------------------------------------------------------------


def _split_conditions(conditions: list[dict]) -> tuple[dict, list[dict]]:
    """Return fixed-value conditions as ``{column: value}`` and the other conditions."""
    fixed, other = {}, []
    for condition in conditions:
        if condition.get("op") == "==":
            fixed[condition["column"]] = condition["value"]
        else:
            other.append(condition)

    return fixed, other


def _fixed_value(value, series: pd.Series):
    """Convert a JSON condition value to the column's type."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Timestamp(value)
    if pd.api.types.is_bool_dtype(series):
        return bool(value)
    return value


def sample_rows(synth, table_name: str, train: pd.DataFrame, rows: int, conditions: list[dict]):
    """Sample ``rows`` rows meeting ``conditions``; return them and how conditions were met.

    Fixed values go through SDV's ``sample_from_conditions``. Ranges and other tests are met
    by rejection in this harness (at most 100 batches), since SDV has no range conditions.

    Parameters
    ----------
    synth : object
        A fitted synthesizer with SDV's API.
    table_name : str
        The table's name.
    train : pandas.DataFrame
        Training rows (to convert condition values to column types).
    rows : int
        Rows wanted.
    conditions : list of dict
        Condition specifications.

    Returns
    -------
    (pandas.DataFrame, str)
        The rows (maybe fewer than asked) and the condition mode.
    """
    from sdv.sampling import Condition

    fixed, other = _split_conditions(conditions)
    if fixed:
        values = {c: _fixed_value(v, train[c]) for c, v in fixed.items()}
        draw = lambda n: synth.sample_from_conditions(  # noqa: E731
            [Condition(values, num_rows=n)]
        )[table_name]
    else:
        draw = lambda n: synth.sample(n)[table_name]  # noqa: E731

    if not other:
        return draw(rows), "sdv-conditions" if fixed else ""

    kept = []
    total = 0
    for _ in range(100):
        batch = draw(max(rows, 100))
        batch = batch[cons.all_valid(batch, other)]
        kept.append(batch)
        total += len(batch)
        if total >= rows:
            break

    out = pd.concat(kept, ignore_index=True).head(rows)
    return out, "harness-rejection" + ("+sdv-conditions" if fixed else "")


# -- the job ---------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    """Seed the global generators of this job process (CTGAN/TVAE read torch's)."""
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)


def _prepare_data(dataset, budget: Budget, seed: int):
    """Return training rows and evaluation rows for a seed."""
    if budget.holdout <= 0:
        train = metrics.subsample(dataset.data, budget.rows or len(dataset.data), seed)
        return train, train
    return datasets.split(dataset.data, seed, budget.holdout, budget.rows)


class _Prepared(NamedTuple):
    """A job's data and rules, ready to fit."""

    dataset: datasets.Dataset
    train: pd.DataFrame
    reference: pd.DataFrame
    specs: list
    conditions: list


def _prepare(job: Job, settings: JobSettings, send: Callable[[dict], None]) -> _Prepared:
    """Load the dataset, split it for the seed and read the scenario."""
    dataset = datasets.load_dataset(job.dataset, settings.data_dir)
    scenario = load_scenario(settings.scenario_file, job.scenario)
    train, reference = _prepare_data(dataset, settings.budget, job.seed)
    specs = cons.fit_specs(train, scenario["constraints"])
    conditions = list(scenario.get("conditions", []))
    if conditions:
        reference = reference[cons.all_valid(reference, conditions)]
    send(
        {
            "train_rows": len(train),
            "columns": train.shape[1],
            "n_constraints": len(specs) + len(conditions),
            "feasible": bool(scenario.get("feasible", True)),
        }
    )
    return _Prepared(dataset, train, reference, specs, conditions)


def _fit_and_sample(job: Job, prep: _Prepared, budget: Budget, send) -> pd.DataFrame:
    """Build, constrain, fit and sample; send times, rows, memory and model size."""
    send({"phase": "build"})
    name = prep.dataset.name
    synth = synthesizers.get(job.synthesizer).build(prep.dataset.metadata, budget)
    send({"constraint_mode": _attach_constraints(synth, prep.specs, prep.dataset, job.synthesizer)})

    send({"phase": "fit"})
    method, rss_before = reset_peak_memory()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synth.fit({name: prep.train})
    send({"fit_seconds": time.perf_counter() - start, "phase": "sample"})

    # Time a failed sampling too: baselines may spend long rejecting before they give up.
    wanted = len(prep.train)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synthetic, mode = sample_rows(synth, name, prep.train, wanted, prep.conditions)
    finally:
        send({"sample_seconds": time.perf_counter() - start, "rows_requested": wanted})

    peak = peak_memory_mb(method)
    send(
        {
            "rows_returned": len(synthetic),
            "condition_mode": mode,
            "peak_rss_mb": peak,
            "peak_memory_mb": peak - rss_before if method == "rss_hwm" else peak,
            "memory_method": method,
            "phase": "model size",
        }
    )
    send({"model_size_mb": _model_size_mb(synth)})
    return synthetic


def execute_job(job: Job, settings: JobSettings, send: Callable[[dict], None]) -> None:
    """Run one job and report through ``send``; exceptions propagate to the caller.

    Parameters
    ----------
    job : Job
        What to run.
    settings : JobSettings
        Budgets and paths.
    send : callable
        Called with dicts of result fields as they become known.
    """
    import torch

    # Denormal floats make CPU training erratic and up to 10x slower (SDV2-NOTES section 4).
    send({"phase": "load", "flush_denormal": bool(torch.set_flush_denormal(True))})
    _seed_everything(job.seed)
    prep = _prepare(job, settings, send)
    synthetic = _fit_and_sample(job, prep, settings.budget, send)

    send({"phase": "metrics"})
    budget = settings.budget
    ev = _Eval(
        prep.dataset,
        prep.train,
        synthetic,
        metrics.subsample(prep.reference, budget.eval_rows, job.seed),
        metrics.subsample(synthetic, budget.eval_rows, job.seed),
        prep.specs + prep.conditions,
        budget,
        job.seed,
    )
    _score(ev, settings.metrics, send)
    send({"status": "ok", "phase": "done"})


def _model_size_mb(synth) -> float | None:
    import cloudpickle

    try:
        return len(cloudpickle.dumps(synth)) / 2**20
    except Exception as error:  # an unpicklable model is recorded, not fatal
        LOGGER.warning("Could not pickle the synthesizer: %s", error)
        return None


class _Eval(NamedTuple):
    """What the metric functions read."""

    dataset: datasets.Dataset
    train: pd.DataFrame
    synthetic: pd.DataFrame
    real_eval: pd.DataFrame
    synth_eval: pd.DataFrame
    specs: list
    budget: Budget
    seed: int


def _detection(metric: str) -> Callable[[_Eval], dict]:
    def compute(ev: _Eval) -> dict:
        name, metadata = ev.dataset.name, ev.dataset.metadata
        if metric == "tree_detection":
            score = metrics.tree_detection(ev.real_eval, ev.synth_eval, metadata, name, ev.seed)
        else:
            sdm_name = "LogisticDetection" if metric == "logistic_detection" else "SVCDetection"
            score = metrics.sdmetrics_detection(
                sdm_name, ev.real_eval, ev.synth_eval, metadata, name
            )
        return {metric: score}

    return compute


def _quality_fields(ev: _Eval) -> dict:
    name, metadata = ev.dataset.name, ev.dataset.metadata
    return {"quality_score": metrics.quality_score(ev.real_eval, ev.synth_eval, metadata, name)}


def _diagnostic_fields(ev: _Eval) -> dict:
    name, metadata = ev.dataset.name, ev.dataset.metadata
    score = metrics.diagnostic_score(ev.train, ev.synthetic, metadata, name)
    return {"diagnostic_score": score}


def _score(ev: _Eval, wanted: tuple, send: Callable[[dict], None]) -> None:
    """Compute the requested metrics one by one; a failing metric is logged, not fatal."""
    send({"eval_rows": len(ev.real_eval)})
    steps = {
        "validity": _validity_fields,
        "dtypes": _dtype_fields,
        "coverage": _coverage_fields,
        "rare": _rare_fields,
        "quality": _quality_fields,
        "diagnostic": _diagnostic_fields,
        "logistic_detection": _detection("logistic_detection"),
        "tree_detection": _detection("tree_detection"),
        "new_rows": _new_row_fields,
        "svc_detection": _detection("svc_detection"),
    }
    needs_reference = {"quality", "logistic_detection", "tree_detection", "svc_detection"}
    errors, timings = {}, {}
    for metric, compute in steps.items():
        if metric not in wanted or not len(ev.synthetic):
            continue
        if metric in needs_reference and not len(ev.real_eval):
            errors[metric] = "no held-out real row meets the scenario's conditions"
            continue
        send({"phase": f"metric {metric}"})
        start = time.perf_counter()
        try:
            send(compute(ev))
        except Exception as error:  # one metric failing must not lose the others
            LOGGER.warning("Metric %s failed: %s", metric, error)
            errors[metric] = f"{type(error).__name__}: {error}"
        timings[metric] = round(time.perf_counter() - start, 3)

    send({"details_metric_seconds": timings})
    if errors:
        send({"details_metric_errors": errors})


def _validity_fields(ev: _Eval) -> dict:
    attached = metrics.constraint_validity(ev.synthetic, ev.specs)
    natural = metrics.constraint_validity(ev.synthetic, ev.dataset.constraints)
    return {
        "valid_share": attached["valid_share"],
        "all_valid": attached["all_valid"],
        "natural_valid_share": natural["valid_share"],
        "details_validity": attached["per_constraint"],
    }


def _dtype_fields(ev: _Eval) -> dict:
    mismatches = metrics.dtype_mismatches(ev.train, ev.synthetic)
    text = "; ".join(f"{c}: {m}" for c, m in mismatches.items())
    return {"dtypes_preserved": not mismatches, "dtype_mismatches": text}


def _coverage_fields(ev: _Eval) -> dict:
    name, metadata = ev.dataset.name, ev.dataset.metadata
    coverage = metrics.category_coverage(ev.train, ev.synthetic, metadata, name)
    if not coverage:
        return {}
    values = list(coverage.values())
    return {"coverage_mean": float(np.mean(values)), "coverage_min": float(np.min(values))}


def _rare_fields(ev: _Eval) -> dict:
    columns = datasets.discrete_columns(ev.dataset.metadata, ev.dataset.name)
    rare = datasets.rare_categories(ev.train, columns)
    frequencies = metrics.rare_category_frequencies(ev.synthetic, rare)
    present, ratio = metrics.summarize_rare(frequencies)
    return {"rare_present": present, "rare_frequency_ratio": ratio, "details_rare": frequencies}


def _new_row_fields(ev: _Eval) -> dict:
    name, metadata = ev.dataset.name, ev.dataset.metadata
    rows = ev.budget.new_row_sample
    score = metrics.new_row_synthesis(ev.train, ev.synthetic, metadata, name, rows, ev.seed)
    copies = metrics.exact_copies(ev.train, ev.synthetic, metadata, name)
    return {"new_row_synthesis": score, "exact_copies": copies}


def describe_error(error: BaseException) -> dict:
    """Return the error text, the type of its root cause and the traceback.

    SDV re-raises sampling errors as ``Sampling terminated`` with the real error as
    ``__cause__``; the root cause is what the results table should show.

    Parameters
    ----------
    error : BaseException
        The exception caught.

    Returns
    -------
    dict
        ``error``, ``error_type`` (of the root cause), ``error_chain`` (outermost first) and
        ``details_traceback`` fields.
    """
    chain = [error]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    root = chain[-1]
    text = f"{type(root).__name__}: {root}"
    if root is not error:
        text += f" (raised as {type(error).__name__})"
    return {
        "error": text,
        "error_type": type(root).__name__,
        "error_chain": " <- ".join(type(e).__name__ for e in chain),
        "details_traceback": "".join(traceback.format_exception(error, limit=20)),
    }


def _silence_progress_bars() -> None:
    """Turn off tqdm bars inside this job process (SDV draws one per conditional sample).

    SDV passes ``disable=`` explicitly, so the ``TQDM_DISABLE`` variable does not reach its
    bars; this process-local patch does, and the parent's own progress bar is unaffected.
    """
    import tqdm

    original = tqdm.tqdm.__init__
    if getattr(original, "_benchmark_quiet", False):
        return

    def quiet(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    quiet._benchmark_quiet = True
    tqdm.tqdm.__init__ = quiet


def child_main(job: Job, settings: JobSettings, conn) -> None:
    """Entry point of a job process: run the job and send every update through ``conn``.

    Parameters
    ----------
    job : Job
        What to run.
    settings : JobSettings
        Budgets and paths.
    conn : multiprocessing.connection.Connection
        Write end of a pipe to the parent.
    """
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("benchmark").setLevel(settings.log_level)
    warnings.filterwarnings("ignore", message=".*save_to_json.*")
    _silence_progress_bars()
    try:
        execute_job(job, settings, conn.send)
    except BaseException as error:  # report every failure, then exit
        conn.send({"status": "error", **describe_error(error)})
    finally:
        conn.close()
