"""Paper trading: live trades -> bar topic -> Backtrader live feed -> the strategy on the simulated broker, recorded.

The path of :func:`run_paper`, all in one process:

1. **Live ingest** (:class:`~btlab.marketdata.sources.ccxt.live.LiveIngest`, the ``btlab ingest live`` path) runs
   in a thread with its own event loop and its own store connection: exchange trades (ccxt.pro ``watch_trades``)
   become ticks and bars by event time, both written to the store as ``ingest live`` writes them. Each final bar
   of the run's timeframe is also published to the run's **bar topic** (default ``<prefix>.paper.bars.<tf>``),
   keyed ``exchange:symbol``, with the headers a replay carries (``btlab-replay`` = the run id, ``btlab-seq`` =
   1, 2, 3, ... per key). Ticks are not published by a paper run (it consumes bars; ``btlab ingest live`` publishes
   ticks for others).
2. **The feed** is the same :class:`~btlab.backtest.kafka_feed.KafkaSource` / ``KafkaData`` live feed a backtest
   from a replayed topic uses, reading the BAR topic (not the tick topic) and only this run's records
   (``replay_id`` = run id): a missing or repeated bar is an error, never a silently different run.
3. **The strategy** runs on Backtrader's simulated broker (cash, commission, sizing and slippage as for
   backtests) and the recorder writes ``bt_equity``, ``bt_orders`` and ``bt_trades`` while it runs (every
   ``flush_seconds`` of wall time; the run row's heartbeat too, also while no bar arrives). The run's status is
   ``running`` until it stops, then ``stopped`` with its metrics over the bars played; a failure (the exchange
   or the broker lost, an error in the strategy) is ``failed`` with the error.

Stops: SIGINT/SIGTERM (main thread: after the current bar; ``stop_signal`` says which), ``idle_timeout``
seconds without a trade (the ingest stops, writes the end marker, and the feed plays every bar published before
it ends; idle before any bar: the run stops with no bar and no metrics), ``max_bars`` strategy steps, or :meth:`PaperRun.stop` from another thread. The trades of a paper run
equal those of a backtest over the bars the live path stored for the same range (the path changes nothing).

One paper run per topic at a time: two runs writing into one topic at once are refused by the feed (give each its
own ``topic``). The strategy starts with no history: its warm-up is played live.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from btlab.backtest.compat import bt
from btlab.backtest.kafka_feed import KafkaSource
from btlab.backtest.recorder import RunControl
from btlab.backtest.runner import (
    BacktestResult,
    _add_recorder,
    _find_recorder,
    _plan,
    _played_bars,
    _result,
    _run_row,
    _source_cerebro,
    _stop_on_signals,
    new_run_id,
)
from btlab.errors import InvalidArgumentError
from btlab.store import Store, open_store
from btlab.store.factory import reopen_target
from btlab.stream.codec import iter_bar_records
from btlab.stream.config import StreamConfig
from btlab.stream.producer import StreamProducer
from btlab.stream.replay import ABORTED, REPLAY_HEADER, SEQ_HEADER
from btlab.stream.topics import bars_topic

__all__ = ["PaperResult", "PaperRun", "paper_topic", "run_paper"]

log = logging.getLogger(__name__)

#: health ``service`` name of a paper run's live ingest (``btlab health --service paper``)
HEALTH_SERVICE = "paper"


def paper_topic(timeframe: str, prefix: str = "btlab") -> str:
    """The default bar topic of paper runs: ``<prefix>.paper.bars.<timeframe>`` (not the ``ingest live`` bar topic,
    whose records carry no sequence headers)."""
    return bars_topic(timeframe, f"{prefix}.paper")


@dataclass
class PaperResult:
    """The outcome of :func:`run_paper`.

    Attributes:
        run: the recorded run as a :class:`~btlab.backtest.runner.BacktestResult` (metrics, equity, trades and
            orders of the bars played; ``run.bars`` the bars played, bar OPEN times UTC). A run stopped before its
            first bar has no metrics (``run.summary`` is None) and empty frames.
        stopped_by: ``SIGINT``/``SIGTERM``, ``idle`` (no trade for ``idle_timeout`` s), ``max_bars`` or ``stop``
            (:meth:`PaperRun.stop`).
        topic: the bar topic the run consumed.
        live: the live ingest's :class:`~btlab.marketdata.sources.ccxt.live.LiveReport`.
        bars_published: bars the ingest published to the topic for this run.
    """

    run: BacktestResult
    stopped_by: str
    topic: str
    live: Any = field(repr=False)
    bars_published: int = 0

    @property
    def exit_code(self) -> int:
        """130 after SIGINT, 143 after SIGTERM (128 + signal number, as shells report), else 0."""
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.stopped_by, 0)


class _Publisher:
    """The ``producer`` the live ingest is given: final bars of the run's timeframe go to the paper topic with the
    replay headers (``btlab-replay`` = run id, ``btlab-seq`` per key); ticks are not published. Used only by the
    ingest thread (a :class:`StreamProducer` is not thread-safe)."""

    def __init__(self, producer: StreamProducer, topic: str, run_id: str, timeframe: str) -> None:
        self.producer, self.topic, self.timeframe = producer, topic, timeframe
        self.run_id = producer.begin_replay(run_id)  # counts records per partition for the end markers
        self._rid = run_id.encode()
        self._seq: dict[bytes, int] = {}
        self.sent = 0

    def send_ticks(self, ticks: Any, **_: Any) -> int:
        return 0

    def send_bars(self, bars: Any, *, exchange: str, symbol: str, timeframe: str) -> int:
        if str(timeframe) != self.timeframe:
            return 0
        n = 0
        for key, value, ts_ms, _tf in iter_bar_records(bars, exchange=exchange, symbol=symbol, timeframe=timeframe,
                                                       source=f"live:{exchange}"):
            seq = self._seq.get(key, 0) + 1
            self._seq[key] = seq
            self.producer.produce(self.topic, key, value, ts_ms,
                                  headers=[(REPLAY_HEADER, self._rid), (SEQ_HEADER, str(seq).encode())])
            n += 1
        self.producer.flush()  # a bar is for the strategy now, not after the producer's batching delay
        self.sent += n
        return n

    def flush(self) -> None:
        self.producer.flush()

    def end(self, complete: bool) -> None:
        """End markers on every partition of the topic: ``complete`` (the feed plays every bar, then ends) or
        ``aborted`` (the run already stopped)."""
        self.producer.end_replay([self.topic], reason=None if complete else ABORTED)


class _PaperSource(KafkaSource):
    """The run's :class:`KafkaSource`, which also raises the live ingest's error in the main thread (from the
    feed's ``_load``, so the recorder stores the run as failed) and keeps the run row's heartbeat going while no
    bar arrives."""

    ingest_error: BaseException | None = None
    on_wait: Any = None

    def next_bar(self, key: str, sub: int = 0, wait_s: float = 0.05) -> Any:
        if self.ingest_error is not None:
            raise self.ingest_error
        bar = super().next_bar(key, sub, wait_s)
        if bar is None and self.on_wait is not None:
            self.on_wait()
        return bar


class _StopAfter(bt.Analyzer):
    """Stops the run (``cerebro.runstop``) after ``max_bars`` strategy steps (``hit`` says whether it did), or at
    the next step once ``stop_event`` is set."""

    params: Any = (("max_bars", None), ("stop_event", None))

    def __init__(self) -> None:
        self.steps = 0
        self.hit = False

    def next(self) -> None:
        self.steps += 1
        if self.p.stop_event is not None and self.p.stop_event.is_set():
            self.strategy.env.runstop()
        if self.p.max_bars is not None and self.steps >= self.p.max_bars and not self.hit:
            self.hit = True
            self.strategy.env.runstop()


class PaperRun:
    """A paper run being prepared or running; :func:`run_paper` is ``PaperRun(...).run()``.

    Takes :func:`run_paper`'s arguments. :meth:`stop` may be called from any thread: the run stops after the
    current bar and is recorded as ``stopped`` (``stopped_by="stop"``).
    """

    def __init__(self, strategy: str | type = "sma_cross", *, symbols: str | Sequence[str] = "BTC/USDT",
                 exchange: str = "binance", timeframe: str = "1m", params: Mapping[str, Any] | None = None,
                 cash: float = 10_000.0, commission: float = 0.001, size_pct: float | None = 95.0,
                 stake: float | None = None, slippage_pct: float = 0.0, slippage_fixed: float = 0.0,
                 store: Store | str | None = None, kafka: StreamConfig | str | None = None,
                 topic: str | None = None, run_id: str | None = None, idle_timeout: float | None = None,
                 max_bars: int | None = None, lateness: float = 2.0, empty: str = "skip",
                 api_url: str | None = None, ws_url: str | None = None, watch_timeout: float = 30.0,
                 health_interval: float = 10.0, flush_seconds: float = 2.0) -> None:
        self.plan = _plan(strategy, symbol=None, symbols=symbols, exchange=exchange, timeframe=timeframe,
                          timeframes=None, start=None, end=None, params=params, cash=cash, commission=commission,
                          size_pct=size_pct, stake=stake, slippage_pct=slippage_pct, slippage_fixed=slippage_fixed,
                          calendar=None, session=None)
        if self.plan.venue.calendar != "24/7":
            raise InvalidArgumentError(f"paper trading needs a 24/7 crypto exchange (a ccxt id), not {exchange!r}")
        for value, what in ((idle_timeout, "idle_timeout"), (max_bars, "max_bars")):
            if value is not None and not value > 0:
                raise InvalidArgumentError(f"{what} must be > 0, got {value}")
        self.config = kafka if isinstance(kafka, StreamConfig) else (
            StreamConfig(kafka) if kafka else StreamConfig.require())
        self.topic = topic or paper_topic(self.plan.base_tf.value, self.config.prefix)
        self.run_id = run_id or new_run_id()
        self.store_arg = store
        self.idle_timeout, self.max_bars = idle_timeout, max_bars
        self.ingest_kwargs = dict(allowed_lateness=lateness, empty=empty, origin=api_url, ws_origin=ws_url,
                                  watch_timeout=watch_timeout)
        self.health_interval, self.flush_seconds = health_interval, flush_seconds
        self._stop = threading.Event()
        self._ingest_stopping = threading.Event()
        self._idle_empty = threading.Event()
        self._last_beat = 0.0
        self._cerebro: Any = None
        self._ingest: Any = None

    def stop(self) -> None:
        """Ask the run to stop after the current bar (any thread)."""
        self._stop.set()
        self._request_stop()

    def _request_stop(self) -> None:
        if self._cerebro is not None:
            self._cerebro.runstop()

    def run(self) -> PaperResult:
        """Run until stopped (see the module docstring); returns the :class:`PaperResult`.

        Raises:
            StreamConfigError: no broker given and ``BTLAB_KAFKA`` unset.
            BrokerUnavailableError: the broker did not answer within ``connect_timeout_s`` (nothing recorded).
            UnknownExchangeError, UnknownSymbolError, ExchangeUnavailableError: from the live ingest, after the
                run row was written (stored as ``failed`` with the error).
            StreamError: the feed saw a missing or repeated bar, or another run's records in the topic (``failed``).
            Exception: an error inside the strategy, after the run is stored as ``failed``.
        """
        from btlab.marketdata.sources.ccxt.live import LiveIngest

        plan = self.plan
        producer = StreamProducer(self.config)  # the broker answers, or BrokerUnavailableError before anything
        producer.ensure_topic(self.topic)
        owns_store = not isinstance(self.store_arg, Store)
        the_store = open_store(self.store_arg) if owns_store else self.store_arg  # type: ignore[arg-type]
        self._run_store = the_store
        source = _PaperSource(self.topic, config=self.config, replay_id=self.run_id)
        thread: threading.Thread | None = None
        try:
            cerebro, feeds = _source_cerebro(plan, source)
            self._cerebro = cerebro
            cerebro.addanalyzer(_StopAfter, _name="btlab_stop_after", max_bars=self.max_bars,
                                stop_event=self._stop)
            run_row = _run_row(plan, {}, self.run_id, None)
            run_row["config"] = {**run_row["config"], "paper": {"topic": self.topic, "source": "live trades"}}
            control = RunControl()  # set by the signal handlers; the recorder is not told (a stop is the end)
            _add_recorder(cerebro, plan, run_row, store=the_store, played=feeds, progress=None, bars_total=0,
                          flush_bars=10_000, flush_seconds=self.flush_seconds, feed_bars=None, warnings=[],
                          control=None, end_status="stopped")
            source.on_wait = self._heartbeat
            publisher = _Publisher(producer, self.topic, self.run_id, plan.base_tf.value)
            from btlab.store.health import HealthWriter

            ingest_store = _thread_store(the_store)
            try:
                self._ingest = LiveIngest(plan.config.exchange, plan.names, [plan.base_tf.value], ingest_store,
                                          producer=publisher,
                                          health=HealthWriter(ingest_store, HEALTH_SERVICE,
                                                              interval=self.health_interval),
                                          **self.ingest_kwargs)
            except BaseException:
                if ingest_store is not the_store:
                    ingest_store.close()
                raise
            box: dict[str, Any] = {}
            thread = threading.Thread(target=self._ingest_thread, args=(source, publisher, ingest_store, box),
                                      name="btlab-paper-ingest", daemon=True)
            thread.start()
            try:
                with _stop_on_signals(cerebro, control):
                    strategies = cerebro.run()  # (it clears a runstop() made before it started: see _heartbeat)
            except BaseException as exc:
                recorder = _find_recorder(cerebro)
                if recorder is not None:
                    recorder.fail(exc)
                raise
            finally:
                self._ingest_stopping.set()  # the run ended first: the topic's replay ends as aborted
                self._ingest.stop()
                thread.join(60)
            strat = strategies[0]
            if control.signum:
                stopped_by = control.signal_name
            elif strat.analyzers.btlab_stop_after.hit:
                stopped_by = "max_bars"
            elif self._stop.is_set():
                stopped_by = "stop"
            else:
                stopped_by = "idle"
            bars = _played_bars(feeds, strat)
            result = _result(plan, strat, bars, self.run_id, None, the_store)
            return PaperResult(run=result, stopped_by=stopped_by, topic=self.topic, live=box.get("report"),
                               bars_published=publisher.sent)
        finally:
            source.close()
            if owns_store:
                the_store.close()

    def _heartbeat(self) -> None:
        """While the feed waits for a bar, in the main thread: a stop asked for before the run started, and the
        recorder's periodic write (heartbeat)."""
        if (self._stop.is_set() or self._idle_empty.is_set()) and self._cerebro is not None:
            self._cerebro.runstop()
        now = time.monotonic()
        if now - self._last_beat < 1.0:
            return
        self._last_beat = now
        recorder = _find_recorder(self._cerebro) if self._cerebro is not None else None
        if recorder is not None and recorder.status == "running":
            recorder.flush()  # writes the run row only when its heartbeat is due (every flush_seconds)

    def _ingest_thread(self, source: _PaperSource, publisher: _Publisher, store: Store, box: dict[str, Any]) -> None:
        """Run the live ingest until it stops; then end the topic's replay (complete when it ended by itself, so the
        feed plays every bar and ends; aborted when the run stopped first). Its error goes to the feed."""
        try:
            box["report"] = asyncio.run(self._ingest.run(idle_timeout=self.idle_timeout))
            if publisher.sent == 0 and not self._ingest_stopping.is_set():
                self._idle_empty.set()  # idle before any bar: the run stops (a feed that ends empty is an error)
                self._request_stop()
            publisher.end(complete=not self._ingest_stopping.is_set() and publisher.sent > 0)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread through the feed
            source.ingest_error = exc
            box["report"] = self._ingest.report
            if self._ingest_stopping.is_set():  # the run has ended: nobody reads the feed any more
                log.warning("paper run %s: the live ingest failed while stopping: %s", self.run_id, exc)
        finally:
            if store is not self._run_store:
                store.close()


def _thread_store(store: Store) -> Store:
    """The store the ingest thread writes through: a DuckDB store itself (its calls are serialized by its lock, and
    a second DuckDB connection to the file in one process is not safe under concurrent writes), else the store opened
    again (a QuestDB store is one per thread)."""
    from btlab.store.duckdb import DuckDBStore

    return store if isinstance(store, DuckDBStore) else open_store(reopen_target(store))


def run_paper(strategy: str | type = "sma_cross", **kwargs: Any) -> PaperResult:
    """Paper-trade ``strategy`` on live trades (see the module docstring) until stopped; record it as it runs.

    Args:
        strategy: bundled name (``sma_cross``), ``package.module:Class``, ``file.py:Class`` or a ``bt.Strategy``.
        symbols: ccxt unified symbols (a list or comma-separated text); exchange: a ccxt id with ccxt.pro
            WebSocket support (24/7 venues only); timeframe: the bars the strategy gets (``1s``, ``1m``, ...).
        params, cash, commission, size_pct, stake, slippage_pct, slippage_fixed: as :func:`run_backtest`.
        store: a Store or an address (default ``BTLAB_STORE``/the default DuckDB file): ticks, bars and the run.
        kafka: a :class:`StreamConfig` or ``host:port`` (default ``BTLAB_KAFKA``); topic: the bar topic (default
            :func:`paper_topic`); run_id: default a new one (also the replay id in the topic's headers).
        idle_timeout: stop after this many seconds without a trade (every published bar is still played);
            max_bars: stop after this many strategy steps. None: run until a signal or :meth:`PaperRun.stop`.
        lateness, empty, api_url, ws_url, watch_timeout, health_interval: the live ingest's ``--lateness``,
            ``--empty``, ``--api-url``, ``--ws-url``, ``--watch-timeout``, ``--health-interval`` (its figures go
            to ``bt_health`` as service ``paper``).
        flush_seconds: the recorder writes at least this often (wall time) while bars arrive or are awaited.

    Signals: in the main thread SIGINT/SIGTERM stop the run after the current bar (``stopped``); the previous
    handlers are restored afterwards.

    Returns: :class:`PaperResult` (``exit_code`` 130/143 after a signal).

    Raises: see :meth:`PaperRun.run`; UnknownStrategyError, StrategyParameterError, InvalidArgumentError before
    anything is opened.
    """
    return PaperRun(strategy, **kwargs).run()
