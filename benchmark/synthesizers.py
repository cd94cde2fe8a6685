"""The synthesizer registry.

Every entry builds an object with SDV's single-table API (``fit({name: df})``,
``sample(n) -> {name: df}``, ``add_constraints([...])``). Adding a synthesizer is one
function and one :func:`register` call::

    def _build_mine(metadata, budget):
        from my_package import MySynthesizer
        return MySynthesizer(metadata, epochs=budget.epochs or 300)

    register("Mine", _build_mine, "my model")

A synthesizer can also be named on the command line as ``package.module:factory``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from sdv.single_table.base import BaseSingleTableSynthesizer

LOGGER = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Per-job budgets, chosen on the command line.

    Attributes
    ----------
    rows : int or None
        Cap on training rows (None: all).
    epochs : int or None
        Epochs for neural models (None: their defaults).
    timeout : float
        Seconds allowed per job, fit, sample and metrics included.
    eval_rows : int
        Cap on the rows of each side given to the detection metrics.
    new_row_sample : int
        Synthetic rows checked by SDMetrics' NewRowSynthesis (it queries row by row).
    holdout : float
        Share of rows held out for evaluation (0: evaluate against the training rows).
    """

    rows: int | None = None
    epochs: int | None = None
    timeout: float = 3600.0
    eval_rows: int = 5000
    new_row_sample: int = 500
    holdout: float = 0.2


@dataclasses.dataclass(frozen=True)
class SynthesizerSpec:
    """A registry entry.

    Attributes
    ----------
    name : str
        Name used on the command line and in reports.
    build : callable
        ``build(metadata, budget)`` returns an unfitted synthesizer.
    description : str
        One line for ``--help`` and reports.
    hidden : bool
        Left out of ``all`` (test doubles).
    """

    name: str
    build: Callable
    description: str
    hidden: bool = False


REGISTRY: dict[str, SynthesizerSpec] = {}


def register(name: str, build: Callable, description: str, hidden: bool = False) -> None:
    """Add a synthesizer to the registry.

    Parameters
    ----------
    name : str
        Registry name.
    build : callable
        ``build(metadata, budget)`` returning an unfitted synthesizer with SDV's API.
    description : str
        One line describing it.
    hidden : bool, default False
        Leave it out of ``all``.
    """
    REGISTRY[name] = SynthesizerSpec(name, build, description, hidden)


def get(name: str) -> SynthesizerSpec:
    """Return the registry entry named ``name``, or import ``package.module:factory``.

    Parameters
    ----------
    name : str
        A registry name or a ``module:attribute`` path.

    Returns
    -------
    SynthesizerSpec
        The entry.

    Raises
    ------
    KeyError
        If the name is neither registered nor an importable path.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    if ":" in name:
        module, attribute = name.split(":", 1)
        build = getattr(importlib.import_module(module), attribute)
        return SynthesizerSpec(name, build, f"imported from {name}")

    known = ", ".join(visible_names())
    raise KeyError(f"Unknown synthesizer {name!r}. Known: {known}, or give module:factory.")


def visible_names() -> list[str]:
    """Return the names of the registered, non-hidden synthesizers."""
    return [name for name, spec in REGISTRY.items() if not spec.hidden]


def janus_import_error() -> str | None:
    """Return why ``sdv_janus.JanusSynthesizer`` cannot be imported, or None if it can."""
    try:
        from sdv_janus import JanusSynthesizer  # noqa: F401
    except Exception as error:  # any failure inside the package counts as unavailable
        return f"{type(error).__name__}: {error}"
    return None


def _build_janus(metadata, budget: Budget):
    from sdv_janus import JanusSynthesizer

    return JanusSynthesizer(metadata)


def _build_gaussian_copula(metadata, budget: Budget):
    from sdv.single_table import GaussianCopulaSynthesizer

    return GaussianCopulaSynthesizer(metadata)


def _build_ctgan(metadata, budget: Budget):
    from sdv.single_table import CTGANSynthesizer

    epochs = {} if budget.epochs is None else {"epochs": budget.epochs}
    return CTGANSynthesizer(metadata, enable_gpu=False, **epochs)


def _build_tvae(metadata, budget: Budget):
    from sdv.single_table import TVAESynthesizer

    epochs = {} if budget.epochs is None else {"epochs": budget.epochs}
    return TVAESynthesizer(metadata, enable_gpu=False, **epochs)


class _ColumnPool:
    """Draws every processed column independently from its training values."""

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns
        self.rng = np.random.default_rng()

    def set_random_state(self, seed):
        self.rng = np.random.default_rng(seed)

    def sample(self, num_rows: int, conditions: dict | None = None) -> pd.DataFrame:
        out = {name: self.rng.choice(values, num_rows) for name, values in self.columns.items()}
        for name, value in (conditions or {}).items():
            out[name] = np.full(num_rows, value)

        return pd.DataFrame(out)


class IndependentSynthesizer(BaseSingleTableSynthesizer):
    """Baseline: each column drawn independently from its training values (a floor).

    It uses SDV's preprocessing, so missing values, keys, dtypes and constraints are handled
    as for SDV's own synthesizers; the model itself keeps no dependence between columns.
    """

    def _fit(self, processed_data):
        columns = {name: processed_data[name].to_numpy() for name in processed_data}
        self._model = _ColumnPool(columns)

    def _sample(self, num_rows, conditions=None):
        return self._model.sample(num_rows, conditions)


def _build_independent(metadata, budget: Budget):
    return IndependentSynthesizer(metadata)


class FailingSynthesizer(IndependentSynthesizer):
    """Test double whose fit always raises."""

    def _fit(self, processed_data):
        raise RuntimeError("FailingSynthesizer always fails (test double)")


class SleepingSynthesizer(IndependentSynthesizer):
    """Test double whose fit never finishes within any reasonable time limit."""

    def _fit(self, processed_data):
        time.sleep(3600)


register("JANUS", _build_janus, "sdv_janus.JanusSynthesizer (Bayesian network of trees)")
register("GaussianCopula", _build_gaussian_copula, "SDV GaussianCopulaSynthesizer")
register("CTGAN", _build_ctgan, "SDV CTGANSynthesizer (epochs from --epochs)")
register("TVAE", _build_tvae, "SDV TVAESynthesizer (epochs from --epochs)")
register("Independent", _build_independent, "independent columns (floor)")
register("Failing", lambda metadata, budget: FailingSynthesizer(metadata), "test", hidden=True)
register("Sleeping", lambda metadata, budget: SleepingSynthesizer(metadata), "test", hidden=True)
