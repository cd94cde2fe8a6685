"""The project's exceptions and warnings.

Each error also subclasses the built-in it resembles, so generic ``except ValueError`` clauses
keep working, and SDV's own error class where SDV has one.
"""

from sdv.errors import SynthesizerInputError


class JanusError(Exception):
    """Base class of every error raised by sdv-janus."""


class JanusInputError(JanusError, SynthesizerInputError, ValueError):
    """A parameter, a condition or a constraint given by the user is not valid."""


class JanusWarning(UserWarning):
    """Something the user can act on: a fallback or a limit that was hit."""
