"""Streaming tick -> bar aggregation by event time with a watermark (:class:`StreamingAggregator`).

Gives bit-identical bars to :func:`btlab.marketdata.bars.batch.aggregate_ticks` for the same trades (same kernel,
same canonical order). Rules: :mod:`btlab.marketdata.bars`.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np
import pandas as pd

from btlab.errors import InvalidArgumentError
from btlab.model import tick as tick_model
from btlab.model.timeframe import Timeframe
from btlab.marketdata.bars.batch import tick_arrays
from btlab.marketdata.bars.kernel import (
    EmptyPolicy,
    _NAT,
    _NO_TIME,
    _aggregate_sorted,
    _bars_frame,
    _check_decimals,
    _check_empty,
    _concat_bars,
    _seconds_to_ns,
)

_BUFFERS = ("_bts", "_bpx", "_bam", "_bid", "_bex")  # the retained trades (see StreamingAggregator._reserve)

def _invalid_reason(ts: int, price: float, amount: float) -> str:
    """The :mod:`btlab.model.tick` quarantine reason of an invalid trade (first rule that fails)."""
    if ts == _NAT:
        return tick_model.REASON_TIME
    t = tick_model
    for value, missing, infinite, nonpositive in (
        (price, t.REASON_PRICE_MISSING, t.REASON_PRICE_INFINITE, t.REASON_PRICE_NONPOSITIVE),
        (amount, t.REASON_AMOUNT_MISSING, t.REASON_AMOUNT_INFINITE, t.REASON_AMOUNT_NONPOSITIVE),
    ):
        if math.isnan(value):
            return missing
        if math.isinf(value) and value > 0:
            return infinite
        if value <= 0:
            return nonpositive
    return "invalid"


class StreamingAggregator:
    """Incremental tick -> bar aggregation by event time, for live trades; several timeframes at once.

    Event time and finality: the watermark is ``max(event time seen) - allowed_lateness``, where event times are
    trade times (``ts_ns``) and the times given to :meth:`advance`. A bar ``[t, t + tf)`` becomes FINAL -- and is
    made available by :meth:`pop_bars` -- once ``watermark >= t + tf``; final bars are never changed afterwards.

    Per trade, on arrival, the first rule that applies:

    1. invalid (price or amount NaN, infinite or <= 0, time NaT): dropped, counted in ``invalid_ticks``, the last
       ``log_size`` kept with the :mod:`btlab.model.tick` reason in :meth:`quarantine_log`. Invalid trades do not
       move the watermark.
    2. duplicate: its trade id equals that of an accepted trade still retained (trades of open windows, and of the
       last ``dedup_retention`` seconds of event time before the watermark) or of an earlier accepted trade of the
       same call: dropped, counted in ``duplicate_ticks`` (a re-sent trade is a duplicate even when its window has
       closed). The first arrival wins.
    3. late for a timeframe: its window is already final (``ts < floor(watermark, timeframe)`` with the watermark
       the trade meets on arrival). Never merged into that bar; counted once in ``late_ticks`` (and per timeframe
       in ``late_by_timeframe``), the last ``log_size`` kept in :meth:`late_log`. A trade late for every
       timeframe is dropped; one late only for the shorter timeframes (e.g. 1s) still counts in the longer ones'
       open bars (e.g. 1m).
    4. otherwise accepted and merged. Trades that arrive out of order within the lateness are merged in canonical
       order (time, then trade id), so open/close are the first/last by trade time.

    Bars are computed when their window closes, by the same kernel as :func:`aggregate_ticks` over the retained
    trades of that window in canonical order. Given the same trades, the two forms give bit-identical bars: for
    any arrival order in which no trade is late, and with duplicates within the retention window (batch input
    in arrival order, so that "first" means the same).

    API and speed: :meth:`add_batch` takes numpy arrays and processes them at once (the fast path: tens of
    millions of trades per second in batches of thousands). :meth:`add` takes one trade and only appends it to a
    pending list (a few hundred ns, several million trades per second); pending trades are classified and merged,
    vectorized and with the same per-arrival rules, when results are read (:meth:`pop_bars`, :meth:`flush`,
    counters, logs) or every ``pending_limit`` trades. Results are identical whichever mix is used. A live
    caller calls :meth:`pop_bars` when :meth:`add` returns True and stores those (final) bars. Trade ids must be
    integers (for exchanges with text ids map them to int64: dedup and the tie order then follow that mapping).

    Not thread-safe: feed and read it from one thread (or behind a lock).

    Memory: the retained trades (40 bytes each) of the longest timeframe's open window, plus the lateness and the
    dedup retention. For long timeframes (1h, 1d) stream 1m (or 1s) and build them with :func:`resample_bars`.

    Args:
        timeframes: ccxt timeframes, e.g. ``["1s", "1m"]``.
        allowed_lateness: how far (seconds, or a timedelta) a trade may lag the newest event time and still count.
        empty: ``"skip"`` or ``"flat"`` (windows without trades; flat bars only after the first trade).
        volume_decimals: as in :func:`aggregate_ticks` (must match for identical bars).
        dedup_retention: seconds of event time behind the watermark for which closed windows' trade ids are kept.
        log_size: how many late and invalid trades to keep for inspection.
        pending_limit: single trades buffered before :meth:`add` processes them anyway.
    """

    def __init__(
        self,
        timeframes: Iterable[Timeframe | str],
        *,
        allowed_lateness: timedelta | float = 0.0,
        empty: EmptyPolicy = "skip",
        volume_decimals: int | None = 8,
        dedup_retention: timedelta | float = 60.0,
        log_size: int = 1000,
        pending_limit: int = 65_536,
    ) -> None:
        tfs = sorted({Timeframe.parse(t) for t in timeframes})
        if not tfs or len(tfs) > 62:
            raise InvalidArgumentError("StreamingAggregator needs 1 to 62 timeframes")
        self.timeframes: tuple[Timeframe, ...] = tuple(tfs)
        self._tf_ns = [tf.nanos for tf in tfs]
        self._origin = [tf.origin_ns for tf in tfs]
        self._flat = _check_empty(empty)
        self._decimals = _check_decimals(volume_decimals)
        self._lateness = _seconds_to_ns(allowed_lateness, "allowed_lateness")
        self._retention = _seconds_to_ns(dedup_retention, "dedup_retention")
        self._pending_limit = max(1, int(pending_limit))
        # pending single trades (Python lists: append is the cheapest thing per trade)
        self._pts: list[int] = []
        self._ppx: list[float] = []
        self._pam: list[float] = []
        self._pid: list[int] = []
        self._append_ts = self._pts.append
        self._append_px = self._ppx.append
        self._append_am = self._pam.append
        self._append_id = self._pid.append
        self._trigger = _NO_TIME  # event time at which the next window closes (for add()'s signal)
        self._ready = False  # final bars (or a closed window still pending) waiting for pop_bars()
        self._waiting = 0  # final bars computed and not yet popped
        # retained trades, canonical order, in [b0, b1) of growable arrays
        cap = 1 << 14
        self._bts = np.empty(cap, dtype=np.int64)
        self._bpx = np.empty(cap)
        self._bam = np.empty(cap)
        self._bid = np.empty(cap, dtype=np.int64)
        self._bex = np.zeros(cap, dtype=np.int64)  # bit k set: late for timeframe k, excluded from its bars
        self._b0 = 0
        self._b1 = 0
        self._max_ts = _NO_TIME
        self._max_id = np.iinfo(np.int64).min
        self._until: list[int | None] = [None] * len(tfs)  # end of the last final window per timeframe
        self._last_close = [math.nan] * len(tfs)
        self._out: list[list[dict[str, np.ndarray]]] = [[] for _ in tfs]
        self._n_accepted_ticks = 0
        self._n_invalid_ticks = 0
        self._n_duplicate_ticks = 0
        self._n_late_ticks = 0
        self._late_tf = [0] * len(tfs)
        self._n_bars_emitted = 0
        self._late_log: collections.deque = collections.deque(maxlen=log_size)
        self._bad_log: collections.deque = collections.deque(maxlen=log_size)

    # ---- feeding -------------------------------------------------------------------------------------------
    def add(self, ts_ns: int, price: float, amount: float, trade_id: int) -> bool:
        """Feed one trade: ``ts_ns`` exchange trade time (int ns, UTC), price, amount (base asset), int trade id.

        The trade is appended to a pending list; pending trades are classified and merged, vectorized, when
        results are asked for (:meth:`pop_bars`, :meth:`flush`, counters) or every ``pending_limit`` trades, with
        the same per-arrival rules as if each were processed at once.

        Returns:
            True when a window has closed (by this or an earlier trade) since the last :meth:`pop_bars`: final bars
            are waiting. A live caller stores ``pop_bars()`` when this turns True.
        """
        self._append_ts(ts_ns)
        self._append_px(price)
        self._append_am(amount)
        self._append_id(trade_id)
        if ts_ns >= self._trigger:
            self._crossed(ts_ns, price, amount)
        if len(self._pts) >= self._pending_limit:
            self._ingest_pending()
            self._emit()
        return self._ready

    def add_batch(
        self,
        ts_ns: np.ndarray | Sequence[int],
        price: np.ndarray | Sequence[float],
        amount: np.ndarray | Sequence[float],
        trade_id: np.ndarray | Sequence[int],
    ) -> int:
        """Feed trades in arrival order (arrays of equal length: int64 ns UTC, float64, float64, int64).

        Same result as calling :meth:`add` for each trade in order. Processed at once (vectorized).

        Returns:
            The number of final bars waiting for :meth:`pop_bars`.
        """
        ts = np.asarray(ts_ns, dtype=np.int64)
        px = np.asarray(price, dtype=np.float64)
        am = np.asarray(amount, dtype=np.float64)
        ids = np.asarray(trade_id, dtype=np.int64)
        if not (ts.shape == px.shape == am.shape == ids.shape) or ts.ndim != 1:
            raise InvalidArgumentError("add_batch needs four 1-d arrays of equal length")
        if self._pts:
            self._ingest_pending()
        self._ingest(ts, px, am, ids)
        self._emit()
        return self._waiting

    def add_ticks(self, ticks: pd.DataFrame) -> int:
        """Feed a tick frame (:mod:`btlab.model.tick` layout, rows in arrival order); numeric trade ids required."""
        ts, px, am, ids = tick_arrays(ticks)
        if ids is None:
            raise InvalidArgumentError("streaming aggregation needs numeric trade ids (column 'trade_id')")
        return self.add_batch(ts, px, am, ids)

    def advance(self, now_event_ns: int) -> int:
        """Tell the aggregator that event time has reached ``now_event_ns`` (int ns UTC; e.g. an exchange heartbeat
        or event time of another stream), closing windows although no trade arrived. Subject to the lateness like
        a trade time. Returns the number of final bars waiting for :meth:`pop_bars`."""
        if self._pts:
            self._ingest_pending()
        if now_event_ns > self._max_ts:
            self._max_ts = int(now_event_ns)
        self._emit()
        return self._waiting

    # ---- results -------------------------------------------------------------------------------------------
    def pop_bars(self) -> dict[str, pd.DataFrame]:
        """Final bars produced since the last call, per timeframe (``{"1m": frame, ...}``, every timeframe present,
        frames possibly empty), each sorted by ``ts`` with :data:`AGG_BAR_COLUMNS`. Safe to store as final."""
        return {tf: _bars_frame(bars) for tf, bars in self.pop_bar_arrays().items()}

    def pop_bar_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """As :meth:`pop_bars`, without pandas (for low-latency consumers): per timeframe a dict of numpy arrays
        keyed by :data:`AGG_BAR_COLUMNS`, ``ts`` as int64 ns UTC (bar open) and ``trades`` as int64."""
        self._sync()
        out = {}
        for k, tf in enumerate(self.timeframes):
            out[tf.value] = _concat_bars(self._out[k])
            self._out[k] = []
        self._waiting = 0
        self._ready = False
        return out

    def flush(self) -> dict[str, pd.DataFrame]:
        """The still-OPEN bars (windows not yet final), per timeframe, as they stand now.

        For shutdown or display only: these bars are NOT final (later trades may still change them), so callers
        must not store them as final bars. Does not change the aggregator's state. Final bars not yet popped are
        not included (see :meth:`pop_bars`).
        """
        self._sync()
        out = {}
        b0, b1 = self._b0, self._b1
        bts = self._bts[b0:b1]
        for k, tf in enumerate(self.timeframes):
            lo = self._until[k]
            i0 = 0 if lo is None else int(np.searchsorted(bts, lo, side="left"))
            sts, spx, sam = self._slice(k, b0 + i0, b1)
            bars = _aggregate_sorted(
                sts,
                spx,
                sam,
                self._tf_ns[k],
                self._origin[k],
                flat=self._flat,
                decimals=self._decimals,
                lo=lo,
                prev_close=self._last_close[k],
            )
            out[tf.value] = _bars_frame(bars)
        return out

    # ---- counters (each processes pending single trades first) ----------------------------------------------
    @property
    def accepted_ticks(self) -> int:
        """Trades merged into at least one timeframe's bars."""
        self._sync()
        return self._n_accepted_ticks

    @property
    def invalid_ticks(self) -> int:
        """Trades dropped as invalid (see :meth:`quarantine_log`)."""
        self._sync()
        return self._n_invalid_ticks

    @property
    def duplicate_ticks(self) -> int:
        """Trades dropped because their id repeats a retained accepted trade."""
        self._sync()
        return self._n_duplicate_ticks

    @property
    def late_ticks(self) -> int:
        """Trades late for at least one timeframe, each counted once (see :meth:`late_log`)."""
        self._sync()
        return self._n_late_ticks

    @property
    def bars_emitted(self) -> int:
        """Final bars produced so far (all timeframes)."""
        self._sync()
        return self._n_bars_emitted

    def _sync(self) -> None:
        """Classify and merge pending single trades (see :meth:`add`)."""
        if self._pts:
            self._process_pending()

    @property
    def watermark_ns(self) -> int | None:
        """Current watermark (int ns UTC), or None before the first event."""
        self._sync()
        return None if self._max_ts == _NO_TIME else self._max_ts - self._lateness

    @property
    def late_by_timeframe(self) -> dict[str, int]:
        """Late trades per timeframe (a trade late for 1s but not for 1m counts under 1s only)."""
        self._sync()
        return {tf.value: n for tf, n in zip(self.timeframes, self._late_tf)}

    def stats(self) -> dict[str, int | None]:
        """Counters: accepted, invalid, duplicate and late trades, bars emitted, retained trades, watermark."""
        self._sync()
        return {
            "accepted_ticks": self._n_accepted_ticks,
            "invalid_ticks": self._n_invalid_ticks,
            "duplicate_ticks": self._n_duplicate_ticks,
            "late_ticks": self._n_late_ticks,
            "bars_emitted": self._n_bars_emitted,
            "retained_ticks": self._b1 - self._b0,
            "watermark_ns": None if self._max_ts == _NO_TIME else self._max_ts - self._lateness,
        }

    def late_log(self) -> pd.DataFrame:
        """The last ``log_size`` late trades: ``ts`` (UTC), ``price``, ``amount``, ``trade_id``, ``watermark`` (at
        arrival, UTC) and ``timeframes`` (comma-separated timeframes whose final bar the trade missed)."""
        self._sync()
        return self._log_frame(self._late_log, "timeframes")

    def quarantine_log(self) -> pd.DataFrame:
        """The last ``log_size`` invalid trades with the ``reason`` (same columns as :meth:`late_log`)."""
        self._sync()
        return self._log_frame(self._bad_log, "reason")

    @staticmethod
    def _log_frame(log: collections.deque, label: str) -> pd.DataFrame:
        rows = list(log)
        frame = pd.DataFrame(rows, columns=["ts", "price", "amount", "trade_id", "watermark", label])
        for col in ("ts", "watermark"):
            frame[col] = pd.to_datetime(frame[col].astype("Int64"), utc=True)
        frame["trade_id"] = frame["trade_id"].astype("int64")
        return frame

    # ---- internals -----------------------------------------------------------------------------------------
    def _process_pending(self) -> int:
        self._ingest_pending()
        return self._emit()

    def _crossed(self, ts_ns: int, price: float, amount: float) -> None:
        """A single trade reached the trigger: flag that a window closed and move the trigger (pure Python, rare)."""
        if not (0 < price < math.inf and 0 < amount < math.inf) or ts_ns == _NAT:
            return  # invalid trades do not move the watermark
        started = self._trigger != _NO_TIME  # False only for the very first event: nothing to close before it
        wm = int(ts_ns) - self._lateness
        self._trigger = min((wm - o) // t * t + o + t for t, o in zip(self._tf_ns, self._origin)) + self._lateness
        if started:
            self._ready = True

    def _ingest_pending(self) -> None:
        ts = np.array(self._pts, dtype=np.int64)
        px = np.array(self._ppx, dtype=np.float64)
        am = np.array(self._pam, dtype=np.float64)
        ids = np.array(self._pid, dtype=np.int64)
        self._pts.clear()
        self._ppx.clear()
        self._pam.clear()
        self._pid.clear()
        self._ingest(ts, px, am, ids)

    def _ingest(self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray) -> None:
        """Classify trades in arrival order (invalid, duplicate, late) and merge the rest into the retained set.

        Vectorized, with the same outcome as handling the trades one by one: the watermark a trade meets is the
        running maximum of the valid event times before it, minus the lateness. Steps: drop invalid trades,
        find late ones per timeframe, find duplicates, count and log the late ones, merge the accepted ones.
        """
        ts, px, am, ids = self._drop_invalid(ts, px, am, ids)
        if ts.size == 0:
            return
        late_masks, wm_before = self._late_masks(ts)
        late_all = None
        if late_masks is not None:
            late_all = late_masks[0].copy()
            for mk in late_masks[1:]:
                late_all &= mk
        dup = self._duplicates(ids, late_all)
        excl = None
        if late_masks is not None:
            assert wm_before is not None  # late trades exist only on the per-arrival path
            excl = self._count_late(ts, px, am, ids, late_masks, wm_before, dup)
        accept = None
        if dup is not None:
            accept = ~dup
        if late_all is not None:
            accept = ~late_all if accept is None else accept & ~late_all
        if accept is not None:
            ts, px, am, ids = ts[accept], px[accept], am[accept], ids[accept]
            if excl is not None:
                excl = excl[accept]
            if ts.size == 0:
                return
        if excl is not None and not excl.any():
            excl = None
        self._max_id = max(self._max_id, int(ids.max()))
        self._n_accepted_ticks += ts.size
        self._insert(ts, px, am, ids, excl)

    def _drop_invalid(
        self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step 1: count, log (quarantine reason) and drop invalid trades; they do not move the watermark."""
        ok = (px > 0) & (px < np.inf) & (am > 0) & (am < np.inf) & (ts != _NAT)
        if ok.all():
            return ts, px, am, ids
        bad = np.flatnonzero(~ok)
        self._n_invalid_ticks += bad.size
        wm = None if self._max_ts == _NO_TIME else self._max_ts - self._lateness
        for i in bad[-self._bad_log.maxlen :] if self._bad_log.maxlen else ():
            self._bad_log.append(
                (None if ts[i] == _NAT else int(ts[i]), float(px[i]), float(am[i]), int(ids[i]), wm,
                 _invalid_reason(int(ts[i]), float(px[i]), float(am[i])))
            )
        return ts[ok], px[ok], am[ok], ids[ok]

    def _late_masks(self, ts: np.ndarray) -> tuple[list[np.ndarray] | None, np.ndarray | None]:
        """Step 2: per timeframe, which trades are late against the watermark each meets on arrival; moves the
        newest event time. Returns ``(masks or None when none is late, watermark before each trade or None)``."""
        m = ts.size
        prior = self._max_ts
        lateness = self._lateness
        increasing = m < 2 or not np.less(ts[1:], ts[:-1]).any()
        if increasing and int(ts[0]) >= prior - lateness:
            self._max_ts = max(prior, int(ts[-1]))  # nothing can be late: every trade is at or after its watermark
            return None, None
        before = np.empty(m, dtype=np.int64)
        before[0] = prior
        if m > 1:
            np.maximum.accumulate(ts[:-1], out=before[1:])
            np.maximum(before[1:], prior, out=before[1:])
        wm_before = before - lateness
        self._max_ts = max(int(before[-1]), int(ts[-1]))
        cand = np.flatnonzero(ts < wm_before)
        if not cand.size:
            return None, wm_before
        masks = []
        for tf_ns, origin in zip(self._tf_ns, self._origin):
            mask = np.zeros(m, dtype=bool)
            wmc = wm_before[cand]
            mask[cand] = ts[cand] < (wmc - origin) // tf_ns * tf_ns + origin
            masks.append(mask)
        return (masks if any(mk.any() for mk in masks) else None), wm_before

    def _duplicates(self, ids: np.ndarray, late_all: np.ndarray | None) -> np.ndarray | None:
        """Step 3: trades whose id is that of a retained accepted trade or of an earlier trade of this batch that
        is accepted (the first acceptable arrival wins); counted. None when there is none."""
        m = ids.size
        if int(ids[0]) > self._max_id and (m < 2 or not np.less_equal(ids[1:], ids[:-1]).any()):
            return None
        dup = np.zeros(m, dtype=bool)
        if self._b1 > self._b0:
            dup = np.isin(ids, self._bid[self._b0 : self._b1])
        fresh = ~dup if late_all is None else ~dup & ~late_all  # could be accepted
        idx = np.flatnonzero(fresh)
        uniq, first = np.unique(ids[idx], return_index=True)
        if uniq.size:
            first_pos = idx[first]  # position of the first acceptable arrival of each id
            where = np.searchsorted(uniq, ids)
            where[where >= uniq.size] = 0
            dup |= (uniq[where] == ids) & (first_pos[where] < np.arange(m))
        if not dup.any():
            return None
        self._n_duplicate_ticks += int(np.count_nonzero(dup))
        return dup

    def _count_late(self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray,
                    late_masks: list[np.ndarray], wm_before: np.ndarray, dup: np.ndarray | None) -> np.ndarray:
        """Step 4: count and log late trades (duplicates are not counted as late); returns, per trade, the bit
        set of the timeframes it is late for (bit k = timeframe k), which excludes it from those bars."""
        m = ts.size
        late_any = np.zeros(m, dtype=bool)
        for k, mk in enumerate(late_masks):
            if dup is not None:
                mk &= ~dup
            self._late_tf[k] += int(np.count_nonzero(mk))
            late_any |= mk
        n_late = int(np.count_nonzero(late_any))
        if n_late:
            self._n_late_ticks += n_late
            maxlen = self._late_log.maxlen or 0
            for i in np.flatnonzero(late_any)[-maxlen:] if maxlen else ():
                names = ",".join(tf.value for k, tf in enumerate(self.timeframes) if late_masks[k][i])
                self._late_log.append((int(ts[i]), float(px[i]), float(am[i]), int(ids[i]), int(wm_before[i]), names))
        excl = np.zeros(m, dtype=np.int64)
        for k, mk in enumerate(late_masks):
            excl[mk] |= 1 << k
        return excl

    def _reserve(self, extra: int) -> None:
        b0, b1 = self._b0, self._b1
        cap = self._bts.size
        if b1 + extra <= cap:
            return
        live = b1 - b0
        if live + extra <= cap // 2 and b0 > 0:  # compact in place
            for name in _BUFFERS:
                arr = getattr(self, name)
                arr[:live] = arr[b0:b1]
        else:
            new_cap = max(cap * 2, 1 << (int(live + extra) - 1).bit_length())
            for name in _BUFFERS:
                arr = getattr(self, name)
                grown = np.empty(new_cap, dtype=arr.dtype)
                grown[:live] = arr[b0:b1]
                setattr(self, name, grown)
        self._b0, self._b1 = 0, live

    def _insert(
        self, ts: np.ndarray, px: np.ndarray, am: np.ndarray, ids: np.ndarray, excl: np.ndarray | None
    ) -> None:
        m = ts.size
        if excl is None:
            excl = np.zeros(m, dtype=np.int64)
        if m > 1 and (np.less(ts[1:], ts[:-1]).any() or ((ts[1:] == ts[:-1]) & (ids[1:] < ids[:-1])).any()):
            order = np.lexsort((ids, ts))
            ts, px, am, ids, excl = ts[order], px[order], am[order], ids[order], excl[order]
        self._reserve(m)
        b0, b1 = self._b0, self._b1
        t0 = int(ts[0])
        if b1 == b0 or t0 > self._bts[b1 - 1] or (t0 == self._bts[b1 - 1] and ids[0] > self._bid[b1 - 1]):
            self._bts[b1 : b1 + m] = ts
            self._bpx[b1 : b1 + m] = px
            self._bam[b1 : b1 + m] = am
            self._bid[b1 : b1 + m] = ids
            self._bex[b1 : b1 + m] = excl
        else:  # out of order: re-sort the tail of the retained trades that the new ones fall into
            p = b0 + int(np.searchsorted(self._bts[b0:b1], t0, side="left"))
            tts = np.concatenate((self._bts[p:b1], ts))
            tid = np.concatenate((self._bid[p:b1], ids))
            order = np.lexsort((tid, tts))
            self._bpx[p : b1 + m] = np.concatenate((self._bpx[p:b1], px))[order]
            self._bam[p : b1 + m] = np.concatenate((self._bam[p:b1], am))[order]
            self._bex[p : b1 + m] = np.concatenate((self._bex[p:b1], excl))[order]
            self._bts[p : b1 + m] = tts[order]
            self._bid[p : b1 + m] = tid[order]
        self._b1 = b1 + m

    def _slice(self, k: int, i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Retained trades ``[i, j)`` that count for timeframe ``k`` (not late for it)."""
        ex = self._bex[i:j]
        if ex.any():
            sel = (ex & (1 << k)) == 0
            return self._bts[i:j][sel], self._bpx[i:j][sel], self._bam[i:j][sel]
        return self._bts[i:j], self._bpx[i:j], self._bam[i:j]

    def _emit(self) -> int:
        """Close every window the watermark has passed; prune trades no longer needed; set the next trigger."""
        if self._max_ts == _NO_TIME:
            return 0
        wm = self._max_ts - self._lateness
        b0, b1 = self._b0, self._b1
        bts = self._bts[b0:b1]
        produced = 0
        next_close = None
        for k in range(len(self._tf_ns)):
            tf_ns, origin = self._tf_ns[k], self._origin[k]
            until = (wm - origin) // tf_ns * tf_ns + origin
            nxt = until + tf_ns
            next_close = nxt if next_close is None else min(next_close, nxt)
            prev = self._until[k]
            if prev is not None and until <= prev:
                continue
            if prev is None:
                i0 = 0
            else:
                i0 = int(np.searchsorted(bts, prev, side="left"))
            i1 = int(np.searchsorted(bts, until, side="left"))
            if i1 > i0 or (self._flat and prev is not None and not math.isnan(self._last_close[k])):
                sts, spx, sam = self._slice(k, b0 + i0, b0 + i1)
                bars = _aggregate_sorted(
                    sts,
                    spx,
                    sam,
                    tf_ns,
                    origin,
                    flat=self._flat,
                    decimals=self._decimals,
                    lo=prev,
                    hi=until,
                    prev_close=self._last_close[k],
                )
                nb = bars["ts"].size
                if nb:
                    self._out[k].append(bars)
                    self._waiting += nb
                    self._last_close[k] = float(bars["close"][-1])
                    produced += nb
            self._until[k] = until
        # prune: keep trades of open windows and the dedup retention
        cut = min(min(u for u in self._until if u is not None), wm - self._retention)
        if b1 > b0 and bts[0] < cut:
            self._b0 = b0 + int(np.searchsorted(bts, cut, side="left"))
        self._trigger = next_close + self._lateness  # type: ignore[operator]
        self._n_bars_emitted += produced
        self._ready = self._waiting > 0
        return produced
