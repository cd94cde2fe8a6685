"""Exporting a fitted JanusSynthesizer to a file that runs no code when imported.

``synthesizer.save(path)`` is SDV's cloudpickle: loading it runs whatever the file says, so it
must only be loaded from trusted sources. :meth:`JanusSynthesizer.export_model` writes the
format of :mod:`sdv_janus.engine.persistence` instead: JSON plus numpy arrays, versioned, with
a SHA-256 digest over every byte; importing parses data and never unpickles.

What is written: the engine model (codecs, trees and leaf counts, order, constraints as
formulas), the metadata (``Metadata.to_dict``), the parameters, the constraints as
``{'class_name', 'parameters'}`` dicts, and the facts SDV's data processor learned in fitting
(dtypes, min/max, rounding digits, datetime formats, key and Faker seeds), as JSON.

How importing rebuilds the SDV side: SDV's fitted data processor holds RDT transformer objects
that only pickle can store. Import therefore builds a new synthesizer from the metadata and
parameters, draws a few rows from the imported engine (they satisfy every constraint), and runs
SDV's ordinary ``fit`` on them with the engine fit replaced by the imported model. That creates
the processor, its transformers and the fitted constraints; the learned facts are then set back
to the exported values, and ``FixedCombinations`` gets back the training combinations from the
engine's formula. The imported synthesizer is in the state right after ``fit`` (or
``reset_sampling``), and samples exactly what the exported one sampled from that state.

Limits: ``ProgrammableConstraint`` objects are code and cannot be exported (use ``save``), and
only constraints of SDV's ``sdv.cag`` built-ins and of :mod:`sdv_janus.constraints` are known.
"""

import json
import logging
import warnings

import numpy as np
import pandas as pd
from sdv.cag import FixedCombinations, FixedIncrements, Inequality, OneHotEncoding, Range
from sdv.cag.programmable_constraint import ProgrammableConstraintHarness
from sdv.metadata import Metadata

from sdv_janus.constraints import Rule, ScalarInequality, ScalarRange
from sdv_janus.engine.persistence import (
    decode_value,
    encode_value,
    model_from_state,
    model_to_state,
    read_model_file,
    write_model_file,
)
from sdv_janus.engine.rules import AllowedTuples
from sdv_janus.errors import JanusInputError, JanusNotFittedError, ModelFileError

LOGGER = logging.getLogger(__name__)

FORMAT_NAME = "sdv-janus-synthesizer"
_SKELETON_ROWS = 8
_CONSTRAINT_CLASSES = {
    cls.__name__: cls
    for cls in (
        Inequality,
        Range,
        FixedCombinations,
        FixedIncrements,
        OneHotEncoding,
        Rule,
        ScalarRange,
        ScalarInequality,
    )
}


# --------------------------------------------------------------------------- export


def export_synthesizer(synthesizer, path):
    """Write a fitted synthesizer to ``path`` (see the module documentation).

    Parameters
    ----------
    synthesizer : JanusSynthesizer
        A fitted synthesizer.
    path : path-like
        The file to write.
    """
    if not synthesizer._fitted:
        raise JanusNotFittedError("Only a fitted synthesizer can be exported; call fit first.")

    programmable = [
        type(c).__name__
        for c in synthesizer._reject_sampling_constraints
        if isinstance(c, ProgrammableConstraintHarness)
    ]
    if programmable:
        raise JanusInputError(
            f"Programmable constraints ({programmable}) are code and cannot be exported; use "
            "save() for this synthesizer, and load it only from a source you trust."
        )

    engine, arrays = model_to_state(synthesizer._model)
    manifest = {
        "format": FORMAT_NAME,
        "table_name": synthesizer._table_name,
        "metadata": synthesizer._original_metadata.to_dict(),
        "parameters": _parameters_of(synthesizer),
        "constraints": [c.get_constraint_dict() for c in synthesizer._engine_constraints],
        "output": _output_of(synthesizer),
        "processor": _processor_facts(synthesizer._data_processor),
        "fitted_date": synthesizer._fitted_date,
        "engine": engine,
    }
    write_model_file(path, json.loads(json.dumps(manifest, default=_plain)), arrays)
    LOGGER.info("Exported the synthesizer to %s", path)


def _plain(value):
    """JSON fallback for numpy scalars and other simple values."""
    if isinstance(value, np.generic):
        return value.item()

    return str(value)


