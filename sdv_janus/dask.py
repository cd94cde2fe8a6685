"""JANUS past one machine: fitting over the partitions of a Dask DataFrame, sampling to Parquet.

The fit reads the table only through counts that add up across rows (see
:mod:`sdv_janus.engine.counts`): each partition computes its value tallies, family tables and
split tables, and the sums are what the in-memory fit would have counted on the whole table. The
model fitted here is therefore the model :meth:`JanusSynthesizer.fit` learns from the same rows:
the same bins and categories, the same graph, the same trees and leaf counts.

What comes from where:

- from every partition (on the workers): the engine's statistics, hence the whole model, and the
  tuples a ``FixedCombinations`` constraint allows;
- from a *bookkeeping sample* (on the client: the first rows plus, for each numerical or datetime
  column, the rows holding its smallest and largest value): SDV's own bookkeeping, namely
  checking the rows against the metadata and the constraints, and fitting SDV's data processor,
  which later rounds, clips (to the true minimum and maximum, thanks to the extreme rows),
  restores dtypes and generates keys and PII columns.

Sampling draws partitions in parallel, each from its own seed stream
(``numpy.random.SeedSequence(seed).spawn(n_partitions)``), into one Parquet file per partition;
the same seed writes the same files. Keys stay unique across files: integer primary keys are
the row's position over all partitions, and keys drawn from a regular expression continue from
one partition to the next.

Dask is an optional dependency (``pip install sdv-janus[dask]``); the computations run on the
current Dask scheduler, a ``distributed.Client`` when one is active.
"""

import copy
import itertools
import logging
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from sdv_janus.engine.counts import (
    FamilyTable,
    compute_family_tables,
    compute_split_tables,
    map_states,
    search_in_batches,
)
from sdv_janus.engine.model import (
    distinct_rows,
    fill_training_rows,
    holds_on_every_row,
    rule_columns,
)

LOGGER = logging.getLogger(__name__)

_PART_NAME = "part-{:05d}.parquet"


class DaskCounts:
    """The counts source over encoded partitions held by a Dask scheduler.

    Parameters
    ----------
    parts : list of dask.delayed.Delayed
        One encoded partition each: int ``(n_rows_i, n_columns)`` arrays, already persisted.
    n_rows : int
        Rows over all partitions.
    """

    def __init__(self, parts, n_rows):
        self.parts, self.n_rows = parts, n_rows

    @classmethod
    def from_frame(cls, frame, model):
        """Encode every partition of a Dask DataFrame with a model's fitted codecs."""
        encode = dask.delayed(_encode_partition, pure=True)
        parts = dask.persist(*[encode(part, model) for part in frame.to_delayed()])
        sizes = dask.compute(*[dask.delayed(len)(part) for part in parts])
        return cls(list(parts), int(sum(sizes)))

    def family_tables(self, families, sizes):
        """Family tables summed over the partitions (see ``compute_family_tables``)."""
        count = dask.delayed(compute_family_tables, pure=True)
        per_part = [count(part, families, list(sizes)) for part in self.parts]
        return dask.compute(dask.delayed(_merge_family_tables)(per_part))[0]

    def split_tables(self, request):
        """Split tables summed over the partitions (see ``compute_split_tables``)."""
        count = dask.delayed(compute_split_tables, pure=True)
        per_part = [count(part, request) for part in self.parts]
        return dask.compute(dask.delayed(_sum_tables)(per_part))[0]

    def best_splits(self, request, search):
        """Best splits of the open nodes from summed split tables, in bounded batches."""
        return search_in_batches(self.split_tables, request, search)

    def mapped(self, state_maps):
        """The source over partitions with relabelled states (see ``map_states``)."""
        relabel = dask.delayed(map_states, pure=True)
        parts = dask.persist(*[relabel(part, state_maps) for part in self.parts])
        return DaskCounts(list(parts), self.n_rows)


