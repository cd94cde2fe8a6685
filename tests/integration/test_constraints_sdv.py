"""Constraints attached through SDV's add_constraints hold on every returned row."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sdv.cag import FixedCombinations, FixedIncrements, Inequality, OneHotEncoding, Range
from sdv.cag._errors import ConstraintNotMetError
from sdv.cag.programmable_constraint import SingleTableProgrammableConstraint
from sdv.metadata import Metadata
from sdv.sampling import Condition

from sdv_janus import JanusSynthesizer
from sdv_janus.constraints import Rule, ScalarInequality, ScalarRange, holds
from sdv_janus.engine.feasibility import InfeasibleConstraintsError
from sdv_janus.errors import JanusWarning


@pytest.fixture(scope="module")
def offers():
    """An HR-style table: requested and offered salaries, dates, plans, one-hot flags."""
    rng = np.random.default_rng(0)
    n_rows = 1500
    requested = np.round(rng.lognormal(10.8, 0.3, n_rows), -2)
    offered = requested + np.round(rng.gamma(2.0, 2000.0, n_rows), -2)
    start = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n_rows), unit="D")
    end = start + pd.to_timedelta(rng.integers(0, 60, n_rows), unit="D")
    plan = rng.choice(["basic", "pro", "team"], n_rows, p=[0.5, 0.3, 0.2])
    seats = np.where(plan == "basic", rng.integers(1, 6, n_rows), rng.integers(1, 40, n_rows))
    channel = rng.integers(0, 3, n_rows)
    return pd.DataFrame(
        {
            "salary_requested": requested,
            "salary_offered": offered,
            "bonus": np.round(rng.uniform(0, 1, n_rows) * (offered - requested), 0),
            "checkin": start,
            "checkout": end,
            "plan": plan,
            "seats": seats,
            "level": np.where(plan == "team", "senior", rng.choice(["junior", "senior"], n_rows)),
            "quantity": rng.integers(1, 20, n_rows) * 5,
            "web": (channel == 0).astype(int),
            "phone": (channel == 1).astype(int),
            "store": (channel == 2).astype(int),
        }
    )


@pytest.fixture(scope="module")
def offers_metadata(offers):
    metadata = Metadata.detect_from_dataframes({"offers": offers})
    for column in ("web", "phone", "store", "seats", "quantity"):
        metadata.update_column(column, sdtype="numerical", table_name="offers")

    return metadata


ALL_RULES = [
    Inequality("salary_requested", "salary_offered"),
    Range("bonus", "salary_requested", "salary_offered", strict_boundaries=False),
    Inequality("checkin", "checkout"),
    FixedCombinations(["plan", "level"]),
    FixedIncrements("quantity", 5),
    OneHotEncoding(["web", "phone", "store"]),
    Rule("if plan == 'basic' then seats <= 5"),
    ScalarRange("seats", 1, 39),
    ScalarInequality("salary_offered", ">=", 1000),
    Rule("salary_offered - salary_requested - bonus >= 0"),
]


@pytest.fixture(scope="module")
def constrained(offers, offers_metadata):
    synthesizer = JanusSynthesizer(offers_metadata)
    synthesizer.add_constraints(list(ALL_RULES))
    synthesizer.fit({"offers": offers})
    return synthesizer


def check_all(frame):
    """Validity of every rule on the rounded, formatted output, by independent checks."""
    checks = {
        "inequality": frame["salary_offered"] >= frame["salary_requested"],
        "range": (frame["bonus"] <= frame["salary_requested"])
        & (frame["salary_requested"] <= frame["salary_offered"]),
        "dates": frame["checkin"] <= frame["checkout"],
        "increments": frame["quantity"] % 5 == 0,
        "one hot": frame[["web", "phone", "store"]].sum(axis=1) == 1,
        "implication": (frame["plan"] != "basic") | (frame["seats"] <= 5),
        "scalar range": frame["seats"].between(1, 39),
        "scalar": frame["salary_offered"] >= 1000,
        "linear": frame["salary_offered"] - frame["salary_requested"] - frame["bonus"] >= 0,
    }
    return {name: float(valid.mean()) for name, valid in checks.items()}


def test_every_rule_holds_on_every_row_with_nothing_rejected(constrained, offers):
    before = constrained.engine_rows_drawn
    synthetic = constrained.sample(4000)["offers"]
    assert len(synthetic) == 4000
    assert constrained.engine_rows_drawn - before == 4000
    assert set(check_all(synthetic).values()) == {1.0}
    assert synthetic.dtypes.to_dict() == offers.dtypes.to_dict()
    combinations = set(map(tuple, offers[["plan", "level"]].drop_duplicates().to_numpy()))
    assert set(map(tuple, synthetic[["plan", "level"]].to_numpy())) <= combinations
    for constraint in ALL_RULES:
        assert constraint.is_valid(synthetic).all(), constraint


def test_conditions_combine_with_constraints(constrained):
    conditions = [Condition({"plan": "basic", "salary_requested": 50000.0}, num_rows=300)]
    synthetic = constrained.sample_from_conditions(conditions, max_tries_per_batch=1)["offers"]
    assert len(synthetic) == 300
    assert (synthetic["plan"] == "basic").all()
    assert (synthetic["salary_requested"] == 50000.0).all()
    assert set(check_all(synthetic).values()) == {1.0}
    assert (synthetic["seats"] <= 5).all()


def test_range_condition(constrained):
    synthetic = constrained.sample_with_rules(
        400, [Rule("60000 <= salary_offered <= 70000")], conditions={"level": "senior"}
    )["offers"]
    assert len(synthetic) == 400
    assert synthetic["salary_offered"].between(60000, 70000).all()
    assert (synthetic["level"] == "senior").all()
    assert set(check_all(synthetic).values()) == {1.0}


def test_infeasible_rules_are_refused_before_fit_naming_them(offers_metadata):
    synthesizer = JanusSynthesizer(offers_metadata)
    rules = [
        Inequality("salary_requested", "salary_offered"),
        Inequality("salary_offered", "bonus"),
        Rule("bonus < salary_requested"),
    ]
    with pytest.raises(InfeasibleConstraintsError) as raised:
        synthesizer.add_constraints(rules)

    message = str(raised.value)
    assert "bonus < salary_requested" in message
    assert "Inequality" in message
    assert synthesizer.get_constraints() == []


def test_infeasible_condition_is_refused_before_sampling(constrained):
    with pytest.raises(Exception) as raised:
        constrained.sample_with_rules(10, [Rule("salary_offered <= 1")])

    error = raised.value.__cause__ or raised.value
    assert isinstance(error, InfeasibleConstraintsError)
    assert "salary_offered <= 1" in str(error)


def test_training_data_that_breaks_a_rule_gets_sdvs_error(offers, offers_metadata):
    synthesizer = JanusSynthesizer(offers_metadata)
    synthesizer.add_constraints([Rule("seats <= 5")])
    with pytest.raises(ConstraintNotMetError, match="seats <= 5"):
        synthesizer.fit({"offers": offers})


def test_programmable_constraint_warns_it_is_outside_the_guarantee(offers, offers_metadata):
    class EvenSeats(SingleTableProgrammableConstraint):
        def is_valid(self, data):
            return data["seats"] % 2 == 0

    synthesizer = JanusSynthesizer(offers_metadata)
    with pytest.warns(JanusWarning, match="outside the no-rejection guarantee"):
        synthesizer.add_constraints([EvenSeats()])


def test_rule_parser_rejects_non_linear_rules_naming_them():
    with pytest.raises(ValueError, match="a \\* b"):
        Rule("a * b >= 3")


def test_holds_treats_nulls_as_vacuous():
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [2.0, 1.0, 1.0]})
    assert holds(Rule("a <= b").formula, frame).tolist() == [True, True, False]


def test_constraints_survive_save_and_load(constrained, tmp_path):
    from sdv.utils import load_synthesizer

    constrained.save(tmp_path / "model.pkl")
    loaded = load_synthesizer(str(tmp_path / "model.pkl"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthetic = loaded.sample(500)["offers"]

    assert set(check_all(synthetic).values()) == {1.0}


def test_sampled_uncertainty_describes_the_truncated_distribution(constrained):
    sampled = constrained.sample_with_uncertainty(2000, by_column=True)["offers"]
    assert set(check_all(sampled).values()) == {1.0}
    untruncated = constrained.get_uncertainty(sampled, by_column=True)
    basic = sampled["plan"] == "basic"
    # Basic plans allow at most 5 seats: the cut removes states, so less is left to doubt.
    truncated_seats = sampled.loc[basic, "seats__total"]
    assert (truncated_seats <= untruncated.loc[basic, "seats__total"] + 1e-9).all()
    assert truncated_seats.mean() < untruncated.loc[basic, "seats__total"].mean()
    assert (sampled["epistemic"] >= 0).all()
