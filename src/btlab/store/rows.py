"""Row selection shared by every store method: time bounds and :class:`RowFilter` (the WHERE of one table).

The bound rule lives here once: a bound is a UTC time (naive input taken as UTC), bound as a naive UTC
``datetime`` rounded UP to the microsecond (:func:`param_time`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from btlab.store.schema import TABLES

if TYPE_CHECKING:
    import pandas as pd

# pandas (and numpy) are imported where used: opening a store and reading runs (``btlab runs list``) stays fast.
TimeLike = Union[datetime, "pd.Timestamp", str, None]


def to_utc(value: TimeLike) -> pd.Timestamp | None:
    """Parse a time bound to a UTC :class:`pandas.Timestamp`; naive input is taken as UTC. ``None`` stays None."""
    if value is None:
        return None
    import pandas as pd

    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def param_time(value: pd.Timestamp) -> datetime:
    """A bound as a naive UTC datetime (both drivers bind it to TIMESTAMP without a time-zone shift).

    Stored times have microsecond precision, so a bound is rounded UP to the microsecond: for stored ``ts``,
    ``ts >= b`` and ``ts < b`` mean the same with ``b`` or its ceiling (an ``end`` of ``t + 1 ns`` keeps ``t``).
    """
    return value.tz_convert("UTC").ceil("us").tz_localize(None).to_pydatetime()


@dataclass(frozen=True)
class RowFilter:
    """The rows of one table that a store read selects or :meth:`~btlab.store.base.Store.delete_rows` deletes.

    A row is selected when every ``equals`` column holds the given value (or, for a list/tuple/set, any of its
    values) and, where given, ``start <= ts < end``. Column names are checked against the schema, so identifiers
    only ever come from :data:`btlab.store.schema.TABLES`; values are always bound parameters.

    Attributes:
        table: a table of the schema.
        equals: column -> value or collection of values (at least one condition overall).
        start, end: bounds on ``ts`` (UTC; naive values are taken as UTC).
    """

    table: str
    equals: Mapping[str, Any]
    start: TimeLike = None
    end: TimeLike = None

    def where(self) -> tuple[str, list[Any]]:
        """``(condition, params)``: SQL with ``?`` placeholders selecting the rows, and the values to bind.

        Raises:
            KeyError: unknown table.
            ValueError: unknown column, an empty collection of values, or no condition at all (deleting a whole
                table is not what this is for).
        """
        spec = TABLES[self.table]
        parts: list[str] = []
        params: list[Any] = []
        for col, value in self.equals.items():
            if col not in spec.column_names:
                raise ValueError(f"table {spec.name} has no column {col!r}")
            if isinstance(value, (list, tuple, set, frozenset)):
                values = list(value)
                if not values:
                    raise ValueError(f"no values given for {spec.name}.{col}")
                parts.append(f"{col} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
            else:
                parts.append(f"{col} = ?")
                params.append(value)
        if (lo := to_utc(self.start)) is not None:
            parts.append("ts >= ?")
            params.append(param_time(lo))
        if (hi := to_utc(self.end)) is not None:
            parts.append("ts < ?")
            params.append(param_time(hi))
        if not parts:
            raise ValueError(f"refusing to delete every row of {spec.name}: give at least one condition")
        return " AND ".join(parts), params
