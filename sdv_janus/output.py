"""Writing many sampled rows to disk in batches, with bounded memory.

SDV 2.0's ``sample(..., output_folder_path=...)`` writes ``<folder>/<table>.csv`` as it samples,
but also keeps every row and returns them, so the rows must fit in memory. Here each batch is
sampled, appended to the CSV file and dropped; memory holds one batch at a time.
"""

import logging
import time

from sdv.single_table.utils import validate_folder_path_with_table_names

LOGGER = logging.getLogger(__name__)

#: Rows per batch when writing to a folder and no ``batch_size`` is given.
DEFAULT_OUTPUT_BATCH = 100_000


def sample_to_folder(synthesizer, num_rows, folder, batch_size=None, max_tries_per_batch=100):
    """Sample ``num_rows`` rows into ``<folder>/<table name>.csv``, one batch at a time.

    Parameters
    ----------
    synthesizer : JanusSynthesizer
        A fitted synthesizer.
    num_rows : int
        Rows to write; 0 writes the header alone.
    folder : path-like
        Output folder; created if needed. The file must not exist yet (as in SDV).
    batch_size : int, optional
        Rows per batch (default :data:`DEFAULT_OUTPUT_BATCH`).
    max_tries_per_batch : int, default=100
        Passed to SDV's sampling loop (it matters only for programmable constraints).

    Returns
    -------
    str
        Absolute path of the CSV file, which holds a header and exactly ``num_rows`` rows.
    """
    path = validate_folder_path_with_table_names(folder, [synthesizer._table_name])[0]
    if num_rows == 0:
        synthesizer._empty_output.to_csv(path, index=False)
        return path

    batch_size = min(batch_size or DEFAULT_OUTPUT_BATCH, num_rows)
    started = time.perf_counter()
    written = 0
    while written < num_rows:
        wanted = min(batch_size, num_rows - written)
        rows = synthesizer._sample_batch_rows(wanted, max_tries_per_batch)
        rows.to_csv(path, mode="a" if written else "w", header=not written, index=False)
        written += len(rows)
        LOGGER.info("Wrote %d of %d rows to %s", written, num_rows, path)

    LOGGER.info("Sampled %d rows to %s in %.1fs", num_rows, path, time.perf_counter() - started)
    return path
