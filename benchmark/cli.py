"""Command line of the benchmark: ``python -m benchmark <command> ...``.

Commands
--------
main       fit JANUS and GaussianCopula on a whole dataset and print a short leaderboard.
run        run the chosen datasets x synthesizers x scenarios x seeds, cached per job.
resume     continue the run saved in an output folder.
report     write the CSV, Markdown leaderboard and plots of an output folder.
scenarios  generate the constraint scenario file.
datasets   list the datasets found and check their natural constraints.
uncertainty  closed-form uncertainty vs Monte Carlo: speed at equal accuracy.
constraints  JANUS with and without each dataset's natural constraints: validity, speed.
large_output  10 million sampled rows streamed to a CSV file: peak memory and time.
scale      fit/sample time and peak memory from 10k to 1M rows, against GaussianCopula.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from benchmark import (
    constraint_speed,
    datasets,
    jobs,
    large_output,
    runner,
    scale,
    synthesizers,
    uncertainty_speed,
)
from benchmark.jobs import Job, JobSettings
from benchmark.runner import RunConfig
from benchmark.synthesizers import Budget

LOGGER = logging.getLogger(__name__)

DEFAULT_OUTPUT = "results"
DEFAULT_SCENARIO_FILE = "results/scenarios.json"


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help=f"dataset folder (else ${datasets.ENV_VAR}, ...)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def _add_budget(parser: argparse.ArgumentParser, timeout: float, eval_rows: int = 5000) -> None:
    parser.add_argument("--rows", type=int, help="cap on training rows (default: all)")
    parser.add_argument("--epochs", type=int, help="epochs of CTGAN/TVAE (default: theirs)")
    parser.add_argument(
        "--timeout", type=float, default=timeout, help=f"seconds per job (default {timeout:g})"
    )
    parser.add_argument(
        "--eval-rows",
        type=int,
        default=eval_rows,
        help=f"rows per side for detection and quality, 0 = all (default {eval_rows})",
    )
    parser.add_argument(
        "--new-row-sample",
        type=int,
        default=500,
        help="synthetic rows checked by NewRowSynthesis (default 500)",
    )


def _add_main_command(commands) -> None:
    main = commands.add_parser("main", help="JANUS vs GaussianCopula on a whole dataset")
    main.add_argument("--dataset", default="adult")
    main.add_argument("--seed", type=int, default=0)
    main.add_argument("--synthesizers", nargs="+", default=["JANUS", "GaussianCopula"])
    main.add_argument("--output", default=f"{DEFAULT_OUTPUT}/main")
    _add_budget(main, timeout=7200.0, eval_rows=0)
    _add_common(main)


def _add_run_command(commands) -> None:
    run = commands.add_parser("run", help="run a benchmark (resumes cached jobs)")
    run.add_argument("--datasets", nargs="+", default=["all"], help="names or 'all'")
    run.add_argument(
        "--synthesizers", nargs="+", default=["all"], help="registry names, module:factory, 'all'"
    )
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument(
        "--scenarios",
        nargs="+",
        default=[jobs.NO_SCENARIO],
        help="scenario ids, 'none' (unconstrained), 'feasible', 'infeasible' or 'all'",
    )
    run.add_argument("--scenario-file", default=DEFAULT_SCENARIO_FILE)
    run.add_argument("--holdout", type=float, default=0.2, help="held-out share (default 0.2)")
    run.add_argument("--metrics", nargs="+", default=list(jobs.FULL_METRICS))
    run.add_argument("--output", default=DEFAULT_OUTPUT)
    run.add_argument("--force", action="store_true", help="rerun cached jobs")
    run.add_argument("--workers", type=int, default=1, help="jobs at once (default 1)")
    run.add_argument("--no-report", action="store_true", help="skip writing the reports")
    _add_budget(run, timeout=3600.0)
    _add_common(run)


def _add_other_commands(commands) -> None:
    resume = commands.add_parser("resume", help="continue the run saved in --output")
    resume.add_argument("--output", default=DEFAULT_OUTPUT)
    resume.add_argument("--no-report", action="store_true")
    resume.add_argument("--workers", type=int, default=1, help="jobs at once (default 1)")
    _add_common(resume)

    report = commands.add_parser("report", help="write CSV, Markdown and plots")
    report.add_argument("--output", default=DEFAULT_OUTPUT)
    _add_common(report)

    scen = commands.add_parser("scenarios", help="generate the constraint scenario file")
    scen.add_argument("--datasets", nargs="+", default=["all"])
    scen.add_argument("--feasible", type=int, default=36, help="feasible per dataset (36)")
    scen.add_argument("--infeasible", type=int, default=4, help="infeasible per dataset (4)")
    scen.add_argument("--seed", type=int, default=0)
    scen.add_argument("--out", default=DEFAULT_SCENARIO_FILE)
    _add_common(scen)

    data = commands.add_parser("datasets", help="list datasets and check natural constraints")
    _add_common(data)

    speed = commands.add_parser("uncertainty", help="closed form vs Monte Carlo uncertainty speed")
    uncertainty_speed.add_arguments(speed)
    _add_common(speed)

    natural = commands.add_parser(
        "constraints", help="JANUS with and without natural constraints: validity, speed"
    )
    constraint_speed.add_arguments(natural)
    _add_common(natural)

    large = commands.add_parser(
        "large_output", help="10 million sampled rows streamed to CSV: peak memory, time"
    )
    large_output.add_arguments(large)
    _add_common(large)

    sizes = commands.add_parser("scale", help="fit/sample time and memory from 10k to 1M rows")
    scale.add_arguments(sizes)
    _add_common(sizes)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _add_main_command(commands)
    _add_run_command(commands)
    _add_other_commands(commands)
    return parser


def _configure_logging(args) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    # Other libraries (SDV logs whole metadata at INFO) stay at WARNING.
    logging.basicConfig(
        level=max(level, logging.WARNING), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("benchmark").setLevel(level)


def _budget(args, holdout: float) -> Budget:
    return Budget(
        rows=args.rows,
        epochs=args.epochs,
        timeout=args.timeout,
        eval_rows=args.eval_rows,
        new_row_sample=args.new_row_sample,
        holdout=holdout,
    )


def _available_synthesizers(names: list[str]) -> list[str]:
    """Expand 'all' and drop JANUS, with a log message, while it cannot be imported."""
    if "all" in names:
        names = synthesizers.visible_names()
    error = synthesizers.janus_import_error() if "JANUS" in names else None
    if error:
        LOGGER.warning("JANUS skipped: sdv_janus.JanusSynthesizer is not importable (%s)", error)
        names = [n for n in names if n != "JANUS"]
    for name in names:
        synthesizers.get(name)

    return names


def _expand_datasets(names: list[str], data_dir) -> list[str]:
    if "all" not in names:
        return names
    return datasets.list_datasets(datasets.resolve_data_dir(data_dir))


def _expand_scenarios(names: list[str], scenario_file: str) -> list[str]:
    keywords = {"all", "feasible", "infeasible"}
    if not keywords & set(names):
        return names
    with open(scenario_file) as handle:
        scenarios = json.load(handle)["scenarios"]

    picked = [n for n in names if n not in keywords]
    for scenario in scenarios:
        label = "feasible" if scenario["feasible"] else "infeasible"
        if "all" in names or label in names:
            picked.append(scenario["id"])

    return list(dict.fromkeys(picked))


def command_main(args) -> int:
    """Fit the chosen synthesizers on a whole dataset and print a short leaderboard."""
    from benchmark import report

    names = _available_synthesizers(args.synthesizers)
    janus_missing = "JANUS" in args.synthesizers and "JANUS" not in names
    data_dir = str(datasets.resolve_data_dir(args.data_dir))
    settings = JobSettings(
        budget=_budget(args, holdout=0.0),
        data_dir=data_dir,
        metrics=jobs.MAIN_METRICS,
        log_level=logging.getLogger("benchmark").level,
    )
    results = []
    runner.preload_for(names)
    started = runner.utc_now()
    for name in names:
        LOGGER.info("main: fitting %s on %s", name, args.dataset)
        result = runner.run_job(Job(args.dataset, name, jobs.NO_SCENARIO, args.seed), settings)
        runner.write_cached(args.output, result)
        results.append(result)

    text = report.main_leaderboard(results, settings.budget, janus_missing)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / f"{args.dataset}_seed{args.seed}.md").write_text(text)
    runner.write_environment(
        RunConfig([args.dataset], names, [args.seed], [jobs.NO_SCENARIO], args.output, settings),
        started,
        runner.utc_now(),
    )
    sys.stdout.write(text)
    return 0 if all(r.status == "ok" for r in results) else 1


def command_run(args) -> int:
    """Run a benchmark, then write its reports."""
    data_dir = str(datasets.resolve_data_dir(args.data_dir))
    scenario_file = args.scenario_file if Path(args.scenario_file).is_file() else None
    scenarios = _expand_scenarios(args.scenarios, args.scenario_file)
    if any(s != jobs.NO_SCENARIO for s in scenarios) and scenario_file is None:
        raise SystemExit(
            f"Scenario file {args.scenario_file} not found: run `python -m benchmark scenarios`."
        )

    settings = JobSettings(
        budget=_budget(args, holdout=args.holdout),
        data_dir=data_dir,
        scenario_file=str(Path(scenario_file).resolve()) if scenario_file else None,
        metrics=tuple(args.metrics),
        log_level=logging.getLogger("benchmark").level,
    )
    config = RunConfig(
        datasets=_expand_datasets(args.datasets, data_dir),
        synthesizers=_available_synthesizers(args.synthesizers),
        seeds=list(args.seeds),
        scenarios=scenarios,
        output_dir=args.output,
        settings=settings,
    )
    return _run_and_report(config, args.force, args.no_report, args.workers)


def _run_and_report(config: RunConfig, force: bool, no_report: bool, workers: int) -> int:
    from benchmark import report

    results = runner.run(config, force=force, workers=workers)
    if not no_report:
        for path in report.write_reports(config.output_dir):
            LOGGER.info("Wrote %s", path)
    failed = sum(r.status != "ok" for r in results)
    LOGGER.info("%d jobs, %d failed or timed out", len(results), failed)
    return 0


def command_resume(args) -> int:
    """Continue a saved run."""
    config = RunConfig.load(args.output)
    config.output_dir = args.output
    return _run_and_report(config, False, args.no_report, args.workers)


def command_report(args) -> int:
    """Write the reports of an output folder."""
    from benchmark import report

    for path in report.write_reports(args.output):
        sys.stdout.write(f"{path}\n")
    return 0


def command_scenarios(args) -> int:
    """Generate the scenario file."""
    from benchmark import scenarios

    names = _expand_datasets(args.datasets, args.data_dir)
    path = scenarios.write_scenarios(
        names, args.out, args.data_dir, args.feasible, args.infeasible, args.seed
    )
    sys.stdout.write(f"{path}\n")
    return 0


def command_datasets(args) -> int:
    """List the datasets found and check that their natural constraints hold."""
    from benchmark import constraints as cons

    folder = datasets.resolve_data_dir(args.data_dir)
    sys.stdout.write(f"Data folder: {folder}\n")
    sys.stdout.write("| dataset | rows | cols | target | constraints | all hold | rare |\n")
    sys.stdout.write("|---|---|---|---|---|---|---|\n")
    for name in datasets.list_datasets(folder):
        dataset = datasets.load_dataset(name, folder)
        specs = dataset.constraints
        holds = all(cons.is_valid(dataset.data, s).all() for s in specs)
        rare = sum(len(v) for v in dataset.rare_categories().values())
        sys.stdout.write(
            f"| {name} | {len(dataset.data)} | {dataset.data.shape[1]} | "
            f"{dataset.spec.target} | {len(specs)} | {holds} | {rare} |\n"
        )
    return 0


def command_uncertainty(args) -> int:
    """Time the closed-form uncertainty against Monte Carlo at equal accuracy."""
    return uncertainty_speed.run_from_args(args, " ".join(["python -m benchmark", *sys.argv[1:]]))


COMMANDS = {
    "main": command_main,
    "run": command_run,
    "resume": command_resume,
    "report": command_report,
    "scenarios": command_scenarios,
    "datasets": command_datasets,
    "uncertainty": command_uncertainty,
    "constraints": constraint_speed.run_from_args,
    "large_output": large_output.run_from_args,
    "scale": scale.run_from_args,
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code.
    """
    args = build_parser().parse_args(argv)
    _configure_logging(args)
    try:
        return COMMANDS[args.command](args)
    except datasets.DataNotFoundError as error:
        LOGGER.error("%s", error)
        return 2
    except KeyboardInterrupt:
        LOGGER.error("Interrupted. Finished jobs are cached: `python -m benchmark resume`.")
        return 130
