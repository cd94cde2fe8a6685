"""export_model / import_model (issue 6): same samples, and damaged or hostile files refused."""

import hashlib
import io
import json
import struct
import warnings

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sdv.cag import FixedCombinations, Inequality
from sdv.metadata import Metadata
from sdv.sampling import Condition
from sdv.utils import load_synthesizer

from sdv_janus import JanusSynthesizer
from sdv_janus.constraints import Rule
from sdv_janus.engine import persistence
from sdv_janus.errors import JanusInputError, JanusNotFittedError, ModelFileError


def _table(rows=300):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.gamma(2.0, 50.0, rows).clip(0, 400).round(2),
            "plan": rng.choice(["basic", "pro", "team"], rows),
            "level": rng.choice(["x", "y"], rows),
            "low": rng.integers(0, 50, rows),
            "joined": pd.date_range("2021-01-01", periods=rows, freq="h", tz="Europe/Paris"),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "active": rng.choice([True, False], rows),
        }
    )
    frame["high"] = frame["low"] + rng.integers(0, 20, rows)
    frame.loc[::9, "amount"] = np.nan
    return frame


@pytest.fixture(scope="module")
def fitted():
    frame = _table()
    metadata = Metadata.detect_from_dataframes({"accounts": frame})
    synthesizer = JanusSynthesizer(metadata)
    synthesizer.add_constraints(
        [
            FixedCombinations(["plan", "level"]),
            Inequality("low", "high"),
            Rule("amount <= 400"),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesizer.fit({"accounts": frame})

    return synthesizer


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "accounts.janus"
    fitted.export_model(path)
    return path


def _sample(synthesizer, rows=150):
    synthesizer.reset_sampling()
    return synthesizer.sample(rows)["accounts"]


def test_import_samples_exactly_what_the_exported_synthesizer_samples(fitted, model_file):
    imported = JanusSynthesizer.import_model(model_file)
    expected = _sample(fitted)
    pd.testing.assert_frame_equal(_sample(imported), expected)
    assert expected["id"].is_unique
    assert (expected["low"] <= expected["high"]).all()
    assert [c.to_dict() for c in imported.get_constraints()] == [
        c.to_dict() for c in fitted.get_constraints()
    ]


def test_imported_conditional_sampling_matches(fitted, model_file):
    imported = JanusSynthesizer.import_model(model_file)
    conditions = [Condition({"plan": "pro"}, num_rows=40)]
    fitted.reset_sampling()
    expected = fitted.sample_from_conditions(conditions)["accounts"]
    imported.reset_sampling()
    pd.testing.assert_frame_equal(imported.sample_from_conditions(conditions)["accounts"], expected)
    assert (expected["plan"] == "pro").all()


def test_user_graph_and_int_column_labels_survive_export(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({0: rng.normal(size=200).round(1), 1: rng.choice(["a", "b"], 200)})
    metadata = Metadata.detect_from_dataframes({"t": frame})
    graph = nx.DiGraph([("1", "0")])
    synthesizer = JanusSynthesizer(metadata, graph=graph, n_bins=8)
    synthesizer.fit({"t": frame})
    synthesizer.export_model(tmp_path / "m.janus")
    imported = JanusSynthesizer.import_model(tmp_path / "m.janus")

    assert imported.get_parameters()["n_bins"] == 8
    assert list(imported.get_parameters()["graph"].edges) == [("1", "0")]
    assert list(imported.get_graph().edges) == list(synthesizer.get_graph().edges)
    pd.testing.assert_frame_equal(imported.sample(80)["t"], synthesizer.sample(80)["t"])


def test_truncated_file_is_refused(model_file, tmp_path):
    content = model_file.read_bytes()
    for size in (0, 10, len(content) // 2, len(content) - 1):
        damaged = tmp_path / f"cut{size}.janus"
        damaged.write_bytes(content[:size])
        with pytest.raises(ModelFileError, match="truncated"):
            JanusSynthesizer.import_model(damaged)


def test_any_flipped_byte_is_refused(model_file, tmp_path):
    content = model_file.read_bytes()
    positions = [0, 9, 15, 30, len(content) // 3, len(content) // 2, len(content) - 40, -1]
    for position in positions:
        altered = bytearray(content)
        altered[position] ^= 0x01
        damaged = tmp_path / "flipped.janus"
        damaged.write_bytes(bytes(altered))
        with pytest.raises(ModelFileError):
            JanusSynthesizer.import_model(damaged)


def _with_valid_digest(body):
    return body + hashlib.sha256(body).digest()


def test_newer_format_version_is_refused(model_file, tmp_path):
    body = bytearray(model_file.read_bytes()[:-32])
    struct.pack_into("<I", body, 8, persistence.FORMAT_VERSION + 1)
    newer = tmp_path / "newer.janus"
    newer.write_bytes(_with_valid_digest(bytes(body)))
    with pytest.raises(ModelFileError, match="newer"):
        JanusSynthesizer.import_model(newer)


class _CreatesMarker:
    """Unpickling this object would create a file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _file_with_pickled_array(marker):
    """A model file, digest and all, whose one array is an object array holding a pickle."""
    evil = np.empty(1, dtype=object)
    evil[0] = _CreatesMarker(marker)
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    manifest = json.dumps({"format": "sdv-janus-synthesizer"}).encode()
    blob = buffer.getvalue()
    index = json.dumps(
        {"manifest": [0, len(manifest)], "arrays": {"evil": [len(manifest), len(blob)]}}
    ).encode()
    header = struct.pack("<8sIQ", persistence.MAGIC, persistence.FORMAT_VERSION, len(index))
    return _with_valid_digest(header + index + manifest + blob)


def test_pickle_payload_is_refused_without_running(tmp_path):
    # Control: the payload does run code when numpy is allowed to unpickle it.
    control = tmp_path / "control.txt"
    evil = np.empty(1, dtype=object)
    evil[0] = _CreatesMarker(control)
    buffer = io.BytesIO()
    np.save(buffer, evil, allow_pickle=True)
    buffer.seek(0)
    np.load(buffer, allow_pickle=True)[0].close()
    assert control.exists()

    marker = tmp_path / "code_ran.txt"
    hostile = tmp_path / "hostile.janus"
    hostile.write_bytes(_file_with_pickled_array(marker))
    with pytest.raises(ModelFileError, match="cannot be read"):
        JanusSynthesizer.import_model(hostile)

    assert not marker.exists()


def test_a_pickle_file_is_not_a_model_file(fitted, tmp_path):
    path = tmp_path / "model.pkl"
    fitted.save(path)
    with pytest.raises(ModelFileError, match="not a JANUS model file"):
        JanusSynthesizer.import_model(path)

    # SDV's own save/load stays as it was.
    reloaded = load_synthesizer(str(path))
    pd.testing.assert_frame_equal(_sample(reloaded), _sample(fitted))


def test_export_needs_a_fitted_synthesizer(tmp_path):
    metadata = Metadata.detect_from_dataframes({"t": _table(20)[["amount", "plan"]]})
    with pytest.raises(JanusNotFittedError, match="fit"):
        JanusSynthesizer(metadata).export_model(tmp_path / "m.janus")


def test_programmable_constraints_cannot_be_exported(tmp_path):
    from sdv.cag.programmable_constraint import SingleTableProgrammableConstraint

    class NonNegative(SingleTableProgrammableConstraint):
        def fit(self, data, metadata):
            pass

        def get_updated_metadata(self, metadata):
            return metadata

        def transform(self, data):
            return data

        def reverse_transform(self, data):
            return data

        def is_valid(self, data):
            return data["amount"].fillna(0) >= 0

    frame = _table(60)[["amount", "plan"]]
    synthesizer = JanusSynthesizer(Metadata.detect_from_dataframes({"t": frame}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesizer.add_constraints([NonNegative()])
        synthesizer.fit({"t": frame})

    with pytest.raises(JanusInputError, match="NonNegative|Programmable"):
        synthesizer.export_model(tmp_path / "m.janus")