def fit_model(model, frame, specs, constraints=()):
    """Fit a :class:`~sdv_janus.engine.JanusModel` on a Dask DataFrame of raw columns.

    Parameters
    ----------
    model : JanusModel
        An unfitted model.
    frame : dask.dataframe.DataFrame
        Raw values of every column named in ``specs``.
    specs : sequence of ColumnSpec
        One spec per column to model.
    constraints : sequence, default=()
        Engine formulas every sampled row must satisfy.

    Returns
    -------
    JanusModel
        The fitted model, equal to ``model.fit`` on the concatenated partitions.
    """
    codecs = model.new_codecs(specs)
    tally = dask.delayed(_partition_tallies, pure=True)
    per_part = [tally(part, codecs) for part in frame.to_delayed()]
    tallies = dask.compute(dask.delayed(_merge_tallies)(per_part))[0]
    model.fit_codecs(codecs, tallies)
    LOGGER.info("Learned the states of %d columns over %d partitions", len(specs), len(per_part))

    rules = fill_training_rows(constraints, lambda names: _distinct_dask_rows(frame, names))
    return model.fit_counts(
        DaskCounts.from_frame(frame, model),
        rules,
        lambda formula: _holds_on_every_dask_row(frame, formula, model),
    )


def fit_dask(synthesizer, data, bookkeeping_rows=10_000):
    """Fit a JanusSynthesizer on a Dask DataFrame, with counts from every partition.

    Parameters
    ----------
    synthesizer : JanusSynthesizer
        The synthesizer to fit; its metadata describes ``data``'s single table.
    data : dask.dataframe.DataFrame
        The table, in as many partitions as wanted.
    bookkeeping_rows : int, default=10_000
        Rows of the bookkeeping sample (first rows) on which SDV validates the data and fits its
        data processor; the extreme rows of every numerical and datetime column are added.

    Returns
    -------
    JanusSynthesizer
        The fitted synthesizer, whose model equals the in-memory fit on the same rows.
    """
    table_name = synthesizer.metadata._get_single_table_name()
    sample = _bookkeeping_sample(data, synthesizer, table_name, bookkeeping_rows)
    synthesizer._prepare_refit()
    processed_sample = synthesizer.preprocess({table_name: sample})[table_name]
    processor = synthesizer._data_processor
    processed = data.map_partitions(processor.transform, meta=processed_sample.iloc[:0])
    specs = synthesizer._column_specs(processed_sample)
    model = fit_model(synthesizer._new_model(), processed, specs, synthesizer._engine_formulas())
    synthesizer._remember_timezones(processed_sample)
    synthesizer._adopt_model(model)
    return synthesizer


