"""End-to-end runs of the benchmark harness on tiny slices (a few hundred rows, 1 epoch).

Each job runs in its own spawned process, which costs a few seconds of imports, so the runs
here are few and small. The data come from a folder of CSVs written into ``tmp_path``.
"""

import json

import numpy as np
import pandas as pd
import pytest

from benchmark import cli, runner
from benchmark.jobs import Job


def _toy_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 50, rows)
    start = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 300, rows), unit="D")
    return pd.DataFrame(
        {
            "low": low,
            "high": low + rng.integers(0, 30, rows),
            "amount": rng.gamma(2.0, 10.0, rows).round(2),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
            "region": rng.choice(["north", "south"], rows),
            "active": rng.random(rows) < 0.7,
            "start": start,
            "end": start + pd.to_timedelta(rng.integers(1, 90, rows), unit="D"),
        }
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    (folder / "toy").mkdir()
    _toy_frame().to_csv(folder / "toy" / "data.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def scenario_file(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("scen") / "scenarios.json"
    code = cli.main(
        ["scenarios", "--datasets", "toy", "--data-dir", str(data_dir), "--feasible", "3",
         "--infeasible", "2", "--out", str(path), "-q"]
    )  # fmt: skip
    assert code == 0
    return path


def _cached(output, dataset, synthesizer, scenario="none", seed=0):
    result = runner.read_cached(output, Job(dataset, synthesizer, scenario, seed))
    assert result is not None, f"no cached result for {synthesizer}/{scenario}"
    return result


def test_scenario_file_lists_feasible_and_infeasible(scenario_file):
    payload = json.loads(scenario_file.read_text())
    scenarios = payload["scenarios"]
    assert payload["counts"] == {"feasible": 3, "infeasible": 2}
    assert all(s["support_rows"] >= 5 for s in scenarios if s["feasible"])
    assert all(s["support_rows"] == 0 for s in scenarios if not s["feasible"])
    assert {"id", "dataset", "constraints", "conditions", "description"} <= set(scenarios[0])


def test_run_failure_timeout_resume_and_report(data_dir, scenario_file, tmp_path):
    output = tmp_path / "out"
    common = ["--datasets", "toy", "--data-dir", str(data_dir), "--output", str(output),
              "--rows", "200", "--epochs", "1", "--eval-rows", "200", "--new-row-sample", "20",
              "--scenario-file", str(scenario_file), "-q", "--no-report"]  # fmt: skip

    # Unconstrained: a real model at 1 epoch, the floor, and a synthesizer that fails.
    code = cli.main(
        ["run", *common, "--synthesizers", "CTGAN", "Independent", "Failing", "--workers", "2"]
    )
    assert code == 0
    ctgan = _cached(output, "toy", "CTGAN")
    assert ctgan.status == "ok", ctgan.error
    assert ctgan.rows_returned == ctgan.train_rows == 192  # 240 rows, 20% held out
    assert ctgan.flush_denormal is True
    for metric in ("tree_detection", "logistic_detection", "svc_detection", "quality_score"):
        assert 0.0 <= getattr(ctgan, metric) <= 1.0, metric
    assert ctgan.peak_memory_mb is not None and ctgan.model_size_mb > 0
    failing = _cached(output, "toy", "Failing")
    assert failing.status == "error" and "always fails" in failing.error

    # A synthesizer that never finishes becomes a timeout row.
    code = cli.main(["run", *common, "--synthesizers", "Sleeping", "--timeout", "4"])
    sleeping = _cached(output, "toy", "Sleeping")
    assert sleeping.status == "timeout" and "Time limit of 4 s" in sleeping.error

    # Constraint scenarios with SDV's own constraint handling, feasible and infeasible.
    code = cli.main(
        ["run", *common, "--synthesizers", "Independent", "--scenarios", "toy-f000", "toy-x000"]
    )
    feasible = _cached(output, "toy", "Independent", "toy-f000")
    assert feasible.status == "ok", feasible.error
    assert feasible.all_valid is True and feasible.valid_share == 1.0
    infeasible = _cached(output, "toy", "Independent", "toy-x000")
    assert infeasible.feasible is False and infeasible.rows_returned in (None, 0)
    assert infeasible.infeasible_outcome in ("detected", "exhausted")
    assert infeasible.infeasible_detected is (infeasible.infeasible_outcome == "detected")

    # Resume reruns only the missing job of the saved run.
    kept = runner.cache_path(output, Job("toy", "Independent", "toy-f000", 0))
    removed = runner.cache_path(output, Job("toy", "Independent", "toy-x000", 0))
    stamp = kept.stat().st_mtime_ns
    removed.unlink()
    assert cli.main(["resume", "--output", str(output), "-q"]) == 0
    assert removed.is_file() and kept.stat().st_mtime_ns == stamp

    # The reports cover every cached job.
    written = {p.name for p in (output / n for n in ("results.csv", "leaderboard.md"))}
    assert written <= {p.name for p in output.iterdir()}
    table = pd.read_csv(output / "results.csv")
    assert len(table) == 6
    assert set(table.status) == {"ok", "error", "timeout"}
    board = (output / "leaderboard.md").read_text()
    assert "## Unconstrained jobs" in board and "## Constraint scenarios" in board
    assert "Budgets: training rows 200" in board and "**" in board
    for plot in ("detection.png", "fit_time.png", "constraint_validity.png"):
        assert (output / plot).read_bytes()[:4] == b"\x89PNG"
    environment = json.loads((output / "environment.json").read_text())
    assert environment["versions"]["sdv"] and environment["seeds"] == [0]
    assert json.loads((output / "run_config.json").read_text())["settings"]["budget"]["rows"] == 200


def test_main_prints_leaderboard(data_dir, tmp_path, capsys):
    output = tmp_path / "main"
    code = cli.main(
        ["main", "--dataset", "toy", "--data-dir", str(data_dir), "--rows", "150",
         "--synthesizers", "GaussianCopula", "--output", str(output), "-q"]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "| GaussianCopula | ok |" in text
    assert "rss_hwm" in text or "ru_maxrss" in text
    assert (output / "toy_seed0.md").read_text() == text
