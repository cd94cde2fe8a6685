"""The engine's errors: plain Python exceptions, so the engine never needs SDV.

:mod:`sdv_janus.errors` re-exports them beside the SDV-facing errors; catch them from there.
"""


class JanusError(Exception):
    """Base class of every error raised by sdv-janus, engine or SDV layer."""


class ModelFileError(JanusError, ValueError):
    """A model file is truncated, altered, of a newer format version, or not a model file."""
