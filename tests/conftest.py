"""Shared fixtures: the real datasets folder and small loaders."""

import os
from pathlib import Path

import pandas as pd
import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def find_data_dir():
    """The shared datasets folder: $JANUS_DATA_DIR, else ../shared/datasets beside the repo."""
    candidates = [os.environ.get("JANUS_DATA_DIR"), REPOSITORY.parent / "shared" / "datasets"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "adult" / "data.csv").exists():
            return Path(candidate)

    raise FileNotFoundError(
        f"The shared datasets were not found (looked in {candidates}); set JANUS_DATA_DIR."
    )


@pytest.fixture(scope="session")
def data_dir():
    return find_data_dir()


@pytest.fixture(scope="session")
def adult(data_dir):
    return pd.read_csv(data_dir / "adult" / "data.csv")
