"""Missing bars in a series of bar open times.

A gap is a run of consecutive bar slots with no bar between two bars that are present. Gaps are only looked
for between the first and the last bar: bars missing before the first or after the last are not gaps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from btlab.model.timeframe import Timeframe

GAP_COLUMNS: tuple[str, ...] = ("gap_start", "gap_end", "missing_bars")


def find_gaps(ts: pd.Series | pd.DatetimeIndex, timeframe: Timeframe | str) -> pd.DataFrame:
    """Find the runs of missing bars between consecutive bar open times (vectorized, no I/O).

    Args:
        ts: bar OPEN times, strictly increasing (as :func:`btlab.model.bar.validate_bars` guarantees), e.g. the
            ``ts`` column of a bar frame. ``datetime64`` values, timezone-aware (converted to UTC) or naive
            (taken as UTC). No missing values.
        timeframe: the bar length (a :class:`~btlab.model.timeframe.Timeframe` or a ccxt string such as ``"1h"``).

    Returns:
        A frame with one row per gap, in time order, and a fresh ``RangeIndex``:

        ================  ======================  ==================================================
        column            dtype                   meaning
        ================  ======================  ==================================================
        ``gap_start``     ``datetime64[ns, UTC]``  open time of the first missing bar
        ``gap_end``       ``datetime64[ns, UTC]``  open time of the last missing bar (inclusive)
        ``missing_bars``  int64                   number of missing bars, ``>= 1``
        ================  ======================  ==================================================

        Empty (with these columns and dtypes) when no bar is missing or ``ts`` has fewer than two values.
        For two present bars ``a < b`` the missing count is ``ceil((b - a) / timeframe) - 1``, which is
        ``(b - a) / timeframe - 1`` for aligned bars; ``gap_start = a + timeframe`` and
        ``gap_end = a + missing_bars * timeframe``. The total number of missing bars is
        ``result["missing_bars"].sum()``.

    Raises:
        ValueError: ``ts`` holds a missing value or is not strictly increasing; ``timeframe`` is not a valid
            ccxt timeframe.
    """
    tf = Timeframe.parse(timeframe)
    index = pd.DatetimeIndex(ts)
    if index.hasnans:
        raise ValueError("find_gaps: ts holds a missing value (NaT)")
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    ns = index.as_unit("ns").asi8
    step = np.diff(ns)
    if step.size and (step <= 0).any():
        pos = int(np.flatnonzero(step <= 0)[0])
        raise ValueError(
            f"find_gaps: ts must be strictly increasing; position {pos + 1} ({index[pos + 1]}) "
            f"follows {index[pos]}"
        )
    slots = -(-step // tf.nanos)  # ceil division: bar slots from one bar to the next
    where = np.flatnonzero(slots > 1)
    missing = (slots[where] - 1).astype("int64")
    start_ns = ns[where] + tf.nanos
    end_ns = ns[where] + missing * tf.nanos
    return pd.DataFrame(
        {
            "gap_start": pd.DatetimeIndex(start_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "gap_end": pd.DatetimeIndex(end_ns.astype("datetime64[ns]")).tz_localize("UTC"),
            "missing_bars": missing,
        }
    )