def _parameters_of(synthesizer):
    """Constructor arguments as JSON; the graph as node and edge lists."""
    parameters = synthesizer.get_parameters()
    graph = parameters.pop("graph")
    if graph is not None:
        parameters["graph"] = [list(graph.nodes), [list(edge) for edge in graph.edges]]

    return parameters


def _output_of(synthesizer):
    """Column labels (str or int) and dtypes of the output, and what the engine needs."""
    empty = synthesizer._empty_output
    return {
        "columns": [encode_value(label) for label in empty.columns],
        "dtypes": [str(dtype) for dtype in empty.dtypes],
        "bytes_per_row": synthesizer._bytes_per_row,
        "timezones": synthesizer._timezones,
    }


def _processor_facts(processor):
    """What SDV's data processor learned in fitting, as JSON (objects are left out)."""
    transformers = processor._hyper_transformer.field_transformers
    return {
        "dtypes": [[name, str(dtype)] for name, dtype in processor._dtypes.items()],
        "formatters": {name: _facts(f) for name, f in processor.formatters.items()},
        "transformers": {
            name: _facts(t) for name, t in transformers.items() if t is not None and name
        },
    }


def _facts(component):
    """The JSON-representable attributes of a fitted SDV or RDT component."""
    facts = {}
    for name, value in vars(component).items():
        encoded = _encode_fact(value)
        if encoded is not None:
            facts[name] = encoded

    return facts


def _encode_fact(value):
    """A fact as tagged JSON, or None when it is not plain data (a Faker, a random state)."""
    if isinstance(value, (np.dtype, pd.api.extensions.ExtensionDtype)):
        return ["dtype", str(value)]
    if isinstance(value, (list, tuple)):
        items = [_encode_fact(item) for item in value]
        return None if any(item is None for item in items) else ["list", items]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            return None
        items = {key: _encode_fact(item) for key, item in value.items()}
        return None if any(item is None for item in items.values()) else ["dict", items]
    try:
        return encode_value(value)
    except ModelFileError:
        return None


def _decode_fact(pair):
    """Inverse of :func:`_encode_fact`."""
    tag, payload = pair
    if tag == "dtype":
        return pd.api.types.pandas_dtype(payload)
    if tag == "list":
        return [_decode_fact(item) for item in payload]
    if tag == "dict":
        return {key: _decode_fact(item) for key, item in payload.items()}

    return decode_value(pair)


# --------------------------------------------------------------------------- import


def import_synthesizer(cls, path):
    """Rebuild a synthesizer written by :func:`export_synthesizer`.

    Parameters
    ----------
    cls : type
        :class:`~sdv_janus.synthesizer.JanusSynthesizer` (or a subclass).
    path : path-like
        The file.

    Returns
    -------
    JanusSynthesizer
        Fitted, in the state right after ``fit``.

    Raises
    ------
    ModelFileError
        When the file is not a model file, is of a newer format, or was altered or truncated.
    """
    manifest, arrays = read_model_file(path)
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path} holds {manifest.get('format')!r}, not a synthesizer.")

    try:
        model = model_from_state(manifest["engine"], arrays)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synthesizer = _new_synthesizer(cls, manifest)
            synthesizer._imported_model = model
            skeleton = _skeleton(model, manifest)
            synthesizer.fit({manifest["table_name"]: skeleton})
    except (KeyError, TypeError, IndexError) as error:
        raise ModelFileError(f"{path} is incomplete: {error!r} is missing or malformed.") from error

    _restore_learned_state(synthesizer, manifest, model)
    LOGGER.info("Imported a synthesizer from %s", path)
    return synthesizer


def _new_synthesizer(cls, manifest):
    """An unfitted synthesizer with the exported metadata, parameters and constraints."""
    import networkx as nx

    parameters = dict(manifest["parameters"])
    graph = parameters.pop("graph", None)
    if graph is not None:
        parameters["graph"] = nx.DiGraph()
        parameters["graph"].add_nodes_from(graph[0])
        parameters["graph"].add_edges_from(tuple(edge) for edge in graph[1])

    metadata = Metadata.load_from_dict(manifest["metadata"])
    synthesizer = cls(metadata, **parameters)
    constraints = []
    for constraint in manifest["constraints"]:
        known = _CONSTRAINT_CLASSES.get(constraint["class_name"])
        if known is None:
            raise ModelFileError(f"Unknown constraint class {constraint['class_name']!r}.")
        constraints.append(known(**constraint["parameters"]))

    if constraints:
        synthesizer.add_constraints(constraints)

    return synthesizer


