"""The project's exceptions and warnings, in one place.

Each error also subclasses the built-in it resembles, so generic ``except ValueError`` clauses
keep working, and SDV's own error class where SDV has one, so SDV code that catches
``InvalidDataError`` or ``SamplingError`` keeps working too. The engine's errors
(:class:`JanusError`, :class:`InfeasibleConstraintsError`, :class:`ModelFileError`) are defined
without SDV in :mod:`sdv_janus.engine` and re-exported here.

====================================  ==========================================================
Error                                 Raised when
====================================  ==========================================================
``JanusInputError``                   a parameter, ``num_rows``, a condition or a constraint
                                      is not valid
``JanusDataError``                    the training table cannot be modelled as given
``JanusNotFittedError``               something needs a fitted synthesizer
``InfeasibleConstraintsError``        no row can satisfy the constraints together
``ModelFileError``                    a model file is truncated, altered or too new
====================================  ==========================================================
"""

from sdv.errors import InvalidDataError, SamplingError, SynthesizerInputError

from sdv_janus.engine.errors import JanusError, ModelFileError
from sdv_janus.engine.feasibility import InfeasibleConstraintsError

__all__ = [
    "InfeasibleConstraintsError",
    "JanusDataError",
    "JanusError",
    "JanusInputError",
    "JanusNotFittedError",
    "JanusWarning",
    "ModelFileError",
]


class JanusInputError(JanusError, SynthesizerInputError, ValueError):
    """A parameter, a condition or a constraint given by the user is not valid."""


class JanusDataError(JanusInputError, InvalidDataError):
    """The training table holds values the synthesizer cannot model; the message says which.

    Parameters
    ----------
    message : str
        What is wrong, naming the column, and how to fix it.
    """

    def __init__(self, message):
        ValueError.__init__(self, message)
        self.errors = [message]

    def __str__(self):
        return self.errors[0]


class JanusNotFittedError(JanusInputError, SamplingError, AttributeError):
    """The synthesizer must be fitted first."""


class JanusWarning(UserWarning):
    """Something the user can act on: a fallback or a limit that was hit."""
