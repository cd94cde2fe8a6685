"""The benchmark's dataset registry, constraint checker and metrics, run in-process."""

import numpy as np
import pandas as pd
import pytest

from benchmark import constraints as cons
from benchmark import datasets, metrics

EXPECTED_KEYS = {"student_placements": "student_id", "cardio": "id", "credit_default": "ID"}


def _frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 50, rows).astype(float)
    return pd.DataFrame(
        {
            "low": low,
            "high": low + rng.integers(0, 30, rows),
            "extra": rng.normal(100, 10, rows),
            "city": rng.choice(["Paris", "Lyon", "Nice"], rows),
            "plan": rng.choice(["basic", "pro"], rows),
            "day": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 60, rows), "D"),
        }
    )


def test_missing_data_folder_error_lists_every_place(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "from-env"))
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path / "repo" / "main")
    (tmp_path / "cwd" / "here").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "here")
    with pytest.raises(datasets.DataNotFoundError) as info:
        datasets.resolve_data_dir()

    message = str(info.value)
    assert str(tmp_path / "from-env") in message
    assert str(tmp_path / "cwd" / "shared" / "datasets") in message
    assert str(tmp_path / "repo" / "shared" / "datasets") in message
    assert "--data-dir" in message and datasets.ENV_VAR in message


def test_explicit_data_dir_must_exist(tmp_path):
    with pytest.raises(datasets.DataNotFoundError, match="--data-dir") as info:
        datasets.resolve_data_dir(tmp_path / "nope")
    assert "repository root" not in str(info.value)  # no silent fallback elsewhere


def test_env_var_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path.resolve()


def test_user_csv_loads_with_detected_metadata(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "mine.csv", index=False)
    dataset = datasets.load_dataset("mine", tmp_path)

    assert dataset.data.shape == frame.shape
    assert dataset.sdtypes["city"] == "categorical"  # not turned into a Faker PII column
    assert dataset.sdtypes["day"] == "datetime"
    assert pd.api.types.is_datetime64_any_dtype(dataset.data["day"])
    assert datasets.list_datasets(tmp_path) == ["mine"]
    with pytest.raises(datasets.DataNotFoundError, match="mine"):
        datasets.load_dataset("other", tmp_path)


@pytest.mark.parametrize("name", datasets.DATASET_NAMES)
def test_registered_dataset_metadata_and_constraints(name, data_dir):
    dataset = datasets.load_dataset(name, data_dir)
    table = dataset.metadata.tables[name]

    assert table.primary_key == EXPECTED_KEYS.get(name)
    assert not [c for c, info in table.columns.items() if info.get("pii")]
    assert dataset.spec.target in dataset.data.columns
    for spec in dataset.constraints:
        share = cons.is_valid(dataset.data, spec).mean()
        assert share == 1.0, f"{cons.describe(spec)} holds on {share:.4%} of rows"


def test_checker_semantics():
    data = pd.DataFrame(
        {
            "a": [1.0, 2.0, 5.0, np.nan],
            "b": [2.0, 2.0, 4.0, 1.0],
            "c": [0.0, 1.0, 1.0, 1.0],
            "k": ["x", "y", "x", "y"],
        }
    )
    check = lambda spec: cons.is_valid(data, spec).tolist()  # noqa: E731

    assert check({"kind": "inequality", "low": "a", "high": "b"}) == [True, True, False, True]
    assert check({"kind": "inequality", "low": "a", "high": "b", "strict": True})[1] is False
    linear = {"kind": "linear", "coefficients": {"a": 1, "b": 1, "c": -1}, "constant": -3}
    assert check(linear) == [True, True, True, True]
    linear["constant"] = -4
    assert check(linear) == [False, False, True, True]
    assert check({"kind": "bounds", "column": "b", "low": 2, "high": None}) == [
        True, True, True, False
    ]  # fmt: skip
    rule = {"kind": "implication", "if": [{"column": "k", "op": "==", "value": "x"}],
            "then": [{"column": "c", "op": ">", "value": 0}]}  # fmt: skip
    assert check(rule) == [False, True, True, True]
    combos = cons.fit_specs(data.iloc[:2], [{"kind": "fixed_combinations", "columns": ["k", "c"]}])
    assert check(combos[0]) == [True, True, False, True]


def test_reject_constraint_keeps_sdv_output_valid():
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer

    data = _frame(300)
    metadata = Metadata.detect_from_dataframes({"t": data})
    sdtypes = {c: i["sdtype"] for c, i in metadata.tables["t"].columns.items()}
    specs = [
        {"kind": "inequality", "low": "low", "high": "high"},
        {"kind": "linear", "coefficients": {"low": 1.0, "high": 1.0, "extra": -0.5},
         "constant": 60.0},
        {"kind": "bounds", "column": "extra", "low": 80, "high": 120},
    ]  # fmt: skip
    specs = [s for s in specs if cons.is_valid(data, s).all()]
    objects = [cons.to_sdv(s, "t", sdtypes) for s in specs]
    assert [isinstance(o, cons.RejectConstraint) for o in objects] == [False, True, True][
        : len(objects)
    ]

    synth = GaussianCopulaSynthesizer(metadata)
    synth.add_constraints(objects)
    synth.fit({"t": data})
    rows = synth.sample(200)["t"]
    assert len(rows) > 0
    assert cons.all_valid(rows, specs).all()


def test_tree_detection_scale():
    data = _frame(400)
    from sdv.metadata import Metadata

    metadata = Metadata.detect_from_dataframes({"t": data})
    other = _frame(400, seed=1)
    shifted = other.assign(extra=other["extra"] + 60)
    same = metrics.tree_detection(data, other, metadata, "t")
    apart = metrics.tree_detection(data, shifted, metadata, "t")
    assert same > 0.6 and apart < 0.1


def test_split_is_per_seed_and_disjoint():
    data = pd.DataFrame({"x": np.arange(100)})
    train, test = datasets.split(data, seed=1, holdout=0.2)
    again, _ = datasets.split(data, seed=1, holdout=0.2)
    other, _ = datasets.split(data, seed=2, holdout=0.2)

    assert len(train) == 80 and len(test) == 20
    assert not set(train.x) & set(test.x)
    assert train.equals(again) and not train.equals(other)
    capped, capped_test = datasets.split(data, seed=1, holdout=0.2, rows=40)
    assert len(capped) == 40 and len(capped_test) == 10


def test_rule_expressions_for_janus():
    sdtypes = {"a": "numerical", "b": "numerical", "k": "categorical", "d": "datetime"}
    linear = {"kind": "linear", "coefficients": {"a": 2, "b": -1}, "constant": 3.5}
    rule = {"kind": "implication", "if": [{"column": "k", "op": "==", "value": "x"}],
            "then": [{"column": "a", "op": ">", "value": 0}]}  # fmt: skip
    date_bound = {"kind": "bounds", "column": "d", "low": "1970-01-02", "high": None}

    assert cons.rule_expression(linear, sdtypes) == "2.0 * `a` + -1.0 * `b` + 3.5 >= 0"
    assert cons.rule_expression(rule, sdtypes) == "if `k` in ['x'] then `a` > 0.0"
    assert cons.rule_expression(date_bound, sdtypes) == "`d` >= 86400000000000.0"
    null_rule = {**rule, "then": [{"column": "a", "op": "isnull"}]}
    assert cons.rule_expression(null_rule, sdtypes) is None
