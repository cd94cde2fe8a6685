"""sample(..., output_folder_path=...) streams rows to a CSV file in batches (issue 6)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

from sdv_janus import JanusSynthesizer


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    rows = 400
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "price": rng.gamma(2.0, 100.0, rows).round(2),
            "kind": rng.choice(["flat", "house", "studio"], rows),
            "sold": pd.date_range("2022-01-01", periods=rows, freq="D"),
        }
    )
    synthesizer = JanusSynthesizer(Metadata.detect_from_dataframes({"homes": frame}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesizer.fit({"homes": frame})

    return synthesizer, frame


def test_rows_are_written_in_batches_exactly(fitted, tmp_path):
    synthesizer, frame = fitted
    result = synthesizer.sample(30_000, batch_size=10_000, output_folder_path=tmp_path)

    path = result["homes"]
    assert path == str(tmp_path / "homes.csv")
    written = pd.read_csv(path, parse_dates=["sold"])
    assert len(written) == 30_000
    assert list(written.columns) == list(frame.columns)
    assert written["id"].is_unique  # keys stay unique across batches
    assert set(written["kind"]) == {"flat", "house", "studio"}
    assert written["price"].between(frame["price"].min(), frame["price"].max()).all()


def test_file_matches_in_memory_sampling(fitted, tmp_path):
    synthesizer, _ = fitted
    synthesizer.reset_sampling()
    path = synthesizer.sample(600, batch_size=200, output_folder_path=tmp_path)["homes"]
    synthesizer.reset_sampling()
    in_memory = synthesizer.sample(600, batch_size=200)["homes"]

    written = pd.read_csv(path, parse_dates=["sold"])
    pd.testing.assert_frame_equal(written, in_memory, check_dtype=False)


def test_zero_rows_write_the_header(fitted, tmp_path):
    synthesizer, frame = fitted
    path = synthesizer.sample(0, output_folder_path=tmp_path)["homes"]
    assert list(pd.read_csv(path).columns) == list(frame.columns)
    assert len(pd.read_csv(path)) == 0


def test_an_existing_file_is_not_overwritten(fitted, tmp_path):
    synthesizer, _ = fitted
    (tmp_path / "homes.csv").write_text("keep me")
    with pytest.raises(AssertionError, match="already exist"):
        synthesizer.sample(10, output_folder_path=tmp_path)

    assert (tmp_path / "homes.csv").read_text() == "keep me"
