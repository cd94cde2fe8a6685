"""A model file that runs no code when read: JSON and numpy arrays, versioned, with a digest.

Layout of a file, in this order::

    magic        8 bytes   b"JANUSMDL"
    version      4 bytes   format version, unsigned little-endian
    index size   8 bytes   length of the index, unsigned little-endian
    index        JSON      {"manifest": [offset, size], "arrays": {name: [offset, size]}}
    payload      bytes     the manifest (UTF-8 JSON), then each array as a .npy file
    digest       32 bytes  SHA-256 of every byte before it

Reading checks the magic and the version first (a file from a newer format is refused with a
message saying so), then the digest over the whole file (any truncated, flipped or inserted
byte is refused), then parses JSON with :mod:`json` and arrays with ``numpy.load(...,
allow_pickle=False)``. Nothing is ever unpickled: an object array in a file is refused even when
its digest is right. The digest detects damage and naive edits; it is not a signature, and
someone who rewrites the file can recompute it, but what they write is still only data.

Values that JSON cannot hold exactly (non-finite or exact floats, numpy scalars, timestamps)
are written as tagged pairs, see :func:`encode_value`.
"""

import hashlib
import io
import json
import struct

import numpy as np
import pandas as pd

from sdv_janus.engine.encoding import CategoricalEncoder, ColumnCodec, ColumnSpec
from sdv_janus.engine.errors import ModelFileError
from sdv_janus.engine.rules import AllOf, AllowedTuples, AnyOf, InSet, Linear, Not
from sdv_janus.engine.trees import BayesianTree, TreeSettings

MAGIC = b"JANUSMDL"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_DIGEST_SIZE = 32

_NUMERIC_ARRAYS = (
    "knots_",
    "point_values_",
    "interval_starts_",
    "_point_states",
    "_interval_states",
    "counts_",
)
_NUMERIC_SCALARS = ("n_bins", "max_exact_values", "n_knots", "min_bin_count", "has_missing_")
_TREE_FIELDS = (
    "feature",
    "left",
    "right",
    "mask_offset",
    "go_left",
    "leaf_of_node",
    "leaf_counts",
    "prior",
)


# --------------------------------------------------------------------------- values


def encode_value(value):
    """A raw value as JSON, tagged by type so that reading gives back the same value.

    Parameters
    ----------
    value : None, bool, int, float, str, numpy scalar, pandas.Timestamp or numpy.datetime64

    Returns
    -------
    list
        ``[tag, payload]``; floats are written in hexadecimal, so exactly.
    """
    if value is None:
        return ["none", None]
    if isinstance(value, (bool, np.bool_)):
        return ["bool", bool(value)]
    if isinstance(value, (int, np.integer)):
        return ["int", int(value)]
    if isinstance(value, (float, np.floating)):
        return ["float", float(value).hex()]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, pd.Timestamp):
        return ["timestamp", value.isoformat()]
    if isinstance(value, np.datetime64):
        return ["datetime64", str(value)]

    raise ModelFileError(
        f"The value {value!r} of type {type(value).__name__} cannot be written to a model file; "
        "categories must be strings, numbers, booleans or timestamps."
    )


def decode_value(pair):
    """Inverse of :func:`encode_value`."""
    tag, payload = pair
    readers = {
        "none": lambda _: None,
        "bool": bool,
        "int": int,
        "float": float.fromhex,
        "str": str,
        "timestamp": pd.Timestamp,
        "datetime64": np.datetime64,
    }
    if tag not in readers:
        raise ModelFileError(f"Unknown value tag {tag!r} in the model file.")

    return readers[tag](payload)


# --------------------------------------------------------------------------- formulas


def encode_formula(formula):
    """An engine formula (:mod:`sdv_janus.engine.rules`) as plain JSON data."""
    if isinstance(formula, Linear):
        return {
            "kind": "linear",
            "coefficients": [
                [column, float(value).hex()] for column, value in formula.coefficients
            ],
            "constant": float(formula.constant).hex(),
            "strict": bool(formula.strict),
            "name": formula.name,
        }
    if isinstance(formula, InSet):
        return {
            "kind": "in_set",
            "column": formula.column,
            "values": [encode_value(value) for value in formula.values],
            "name": formula.name,
            "negated": bool(formula.negated),
        }
    if isinstance(formula, AllowedTuples):
        return {
            "kind": "allowed_tuples",
            "columns": list(formula.columns),
            "rows": [[encode_value(value) for value in row] for row in formula.rows],
            "name": formula.name,
        }
    if isinstance(formula, Not):
        return {"kind": "not", "item": encode_formula(formula.item)}

    kind = "all_of" if isinstance(formula, AllOf) else "any_of"
    return {"kind": kind, "items": [encode_formula(item) for item in formula.items]}


