"""Run GIL-releasing numba work on every core: row blocks of one kernel, or independent tasks.

The kernels release the GIL (``nogil=True``) and treat rows independently, so a large call is
split into one contiguous block of rows per core, each block runs in a thread, and the outputs
are joined in row order. The result is identical to a single call on all rows.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Below this many rows a single call is faster than handing blocks to threads.
_MIN_ROWS_PER_BLOCK = 1 << 16
_EXECUTOR = None


def _n_workers():
    """Cores available to this process, ``JANUS_NUM_THREADS`` capping them if set."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    limit = os.environ.get("JANUS_NUM_THREADS")
    return max(1, min(available, int(limit))) if limit else max(1, available)


def _executor():
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=_n_workers(), thread_name_prefix="janus")

    return _EXECUTOR


def _forget_executor():
    """A forked child has none of its parent's threads: it starts its own pool."""
    global _EXECUTOR
    _EXECUTOR = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_executor)


def by_row_blocks(function, *row_arrays):
    """Call ``function(*row_blocks)`` on blocks of rows in parallel; join the outputs.

    Parameters
    ----------
    function : callable
        Calls a GIL-releasing kernel on row blocks of ``row_arrays`` and returns one array
        whose first axis is the rows.
    *row_arrays : numpy.ndarray
        Arrays split along their first axis (C-contiguous row blocks stay contiguous).

    Returns
    -------
    numpy.ndarray
        The outputs of the blocks, concatenated in row order.
    """
    n_rows = len(row_arrays[0])
    n_blocks = min(_n_workers(), n_rows // _MIN_ROWS_PER_BLOCK)
    if n_blocks <= 1:
        return function(*row_arrays)

    edges = np.linspace(0, n_rows, n_blocks + 1).astype(np.int64)
    futures = [
        _executor().submit(function, *(array[lo:hi] for array in row_arrays))
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]
    return np.concatenate([future.result() for future in futures])


def map_in_threads(function, items):
    """``[function(item) for item in items]``, the calls spread over one thread per core.

    For independent tasks whose time is spent in GIL-releasing kernels (growing the trees of
    different columns). The results are in the order of ``items`` and do not depend on the
    number of threads. A pool of its own is used, so ``function`` may call
    :func:`by_row_blocks`.
    """
    items = list(items)
    n_workers = min(_n_workers(), len(items))
    if n_workers <= 1:
        return [function(item) for item in items]

    with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="janus-task") as pool:
        return list(pool.map(function, items))
