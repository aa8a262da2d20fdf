"""Live ingest: exchange trades (ccxt.pro ``watch_trades``) -> ticks and OHLCV bars by event time.

For each symbol one WebSocket subscription feeds a :class:`~btlab.marketdata.bars.StreamingAggregator`; bars
are emitted only when their window has closed by EVENT time (exchange trade times), with an allowed lateness
(the watermark is ``newest trade time - allowed_lateness``). Late trades are counted and reported, never merged
into a finished bar. Ticks and finished bars go to the store (idempotent upserts) and, when a broker is
configured, to the Kafka-protocol topics of :mod:`btlab.stream`.

Faults and restarts -- the store's ticks are the source of truth:

* Malformed or impossible trades (NaN, price or amount <= 0, unparsable time) are quarantined and counted
  (:func:`btlab.model.tick.split_valid_ticks`), never fatal.
* Duplicated trades (same trade id) are dropped and counted.
* Trade-id gaps (exchanges that number trades consecutively per symbol, Binance) are detected: a trade whose id
  is more than one above the last one seen. The missing trades are fetched over REST (Binance
  ``/api/v3/historicalTrades?fromId=``) and fed BEFORE the trade that revealed the gap, so they are not late and
  the bars stay exact. Gaps that cannot be filled are counted in ``ids_missing``.
* Dropped connections and silent subscriptions (no message within ``watch_timeout``; ccxt.pro 4.5's receive loop
  can also die on an unparsable message) reconnect with exponential backoff and resubscribe, after backfilling
  over REST everything traded since the last trade seen; the id-gap rule catches the rest.
* Ticks are written before the bars that contain them. Killed at any moment and started again, the job reloads
  the stored ticks of every window not yet stored as a bar, backfills from the last stored trade id, and goes on:
  no gap and no duplicate (writes are upserts on natural keys). Open bars are never stored.

Exchanges without consecutive numeric trade ids get dedup (by a stable 64-bit hash of the id) but no gap
detection or backfill.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from btlab.errors import BtlabError, InvalidArgumentError
from btlab.marketdata.bars import StreamingAggregator
from btlab.marketdata.sources.ccxt.schemas import trades_to_ticks
from btlab.model.tick import split_valid_ticks
from btlab.model.timeframe import Timeframe
from btlab.store.base import Store
from btlab.store.health import HealthWriter

log = logging.getLogger(__name__)

#: exchanges whose trade ids are consecutive integers per symbol, and the REST path serving raw trades by id
#: (``fromId`` inclusive, ``limit``). Binance documents ``GET /api/v3/historicalTrades`` as a public market-data
#: endpoint; ccxt 4.5 still demands an API key for it, so btlab calls it through ccxt's transport
#: (:meth:`fetch`) and parses the answer with ccxt's own ``parse_trades``.
ID_BACKFILL: dict[str, str] = {"binance": "historicalTrades"}
BACKFILL_PAGE = 1000


@dataclass
class LiveReport:
    """What a live ingest did (counts since it started).

    Attributes:
        exchange, symbols, timeframes: what was ingested.
        ticks_written: valid trades written to the ``ticks`` table (re-writes of known trades included).
        recovered: stored ticks reloaded at start to rebuild the bars that were still open when the job stopped.
        backfilled: trades fetched over REST to fill trade-id gaps (at start, after reconnects, after drops).
        duplicates: trades dropped because their id was already seen.
        quarantined: malformed or impossible trades set aside; ``quarantine_reasons`` counts them per reason.
        late: trades that arrived after their window's bar was final, per timeframe.
        bars_written: final bars written per timeframe.
        id_gaps: trade-id gaps detected; ids_missing: trade ids still missing after backfill.
        reconnects: WebSocket reconnections.
        watermark: the event-time watermark per symbol at the end (UTC), None before the first trade.
    """

    exchange: str
    symbols: list[str]
    timeframes: list[str]
    ticks_written: int = 0
    recovered: int = 0
    backfilled: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    late: dict[str, int] = field(default_factory=dict)
    bars_written: dict[str, int] = field(default_factory=dict)
    id_gaps: int = 0
    ids_missing: int = 0
    reconnects: int = 0
    watermark: dict[str, pd.Timestamp | None] = field(default_factory=dict)

    def __str__(self) -> str:
        bars = ", ".join(f"{n:,} {tf}" for tf, n in self.bars_written.items()) or "none"
        late = ", ".join(f"{n:,} for {tf}" for tf, n in self.late.items() if n) or "none"
        return (
            f"{self.exchange} {','.join(self.symbols)}: {self.ticks_written:,} ticks written "
            f"({self.recovered:,} reloaded, {self.backfilled:,} backfilled over REST), bars written: {bars}; "
            f"duplicates {self.duplicates:,}, quarantined {self.quarantined:,}, late {late}; "
            f"trade-id gaps {self.id_gaps:,} ({self.ids_missing:,} ids still missing), reconnects {self.reconnects:,}"
        )


STOP_GRACE = 5.0
"""Seconds a stopping job waits for its subscriptions and clients to close before it goes on without them."""


async def _within(awaitable: Any, seconds: float) -> Any:
    """Await ``awaitable`` for at most ``seconds``; raise ``TimeoutError`` after that.

    Unlike ``asyncio.wait_for`` (Python 3.11), a cancellation of the caller is never lost when the awaited
    operation finishes at the same moment, and a timed-out operation is cancelled without waiting for it (a
    ccxt.pro future may never acknowledge a cancellation). Errors of the operation are raised as they are.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        raise TimeoutError(f"no answer within {seconds:g} s")
    return task.result()


