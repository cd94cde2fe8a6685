"""The JANUS engine: pure numpy, numba, scipy and networkx; it never imports SDV."""

from sdv_janus.engine.encoding import ColumnSpec
from sdv_janus.engine.model import JanusModel

__all__ = ["ColumnSpec", "JanusModel"]