def decode_formula(data):
    """Inverse of :func:`encode_formula`."""
    kind = data["kind"]
    if kind == "linear":
        coefficients = tuple(
            (column, float.fromhex(value)) for column, value in data["coefficients"]
        )
        return Linear(coefficients, float.fromhex(data["constant"]), data["strict"], data["name"])
    if kind == "in_set":
        values = tuple(decode_value(value) for value in data["values"])
        return InSet(data["column"], values, data["name"], data["negated"])
    if kind == "allowed_tuples":
        rows = tuple(tuple(decode_value(value) for value in row) for row in data["rows"])
        return AllowedTuples(tuple(data["columns"]), rows, data["name"])
    if kind == "not":
        return Not(decode_formula(data["item"]))
    if kind in ("all_of", "any_of"):
        items = tuple(decode_formula(item) for item in data["items"])
        return AllOf(items) if kind == "all_of" else AnyOf(items)

    raise ModelFileError(f"Unknown formula kind {kind!r} in the model file.")


# --------------------------------------------------------------------------- model


def model_to_state(model):
    """Everything a fitted :class:`~sdv_janus.engine.JanusModel` needs to sample.

    Parameters
    ----------
    model : JanusModel
        A fitted model.

    Returns
    -------
    manifest : dict
        JSON-ready description (settings, column codecs, order, constraints).
    arrays : dict of str to numpy.ndarray
        Numeric arrays (bins, knots, counts, trees), none of dtype object.
    """
    arrays = {}
    codecs = [_codec_state(index, codec, arrays) for index, codec in enumerate(model.codecs_)]
    for index, tree in enumerate(model.trees_):
        for field in _TREE_FIELDS:
            arrays[f"tree{index}.{field}"] = np.asarray(getattr(tree, field))

    graph = model.user_graph
    manifest = {
        "settings": {
            "max_parents": model.max_parents,
            "structure_prior": model.structure_prior,
            "tree_settings": vars(model.tree_settings),
            "n_bins": model.n_bins,
            "max_exact_values": model.max_exact_values,
            "structure_groups": model.structure_groups,
            "candidates_per_row": model.candidates_per_row,
            "constraint_candidates": model.constraint_candidates,
        },
        "user_graph": None if graph is None else [list(graph.nodes), list(graph.edges)],
        "codecs": codecs,
        "order": [int(column) for column in model.order_],
        "rules_true_in_training": sorted(model.rules_true_in_training_),
        "constraints": [encode_formula(formula) for formula in model.constraints_],
    }
    return manifest, arrays


def _codec_state(index, codec, arrays):
    """One column codec as JSON, its arrays added to ``arrays``."""
    encoder = codec.encoder
    state = {
        "spec": vars(codec.spec),
        "decimal_places_": codec.decimal_places_,
        "datetime_unit_": codec.datetime_unit_,
    }
    if isinstance(encoder, CategoricalEncoder):
        state["categories_"] = [encode_value(value) for value in encoder.categories_]
        state["has_missing_"] = encoder.has_missing_
        arrays[f"codec{index}.counts_"] = encoder.counts_
        return state

    state["min_"], state["max_"] = float(encoder.min_).hex(), float(encoder.max_).hex()
    state.update({name: getattr(encoder, name) for name in _NUMERIC_SCALARS})
    for name in _NUMERIC_ARRAYS:
        arrays[f"codec{index}.{name}"] = getattr(encoder, name)

    return state


def model_from_state(manifest, arrays):
    """Rebuild a fitted :class:`~sdv_janus.engine.JanusModel` from :func:`model_to_state`.

    Parameters
    ----------
    manifest : dict
        The JSON part.
    arrays : dict of str to numpy.ndarray
        The arrays.

    Returns
    -------
    JanusModel
        A model that samples exactly as the one written, given the same seed.
    """
    import networkx as nx

    from sdv_janus.engine.model import JanusModel, _graph_of_trees
    from sdv_janus.engine.sampling import StateSampler

    settings = dict(manifest["settings"])
    tree_settings = TreeSettings(**settings.pop("tree_settings"))
    graph = None
    if manifest["user_graph"] is not None:
        graph = nx.DiGraph()
        graph.add_nodes_from(manifest["user_graph"][0])
        graph.add_edges_from(tuple(edge) for edge in manifest["user_graph"][1])

    model = JanusModel(graph=graph, **settings)
    model.tree_settings = tree_settings
    model.codecs_ = [
        _codec_from_state(index, state, arrays, model)
        for index, state in enumerate(manifest["codecs"])
    ]
    model.n_states_ = [codec.n_states for codec in model.codecs_]
    model.ordered_ = [codec.encoder.ordered for codec in model.codecs_]
    model.constraints_ = [decode_formula(formula) for formula in manifest["constraints"]]
    model.order_ = list(manifest["order"])
    model.rules_true_in_training_ = frozenset(manifest.get("rules_true_in_training", ()))
    model.trees_ = [
        BayesianTree(**{field: arrays[f"tree{index}.{field}"] for field in _TREE_FIELDS})
        for index in range(len(model.codecs_))
    ]
    model.graph_ = _graph_of_trees(model.trees_)
    model.sampler_ = StateSampler(
        model.trees_, model.graph_, model.candidates_per_row, order=model.order_
    )
    model._constrained_sampler = model._build_constrained_sampler(model.constraints_)
    return model