def _skeleton(model, manifest):
    """A few rows with the training columns and dtypes; modelled columns drawn from the model.

    Drawn rows satisfy every constraint, so SDV's fit (which checks them) accepts the frame.
    """
    model.set_random_state(0)
    drawn = model.sample(_SKELETON_ROWS)
    output = manifest["output"]
    columns_metadata = manifest["metadata"]["tables"][manifest["table_name"]]["columns"]
    frame = {}
    for label, dtype in zip(output["columns"], output["dtypes"], strict=True):
        label = decode_value(label)
        name = str(label)
        column = columns_metadata.get(name, {})
        if name in drawn:
            values = _as_dtype(drawn[name], dtype, column, output["timezones"].get(name))
        else:
            values = _placeholder(dtype)
        frame[label] = values

    return pd.DataFrame(frame)


def _as_dtype(values, dtype, column, zone):
    """Engine draws of one column in the column's training dtype."""
    series = pd.Series(values)
    if column.get("sdtype") == "datetime":
        stamps = pd.to_datetime(series)
        if zone is not None:
            return stamps.dt.tz_localize("UTC").dt.tz_convert(zone)
        if dtype == "object":
            text_format = column.get("datetime_format") or "%Y-%m-%d %H:%M:%S"
            return stamps.dt.strftime(text_format).astype(object)
        return stamps.astype(dtype)

    if dtype.startswith(("int", "uint")) and series.notna().all():
        return series.astype(float).round().astype(dtype)

    return series.astype(dtype) if dtype != "object" else series.astype(object)


def _placeholder(dtype):
    """Distinct values of a dtype for a column the engine does not model (keys, PII)."""
    positions = np.arange(_SKELETON_ROWS)
    if dtype.startswith("datetime64"):
        return pd.Series(pd.date_range("2000-01-01", periods=_SKELETON_ROWS)).astype(dtype)
    if dtype == "bool":
        return positions % 2 == 0
    if dtype == "object" or dtype == "string":
        return pd.Series([f"placeholder{i}" for i in positions], dtype=dtype)

    return pd.Series(positions).astype(dtype)


def _restore_learned_state(synthesizer, manifest, model):
    """Set the learned facts back to the exported ones, then reset sampling."""
    processor = synthesizer._data_processor
    facts = manifest["processor"]
    processor._dtypes = pd.Series(
        {name: pd.api.types.pandas_dtype(dtype) for name, dtype in facts["dtypes"]}, dtype=object
    )
    for name, formatter in processor.formatters.items():
        _restore_facts(formatter, facts["formatters"].get(name, {}))
    for name, transformer in processor._hyper_transformer.field_transformers.items():
        if transformer is not None:
            _restore_facts(transformer, facts["transformers"].get(name, {}))

    output = manifest["output"]
    labels = [decode_value(label) for label in output["columns"]]
    dtypes = dict(zip(labels, output["dtypes"], strict=True))
    synthesizer._empty_output = pd.DataFrame(
        {label: pd.Series(dtype=dtype) for label, dtype in dtypes.items()}
    )
    _restore_combinations(synthesizer, model, {str(k): v for k, v in dtypes.items()})
    synthesizer._bytes_per_row = output["bytes_per_row"]
    synthesizer._timezones = output["timezones"]
    synthesizer._fitted_date = manifest["fitted_date"]
    synthesizer.reset_sampling()


def _restore_facts(component, facts):
    """Set each exported fact back on a freshly fitted component."""
    for name, pair in facts.items():
        setattr(component, name, _decode_fact(pair))


def _restore_combinations(synthesizer, model, dtypes):
    """FixedCombinations learn the training combinations; the engine's formula kept them."""
    tables = {f.columns: f.rows for f in model.constraints_ if isinstance(f, AllowedTuples)}
    metadata = synthesizer._original_metadata
    for constraint in synthesizer._reject_sampling_constraints:
        if not isinstance(constraint, FixedCombinations):
            continue

        columns = tuple(constraint.column_names)
        combinations = pd.DataFrame(list(tables[columns]), columns=list(columns))
        for name in columns:
            combinations[name] = combinations[name].astype(dtypes[name])

        constraint._fit({synthesizer._table_name: combinations}, metadata)