def sample_to_parquet(synthesizer, num_rows, path, n_partitions=None, seed=0):
    """Sample rows in parallel partitions and write one Parquet file per partition.

    Parameters
    ----------
    synthesizer : JanusSynthesizer
        A fitted synthesizer.
    num_rows : int
        Rows over all partitions.
    path : str or pathlib.Path
        Folder that receives ``part-00000.parquet``, ``part-00001.parquet``, ...
    n_partitions : int, optional
        Number of partitions (files); by default one per million rows.
    seed : int, default=0
        Root of the seed streams: partition ``i`` draws from
        ``numpy.random.SeedSequence(seed).spawn(n_partitions)[i]``.

    Returns
    -------
    list of pathlib.Path
        The files written, in partition order.
    """
    n_partitions = n_partitions or max(1, -(-num_rows // 1_000_000))
    sizes = [len(part) for part in np.array_split(np.arange(num_rows), n_partitions)]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    streams = np.random.SeedSequence(seed).spawn(n_partitions)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    shared = dask.delayed(synthesizer, pure=False)
    draw = dask.delayed(_sample_partition, pure=True)
    files = [
        draw(shared, size, offset, stream, str(folder / _PART_NAME.format(index)))
        for index, (size, offset, stream) in enumerate(zip(sizes, offsets, streams, strict=True))
    ]
    written = dask.compute(*files)
    LOGGER.info("Wrote %d rows in %d Parquet files to %s", num_rows, n_partitions, folder)
    return [Path(file) for file in written]


def _sample_partition(synthesizer, num_rows, key_offset, stream, path):
    """Draw one partition from its own seed stream and write it to ``path``."""
    # Partitions may run as threads of one process: each draws from its own copy.
    synthesizer = copy.deepcopy(synthesizer)
    synthesizer.reset_sampling()
    synthesizer._set_random_state(np.random.default_rng(stream))
    _skip_keys(synthesizer, key_offset)
    (table,) = synthesizer.sample(num_rows).values()
    _number_keys(synthesizer, table, key_offset)
    table.to_parquet(path, index=False)
    return path


def _skip_keys(synthesizer, n_keys):
    """Advance SDV's key generators by ``n_keys`` values, as if earlier partitions had run."""
    transformers = synthesizer._data_processor._hyper_transformer.field_transformers
    for name in synthesizer._data_processor._keys:
        transformer = transformers.get(name)
        if n_keys and getattr(transformer, "generator", None) is not None:
            # The generator walks the key space in order; consuming keys is all that skipping is.
            next(itertools.islice(transformer.generator, n_keys, n_keys), None)
            transformer.generated += n_keys


def _number_keys(synthesizer, table, key_offset):
    """Give integer keys the row's position over all partitions, so files never share keys.

    SDV draws integer keys at random from a bounded range, which cannot stay unique across
    independently seeded partitions (nor beyond 2**24 rows).
    """
    for name in synthesizer._data_processor._keys:
        if name in table.columns and pd.api.types.is_integer_dtype(table[name]):
            positions = np.arange(key_offset, key_offset + len(table))
            table[name] = positions.astype(table[name].dtype)


def _bookkeeping_sample(data, synthesizer, table_name, n_rows):
    """First rows plus the rows holding each numerical and datetime column's extremes."""
    columns = synthesizer.metadata.tables[table_name].columns
    ranged = {
        name: info["sdtype"]
        for name, info in columns.items()
        if info.get("sdtype") in ("numerical", "datetime") and name in data.columns
    }
    head = data.head(n_rows, npartitions=-1)
    find = dask.delayed(_extreme_rows, pure=True)
    extremes = dask.compute(*[find(part, ranged) for part in data.to_delayed()])
    extremes = _extreme_rows(pd.concat(extremes), ranged)
    # An extreme row may already be among the first rows; keys must stay unique.
    return pd.concat([head, extremes], ignore_index=True).drop_duplicates(ignore_index=True)


def _extreme_rows(part, sdtypes):
    """The rows of ``part`` holding the smallest or largest value of any column of ``sdtypes``."""
    positions = set()
    for name, sdtype in sdtypes.items():
        values = part[name]
        if sdtype == "datetime" and values.dtype == object:
            values = pd.to_datetime(values, errors="coerce")

        if values.notna().any():
            positions.update((int(values.argmin(skipna=True)), int(values.argmax(skipna=True))))

    return part.iloc[sorted(positions)]


def _partition_tallies(part, codecs):
    """Value tallies of every column of one partition."""
    return [codec.tally(part[codec.spec.name].to_numpy()) for codec in codecs]


def _merge_tallies(per_part):
    """Column by column sum of the partitions' tallies."""
    columns = zip(*per_part, strict=True)
    return [_reduce(lambda total, tally: total.merge(tally), column) for column in columns]


def _merge_family_tables(per_part):
    """Family by family sum of the partitions' family tables."""
    return [_reduce(FamilyTable.merge, family) for family in zip(*per_part, strict=True)]


def _sum_tables(per_part):
    """int64 sum of the partitions' split tables (each partition counts in int32)."""
    total = per_part[0].astype(np.int64)
    for table in per_part[1:]:
        total += table

    return total


def _reduce(combine, items):
    """Fold ``items`` with ``combine`` from the left."""
    items = list(items)
    total = items[0]
    for item in items[1:]:
        total = combine(total, item)

    return total


def _encode_partition(part, model):
    """The model's encoding of one partition of raw columns."""
    return model.encode({name: part[name].to_numpy() for name in model.columns})


def _distinct_dask_rows(frame, names):
    """Set of value tuples of the named columns over all partitions."""
    distinct = frame[list(names)].drop_duplicates().compute()
    return distinct_rows({name: distinct[name].to_numpy() for name in names}, names)


def _holds_on_every_dask_row(frame, formula, model):
    """Whether a formula holds on every row of every partition."""
    codecs = {codec.spec.name: codec for codec in model.codecs_}
    check = dask.delayed(_holds_in_partition, pure=True)
    names = rule_columns(formula)
    parts = frame[names].to_delayed()
    return all(dask.compute(*[check(part, formula, codecs) for part in parts]))


def _holds_in_partition(part, formula, codecs):
    """Whether a formula holds on every row of one partition of raw columns."""
    columns = {name: part[name].to_numpy() for name in part.columns}
    return holds_on_every_row(formula, columns, codecs)