async def _settle(tasks: Sequence[asyncio.Task], seconds: float) -> None:
    """Wait up to ``seconds`` for cancelled ``tasks`` to finish; retrieve their errors so none is logged later."""
    if not tasks:
        return
    await asyncio.wait(tasks, timeout=seconds)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()
        elif not t.done():
            log.warning("a subscription did not stop within %.0f s; leaving it behind", seconds)


def _int_ids(ids: Sequence[Any]) -> tuple[np.ndarray, bool]:
    """Trade ids as int64 and whether they are the exchange's own integers (else stable 64-bit hashes)."""
    try:
        return np.array([int(i) for i in ids], dtype=np.int64), True
    except (TypeError, ValueError):
        hashed = [int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "big") >> 1 for i in ids]
        return np.array(hashed, dtype=np.int64), False


def _ns(values: pd.Series) -> np.ndarray:
    """Times as int64 epoch nanoseconds UTC, whatever the resolution they come in (stores give microseconds)."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


class _Symbol:
    """Per-symbol state: the aggregator, the last trade id seen, ticks not yet written."""

    def __init__(self, symbol: str, agg: StreamingAggregator) -> None:
        self.symbol = symbol
        self.agg = agg
        self.last_id: int | None = None
        self.numeric_ids = True
        self.pending: list[pd.DataFrame] = []
        self.last_trade_wall = time.monotonic()
        self.quarantined = 0  # trades of this symbol set aside (bt_health figures per instrument)
        self.backfilled = 0  # trades of this symbol fetched over REST to fill trade-id gaps


class LiveIngest:
    """Ingest live trades of ``symbols`` into ticks and bars (see the module docstring).

    Args:
        exchange_id: ccxt id (``binance``).
        symbols: ccxt unified symbols.
        timeframes: bar timeframes built from the trades (e.g. ``["1s", "1m"]``).
        store: where ticks and bars go.
        producer: a :class:`btlab.stream.producer.StreamProducer` (or None: no topics).
        allowed_lateness: seconds a trade may lag the newest trade time and still count (the watermark delay).
        empty: windows without trades: ``skip`` (no bar) or ``flat`` (a zero-volume bar at the previous close).
        origin, ws_origin: override the exchange's REST / WebSocket base URLs (proxies, a local fake exchange).
        options: extra ccxt options.
        watch_timeout: seconds without a message before the subscription is considered dead and reconnected.
        max_backoff: upper bound in seconds of the reconnect backoff (1, 2, 4, ... seconds).
        flush_seconds: ticks are written at least this often (and always before the bars that contain them).
        backfill: fill trade-id gaps over REST (exchanges in :data:`ID_BACKFILL`).
        max_time_skew: seconds a trade time may differ from the stream's watermark (or, before the first trade,
            the exchange's clock) before it is quarantined as impossible.
        start_retry: a :class:`~btlab.marketdata.sources.ccxt.retry.RetryPolicy` for loading the markets at the start
            (default: 3 retries with backoff).

    Raises (from :meth:`run`):
        UnknownExchangeError, UnknownSymbolError: bad exchange or symbol (before anything is written).
        ExchangeUnavailableError: the exchange cannot be reached at the start (the message names the exchange, the
            request and why it failed: host not resolved, connection refused, ...).
    """

    def __init__(
        self,
        exchange_id: str,
        symbols: Sequence[str],
        timeframes: Sequence[str],
        store: Store,
        *,
        producer: Any = None,
        allowed_lateness: float = 2.0,
        empty: str = "skip",
        origin: str | None = None,
        ws_origin: str | None = None,
        options: dict[str, Any] | None = None,
        watch_timeout: float = 30.0,
        max_backoff: float = 30.0,
        flush_seconds: float = 1.0,
        backfill: bool = True,
        max_time_skew: float = 3600.0,
        start_retry: Any = None,
        health: HealthWriter | None = None,
    ) -> None:
        if not symbols:
            raise InvalidArgumentError("live ingest needs at least one symbol")
        if not timeframes:
            raise InvalidArgumentError("live ingest needs at least one timeframe")
        if allowed_lateness < 0:
            raise InvalidArgumentError(f"allowed lateness must be >= 0 seconds, got {allowed_lateness}")
        self.exchange_id = exchange_id
        self.symbols = list(symbols)
        self.timeframes = [Timeframe.parse(tf) for tf in timeframes]
        self.store = store
        self.producer = producer
        self.allowed_lateness = float(allowed_lateness)
        self.empty = empty
        self.origin, self.ws_origin = origin, ws_origin
        self.options = {"tradesLimit": 10_000, **(options or {})}
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.flush_seconds = flush_seconds
        self.backfill = backfill and exchange_id in ID_BACKFILL
        self.max_time_skew = float(max_time_skew)
        if start_retry is None:
            from btlab.marketdata.sources.ccxt.retry import RetryPolicy

            start_retry = RetryPolicy(max_retries=3, max_delay=max_backoff)
        self.start_retry = start_retry
        self.health = health
        self._server_ns: int | None = None
        self.report = LiveReport(exchange_id, self.symbols, [tf.value for tf in self.timeframes],
                                 late={tf.value: 0 for tf in self.timeframes},
                                 bars_written={tf.value: 0 for tf in self.timeframes})
        self._state = {s: _Symbol(s, self._new_aggregator()) for s in self.symbols}
        self._rest: Any = None
        self._stop = False
        self._last_flush = time.monotonic()
        self._seen_again = 0  # trades dropped before aggregation because their id was already seen

    def _new_aggregator(self) -> StreamingAggregator:
        return StreamingAggregator([tf.value for tf in self.timeframes], allowed_lateness=self.allowed_lateness,
                                   empty=self.empty)  # type: ignore[arg-type]

    # ---- public ------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to finish: pending ticks are written, open bars are not."""
        self._stop = True

    async def run(
        self,
        *,
        duration: float | None = None,
        idle_timeout: float | None = None,
        max_ticks: int | None = None,
        on_update: Callable[[LiveReport], None] | None = None,
    ) -> LiveReport:
        """Run until :meth:`stop`, ``duration`` seconds, ``idle_timeout`` seconds without any trade, or
        ``max_ticks`` trades received; then write pending ticks and return the :class:`LiveReport`.

        Steps: connect (markets, clock, symbols checked), recover every symbol from the store, subscribe and
        supervise (:meth:`_supervise`), and on the way out stop the subscriptions and write what is pending.
        ``on_update`` is called with the report about once a second (progress display).
        """
        from btlab.marketdata.sources.ccxt.exchange import make_exchange

        self._rest = make_exchange(self.exchange_id, origin=self.origin, options=self.options)
        try:
            await self._connect()
            for st in self._state.values():
                await self._recover(st)
            tasks = [asyncio.create_task(self._watch(st)) for st in self._state.values()]
            try:
                await self._supervise(tasks, duration=duration, idle_timeout=idle_timeout, max_ticks=max_ticks,
                                      on_update=on_update)
            finally:
                self._stop = True  # a watch loop whose cancellation is lost still ends at its next turn
                for t in tasks:
                    t.cancel()
                await _settle(tasks, STOP_GRACE)
                self._flush_all()
                if self.producer is not None:
                    self.producer.flush()
                self._final_health()
        finally:
            close = getattr(self._rest, "close", None)
            if close is not None:
                close()
        return self._snapshot()

    async def _connect(self) -> None:
        """Load the markets (a few retries, then one line naming the exchange and what failed:
        ExchangeUnavailableError), read the exchange's clock if it has one, check the symbols."""
        from btlab.marketdata.sources.ccxt.exchange import UnknownSymbolError
        from btlab.marketdata.sources.ccxt.retry import Counters, call

        await asyncio.to_thread(call, self._rest, self.start_retry, Counters(), "load_markets",
                                self._rest.load_markets, retry_log_level=logging.INFO)
        try:
            self._server_ns = int(await asyncio.to_thread(self._rest.fetch_time)) * 1_000_000
        except Exception:  # noqa: BLE001 - not every exchange has a clock endpoint; the watermark takes over
            self._server_ns = None
        for symbol in self.symbols:
            if symbol not in self._rest.markets:
                raise UnknownSymbolError(f"{self.exchange_id} has no market {symbol!r}")

    async def _supervise(self, tasks: Sequence[asyncio.Task], *, duration: float | None,
                         idle_timeout: float | None, max_ticks: int | None,
                         on_update: Callable[[LiveReport], None] | None) -> None:
        """Every 0.2 s: raise a subscription's error, flush ticks when due, report progress, and return once a stop
        condition holds (:meth:`stop`, ``duration``, ``idle_timeout`` on every symbol, ``max_ticks``)."""
        started = time.monotonic()
        while not self._stop:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for t in tasks:
                if t.done() and t.exception():
                    raise t.exception()  # type: ignore[misc]
            if now - self._last_flush >= self.flush_seconds:
                self._flush_all()
            if self.health is not None and self.health.due():
                self._write_health()
            if on_update is not None:
                on_update(self._snapshot())
            if duration is not None and now - started >= duration:
                return
            if idle_timeout is not None and all(now - st.last_trade_wall >= idle_timeout
                                                for st in self._state.values()):
                return
            if max_ticks is not None and self._received() >= max_ticks:
                return

    def late_trades(self, symbol: str) -> pd.DataFrame:
        """The last late trades of ``symbol``: ``ts`` (UTC), ``price``, ``amount``, ``trade_id`` (int), ``watermark``
        (at arrival, UTC), ``timeframes`` (whose final bar each missed); see ``StreamingAggregator.late_log``."""
        return self._state[symbol].agg.late_log()

    # ---- start-up recovery -----------------------------------------------------------------------------------
    async def _recover(self, st: _Symbol) -> None:
        """Rebuild the open windows from stored ticks and backfill from the last stored trade id."""
        starts = []
        for tf in self.timeframes:
            last = self.store.bar_span(exchange=self.exchange_id, symbol=st.symbol, timeframe=tf).last
            starts.append(None if last is None else last + pd.Timedelta(seconds=tf.seconds))
        last_tick = self.store.tick_span(exchange=self.exchange_id, symbol=st.symbol).last
        if last_tick is None:
            return
        longest = max(self.timeframes)
        tick_window = last_tick.floor(f"{longest.seconds}s")
        known = [s for s in starts if s is not None]
        start = min(known) if len(known) == len(starts) else min([*known, tick_window])
        ticks = self.store.read_ticks(exchange=self.exchange_id, symbol=st.symbol, start=start)
        if not ticks.empty:
            ids, st.numeric_ids = _int_ids(ticks["trade_id"].tolist())
            ts = _ns(ticks["ts"])
            order = np.lexsort((ids, ts))
            st.agg.add_batch(ts[order], ticks["price"].to_numpy("float64")[order],
                             ticks["amount"].to_numpy("float64")[order], ids[order])
            self.report.recovered += len(ticks)
            self._write_bars(st)
        if st.numeric_ids:
            last = self.store.last_trade(exchange=self.exchange_id, symbol=st.symbol, start=last_tick)
            assert last is not None
            st.last_id = int(last.trade_id)
            if self.backfill:
                await self._backfill(st, None)

    # ---- live ---------------------------------------------------------------------------------------------------
    async def _watch(self, st: _Symbol) -> None:
        from btlab.marketdata.sources.ccxt.exchange import make_exchange

        attempt = 0
        reconnecting = False
        st.last_trade_wall = time.monotonic()  # the idle clock starts with the subscription
        while not self._stop:
            client = make_exchange(self.exchange_id, origin=self.origin, ws_origin=self.ws_origin, pro=True,
                                   options=self.options)
            try:
                if reconnecting and self.backfill and st.numeric_ids and st.last_id is not None:
                    await self._backfill(st, None)  # what the exchange traded while we were away, up to now
            except BaseException:  # stopped (cancelled) or failed while backfilling: the client is closed first
                await self._close_client(client)
                raise
            reconnecting = True
            try:
                while not self._stop:
                    trades = await _within(client.watch_trades(st.symbol), self.watch_timeout)
                    attempt = 0
                    if trades:
                        await self._on_trades(st, trades)  # on the loop: store writes stay on one thread
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the subscription means: reconnect
                if isinstance(exc, BtlabError):
                    raise
                self.report.reconnects += 1
                delay = min(self.max_backoff, 2.0 ** attempt) * (0.5 + np.random.random() / 2)
                attempt += 1
                log.warning("%s %s: %s: reconnecting in %.1f s", self.exchange_id, st.symbol,
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
            finally:
                await self._close_client(client)

    @staticmethod
    async def _close_client(client: Any) -> None:
        """Close a ccxt.pro client (its WebSocket and HTTP sessions) within STOP_GRACE, even in a task being
        cancelled: the close runs as its own task, shielded, so a second cancellation does not leave the session
        open (ccxt then warns "requires to release all resources" at exit)."""
        closing = asyncio.ensure_future(client.close())
        try:
            await asyncio.wait({asyncio.shield(closing)}, timeout=STOP_GRACE)
        except asyncio.CancelledError:
            await asyncio.wait({closing}, timeout=STOP_GRACE)
            raise
        finally:
            if closing.done() and not closing.cancelled():
                closing.exception()  # closing a broken client may fail: retrieved, not raised

    def _quarantine(self, st: _Symbol, bad: pd.DataFrame) -> None:
        self.report.quarantined += len(bad)
        st.quarantined += len(bad)
        for reason, n in bad["reason"].value_counts().items():
            self.report.quarantine_reasons[str(reason)] = self.report.quarantine_reasons.get(str(reason), 0) + int(n)

    async def _on_trades(self, st: _Symbol, trades: Sequence[dict[str, Any]]) -> None:
        """Validate a batch from the subscription, fill trade-id gaps before the trades that reveal them, feed."""
        raw = trades_to_ticks(trades, self.exchange_id, st.symbol)
        valid, bad = split_valid_ticks(raw, f"{self.exchange_id} {st.symbol} live")
        no_id = valid["trade_id"].isna().to_numpy()
        if no_id.any():
            bad = pd.concat([bad, valid[no_id].assign(reason="missing trade id")], ignore_index=True)
            valid = valid[~no_id].reset_index(drop=True)
        ts = _ns(valid["ts"])
        ref = st.agg.watermark_ns if st.agg.watermark_ns is not None else self._server_ns
        if ref is not None:
            skew = np.abs(ts - ref) > int(self.max_time_skew * 1e9)
            if skew.any():  # e.g. a time in seconds read as milliseconds: 1970
                bad = pd.concat([bad, valid[skew].assign(reason="time out of range")], ignore_index=True)
                valid = valid[~skew].reset_index(drop=True)
        if len(bad):
            self._quarantine(st, bad)
        if valid.empty:
            return
        ids, numeric = _int_ids(valid["trade_id"].tolist())
        st.numeric_ids = st.numeric_ids and numeric
        if not (st.numeric_ids and self.backfill and st.last_id is not None):
            self._feed(st, valid, ids)
            return
        # consecutive ids, every hole filled: an id at or below the last one seen is a trade we already have
        seen = ids <= st.last_id
        if seen.any():
            self._seen_again += int(seen.sum())
            ids, valid = ids[~seen], valid[~seen].reset_index(drop=True)
            if valid.empty:
                return
        # walk the batch in id order and fill every hole before the trade that follows it
        order = np.argsort(ids, kind="stable")
        ids, valid = ids[order], valid.iloc[order].reset_index(drop=True)
        prev = np.concatenate(([st.last_id], np.maximum.accumulate(ids)[:-1]))
        holes = np.flatnonzero(ids > prev + 1)
        begin = 0
        for k in holes:
            if k > begin:
                self._feed(st, valid.iloc[begin:k], ids[begin:k])
            await self._backfill(st, int(ids[k]))
            begin = k
        self._feed(st, valid.iloc[begin:], ids[begin:])

    def _feed(self, st: _Symbol, ticks: pd.DataFrame, ids: np.ndarray) -> None:
        """Write-buffer and aggregate valid ticks (arrival order); store final bars (after their ticks)."""
        if ticks.empty:
            return
        st.last_trade_wall = time.monotonic()  # live or backfilled: the stream is not idle
        st.pending.append(ticks)
        ts = _ns(ticks["ts"])
        waiting = st.agg.add_batch(ts, ticks["price"].to_numpy("float64"), ticks["amount"].to_numpy("float64"), ids)
        if st.numeric_ids:
            st.last_id = int(ids.max()) if st.last_id is None else max(st.last_id, int(ids.max()))
        if waiting:
            self._flush_ticks(st)
            self._write_bars(st)

    def _fetch_page(self, symbol: str, from_id: int) -> list[dict[str, Any]]:
        """One page of raw trades from ``from_id`` (inclusive), oldest first, as ccxt unified trades (blocking)."""
        rest = self._rest
        market = rest.market(symbol)
        url = f"{rest.urls['api']['public']}/{ID_BACKFILL[self.exchange_id]}?" + rest.urlencode(
            {"symbol": market["id"], "fromId": from_id, "limit": BACKFILL_PAGE}
        )
        rest.throttle(1)
        return rest.parse_trades(rest.fetch(url, "GET"), market)

    async def _fetch_by_id(self, symbol: str, from_id: int) -> list[dict[str, Any]]:
        """:meth:`_fetch_page` in a worker thread, retried with backoff on the loop's clock: the other
        subscriptions, flushes and the stop/idle checks go on while a backfill waits."""
        last: Exception | None = None
        for attempt in range(5):
            try:
                return await asyncio.to_thread(self._fetch_page, symbol, from_id)
            except Exception as exc:  # noqa: BLE001 - network/exchange errors: retry with backoff, then give up
                last = exc
                await asyncio.sleep(min(self.max_backoff, 0.5 * 2**attempt))
        log.warning("%s %s: backfill from trade id %d failed: %s", self.exchange_id, symbol, from_id, last)
        return []

    async def _backfill(self, st: _Symbol, until_id: int | None) -> None:
        """Fetch trades ``last_id+1 .. until_id-1`` (or up to now) over REST and feed them in id order.

        Ids still missing afterwards (the exchange could not serve them) are counted in ``ids_missing``."""
        assert st.last_id is not None
        self.report.id_gaps += 1 if until_id is not None else 0
        cursor = st.last_id + 1
        while until_id is None or cursor < until_id:
            page = await self._fetch_by_id(st.symbol, cursor)
            if not page:
                break
            raw = trades_to_ticks(page, self.exchange_id, st.symbol)
            valid, bad = split_valid_ticks(raw, f"{self.exchange_id} {st.symbol} backfill")
            if len(bad):
                self._quarantine(st, bad)
            if valid.empty:
                break
            ids, _ = _int_ids(valid["trade_id"].tolist())
            keep = ids >= cursor if until_id is None else (ids >= cursor) & (ids < until_id)
            if keep.any():
                order = np.argsort(ids[keep], kind="stable")
                chunk = valid[keep].iloc[order].reset_index(drop=True)
                self.report.backfilled += len(chunk)
                st.backfilled += len(chunk)
                self._feed(st, chunk, ids[keep][order])
            cursor = int(ids.max()) + 1
            if len(page) < BACKFILL_PAGE:
                break
        if until_id is not None and cursor < until_id:
            self.report.ids_missing += until_id - cursor

    # ---- writes ---------------------------------------------------------------------------------------------------
    def _flush_ticks(self, st: _Symbol) -> None:
        if not st.pending:
            return
        ticks = pd.concat(st.pending, ignore_index=True)
        st.pending.clear()
        self.store.upsert("ticks", ticks)
        self.report.ticks_written += len(ticks)
        if self.producer is not None:
            self.producer.send_ticks(ticks)

    def _flush_all(self) -> None:
        for st in self._state.values():
            self._flush_ticks(st)
        self._last_flush = time.monotonic()

    def _write_bars(self, st: _Symbol) -> None:
        for tf, bars in st.agg.pop_bars().items():
            if bars.empty:
                continue
            self.store.write_bars(bars, exchange=self.exchange_id, symbol=st.symbol, timeframe=tf,
                                  source=f"live:{self.exchange_id}")
            self.report.bars_written[tf] = self.report.bars_written.get(tf, 0) + len(bars)
            if self.producer is not None:
                self.producer.send_bars(bars, exchange=self.exchange_id, symbol=st.symbol, timeframe=tf)

    # ---- health ---------------------------------------------------------------------------------------------------
    def _write_health(self) -> None:
        """Write the interval's figures to ``bt_health`` (:class:`~btlab.store.health.HealthWriter`): per instrument
        ``exchange:symbol`` the late trades (those late for the shortest timeframe: a trade whose longer window is
        final has a final shorter window too), quarantined trades and trades fetched to fill trade-id gaps; the
        exchange's reconnects; rows/s into ``ticks`` and ``ohlcv``; the heartbeat."""
        assert self.health is not None
        shortest = min(self.timeframes).value
        counts: dict[tuple[str, str], float] = {("reconnects", self.exchange_id): self.report.reconnects}
        for st in self._state.values():
            subject = f"{self.exchange_id}:{st.symbol}"
            counts[("late_trades", subject)] = st.agg.late_by_timeframe.get(shortest, 0)
            counts[("quarantined_trades", subject)] = st.quarantined
            counts[("trade_id_gaps_filled", subject)] = st.backfilled
        self.health.write(counts, {"ticks": self.report.ticks_written, "ohlcv": sum(self.report.bars_written.values())})

    def _final_health(self) -> None:
        """The last interval's figures at stop; a failure is logged, not raised over the error that stopped the job."""
        if self.health is None:
            return
        try:
            self._write_health()
        except Exception as exc:  # noqa: BLE001 - the store may be why the job stops
            log.warning("%s: the last bt_health figures were not written: %s", self.exchange_id, exc)

    def _received(self) -> int:
        return self._seen_again + sum(st.agg.accepted_ticks + st.agg.duplicate_ticks for st in self._state.values())

    def _snapshot(self) -> LiveReport:
        r = self.report
        r.duplicates = self._seen_again + sum(st.agg.duplicate_ticks for st in self._state.values())
        late: dict[str, int] = {tf.value: 0 for tf in self.timeframes}
        for st in self._state.values():
            for tf, n in st.agg.late_by_timeframe.items():
                late[tf] = late.get(tf, 0) + n
        r.late = late
        r.watermark = {
            st.symbol: None if st.agg.watermark_ns is None else pd.Timestamp(st.agg.watermark_ns, tz="UTC")
            for st in self._state.values()
        }
        return r