def _codec_from_state(index, state, arrays, model):
    """One column codec from its JSON state and arrays."""
    codec = ColumnCodec(ColumnSpec(**state["spec"]), model.n_bins, model.max_exact_values)
    codec.decimal_places_ = state["decimal_places_"]
    codec.datetime_unit_ = state["datetime_unit_"]
    encoder = codec.encoder
    if isinstance(encoder, CategoricalEncoder):
        categories = [decode_value(value) for value in state["categories_"]]
        encoder.categories_ = np.array(categories + [None], dtype=object)[:-1]
        encoder.has_missing_ = state["has_missing_"]
        encoder.counts_ = arrays[f"codec{index}.counts_"]
        return codec

    encoder.min_, encoder.max_ = float.fromhex(state["min_"]), float.fromhex(state["max_"])
    for name in _NUMERIC_SCALARS:
        setattr(encoder, name, state[name])
    for name in _NUMERIC_ARRAYS:
        setattr(encoder, name, arrays[f"codec{index}.{name}"])

    return codec


# --------------------------------------------------------------------------- file


def write_model_file(path, manifest, arrays):
    """Write a manifest and arrays to ``path`` in the format above.

    Parameters
    ----------
    path : path-like
        The file to write (replaced if it exists).
    manifest : dict
        JSON-ready data.
    arrays : dict of str to numpy.ndarray
        Arrays of numeric or boolean dtype.
    """
    blobs = [("manifest", json.dumps(manifest, allow_nan=False).encode("utf-8"))]
    for name, array in arrays.items():
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        blobs.append((name, buffer.getvalue()))

    index, offset = {"arrays": {}}, 0
    for name, blob in blobs:
        place = [offset, len(blob)]
        if name == "manifest":
            index["manifest"] = place
        else:
            index["arrays"][name] = place
        offset += len(blob)

    index_bytes = json.dumps(index).encode("utf-8")
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(index_bytes)) + index_bytes
    body += b"".join(blob for _, blob in blobs)
    with open(path, "wb") as handle:
        handle.write(body + hashlib.sha256(body).digest())


def read_model_file(path):
    """Read a file written by :func:`write_model_file`, checking it before parsing anything.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    manifest : dict
    arrays : dict of str to numpy.ndarray

    Raises
    ------
    ModelFileError
        When the file is not a model file, is of a newer format version, is truncated or
        altered, or holds anything but plain numeric arrays.
    """
    with open(path, "rb") as handle:
        content = handle.read()

    body = _checked_body(path, content)
    try:
        index_size = _PREFIX.unpack_from(body)[2]
        start = _PREFIX.size + index_size
        index = json.loads(body[_PREFIX.size : start])
        payload = body[start:]
        offset, size = index["manifest"]
        manifest = json.loads(payload[offset : offset + size])
        arrays = {
            name: _load_array(payload[offset : offset + size])
            for name, (offset, size) in index["arrays"].items()
        }
    except (ValueError, KeyError, TypeError, struct.error) as error:
        raise ModelFileError(f"The model file {path} cannot be read: {error}") from error

    return manifest, arrays


def _checked_body(path, content):
    """The file without its digest, once magic, version and digest are checked."""
    if len(content) < _PREFIX.size + _DIGEST_SIZE or content[: len(MAGIC)] != MAGIC:
        raise ModelFileError(
            f"{path} is not a JANUS model file (or is truncated); write one with export_model."
        )

    version = _PREFIX.unpack_from(content)[1]
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written in model file format version {version}, newer than the "
            f"version {FORMAT_VERSION} this sdv-janus reads; upgrade sdv-janus to load it."
        )

    body, digest = content[:-_DIGEST_SIZE], content[-_DIGEST_SIZE:]
    if hashlib.sha256(body).digest() != digest:
        raise ModelFileError(
            f"{path} has been altered or truncated: its SHA-256 digest does not match its "
            "content. Export the model again from the fitted synthesizer."
        )

    return body


def _load_array(blob):
    """One .npy blob as an array; object arrays (pickles) are refused, never loaded."""
    array = np.load(io.BytesIO(blob), allow_pickle=False)
    if array.dtype.hasobject:
        raise ValueError("object arrays are not allowed")

    return array
