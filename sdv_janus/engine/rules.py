"""The engine's constraint language: atoms, formulas, and their disjoint normal form.

A constraint is a formula over atoms in raw column units:

* :class:`Linear`: ``sum_i a_i x_i + c >= 0`` (``> 0`` if strict) over numerical or datetime
  columns (datetimes in nanoseconds since 1970);
* :class:`InSet`: a column's value is one of a set of raw values (or, negated, none of them);
* :class:`AllowedTuples`: the tuple of values of several categorical columns is one of a set.

Formulas combine atoms with :class:`AllOf`, :class:`AnyOf` and :class:`Not`. Sampling needs
each formula as a union of *disjoint* conjunctions (terms), so that every row lies in exactly
one term; :func:`disjoint_terms` builds them, splitting ``A or B`` into ``A`` and
``(not A) and B``. A rule on a null value holds vacuously, as in SDV.
"""

from dataclasses import dataclass
from itertools import product


@dataclass(frozen=True)
class Linear:
    """``sum_i coefficients[i] * x_i + constant >= 0`` (``> 0`` when strict)."""

    coefficients: tuple[tuple[str, float], ...]
    constant: float
    strict: bool
    name: str

    def negate(self):
        """``not (a x + c >= 0)`` is ``-a x - c > 0``."""
        flipped = tuple((column, -value) for column, value in self.coefficients)
        return Linear(flipped, -self.constant, not self.strict, self.name)

    @property
    def columns(self):
        """Columns the atom mentions."""
        return tuple(column for column, _ in self.coefficients)


@dataclass(frozen=True)
class InSet:
    """``column`` takes one of ``values`` (none of them when ``negated``)."""

    column: str
    values: tuple
    name: str
    negated: bool = False

    def negate(self):
        """The complementary set test."""
        return InSet(self.column, self.values, self.name, not self.negated)

    @property
    def columns(self):
        """Columns the atom mentions."""
        return (self.column,)


@dataclass(frozen=True)
class AllowedTuples:
    """The values of ``columns`` form one of the ``rows`` (tuples of raw values)."""

    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    name: str

    def negate(self):
        """Negating a table is not supported (its complement is rarely meant)."""
        raise ValueError(f"The rule '{self.name}' (a table of combinations) cannot be negated.")


@dataclass(frozen=True)
class AllOf:
    """Every item holds."""

    items: tuple


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds."""

    items: tuple


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: object


ATOMS = (Linear, InSet, AllowedTuples)


def disjoint_terms(formula):
    """Write a formula as a list of pairwise disjoint conjunctions of atoms.

    Parameters
    ----------
    formula : atom, AllOf, AnyOf or Not

    Returns
    -------
    list of tuple
        Each term is a tuple of atoms that must all hold; no row satisfies two terms.
    """
    if isinstance(formula, ATOMS):
        return [(formula,)]

    if isinstance(formula, Not):
        return _negated_terms(formula.item)

    if isinstance(formula, AllOf):
        parts = [disjoint_terms(item) for item in formula.items]
        return [sum(choice, ()) for choice in product(*parts)]

    if isinstance(formula, AnyOf):
        terms, excluded = [], ()
        for item in formula.items:
            # Each alternative holds while every earlier one fails: the terms are disjoint.
            for term in disjoint_terms(AllOf(excluded + (item,))):
                terms.append(term)
            excluded += (Not(item),)

        return terms

    raise TypeError(f"Unknown formula element {formula!r}.")


def _negated_terms(formula):
    """Disjoint terms of ``not formula`` (De Morgan)."""
    if isinstance(formula, ATOMS):
        return [(formula.negate(),)]

    if isinstance(formula, Not):
        return disjoint_terms(formula.item)

    if isinstance(formula, AllOf):
        return disjoint_terms(AnyOf(tuple(Not(item) for item in formula.items)))

    if isinstance(formula, AnyOf):
        return disjoint_terms(AllOf(tuple(Not(item) for item in formula.items)))

    raise TypeError(f"Unknown formula element {formula!r}.")
