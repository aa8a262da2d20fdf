"""The store's tables, declared once and rendered to DDL by each backend.

Contract (ARCHITECTURE.md): both backends have the same tables and columns; every table has a natural key and a
write of an existing key replaces that row (QuestDB ``DEDUP UPSERT KEYS``, DuckDB ``PRIMARY KEY`` +
``INSERT OR REPLACE``). All timestamps are UTC; the store keeps microsecond precision.
Columns may be added; none renamed without a migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnKind = Literal["timestamp", "symbol", "string", "double", "long"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: ``kind`` is backend-neutral (``symbol`` = low-cardinality text, QuestDB SYMBOL)."""

    name: str
    kind: ColumnKind


@dataclass(frozen=True, slots=True)
class Table:
    """A table: its columns, its natural key and its QuestDB partitioning (designated timestamp is ``ts``)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: Literal["DAY", "MONTH", "YEAR"]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def kinds(self, kind: ColumnKind) -> tuple[str, ...]:
        """Names of the columns of one kind, in table order."""
        return tuple(c.name for c in self.columns if c.kind == kind)


def _cols(spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec.split(","):
        name, kind = item.split()
        out.append(Column(name, kind))  # type: ignore[arg-type]
    return tuple(out)


#: Headline metrics stored as columns of ``bt_runs`` (all of :class:`btlab.backtest.metrics.Metrics` is also
#: stored as JSON in ``bt_runs.metrics``).
RUN_METRIC_COLUMNS: tuple[Column, ...] = _cols(
    "total_return double, cagr double, volatility double, sharpe double, sortino double, max_drawdown double,"
    "max_drawdown_days double, calmar double, win_rate double, profit_factor double, avg_trade double,"
    "exposure double, n_trades long, end_value double"
)

OHLCV = Table(
    "ohlcv",
    _cols(
        "ts timestamp, exchange symbol, symbol symbol, timeframe symbol, open double, high double, low double,"
        "close double, volume double, trades long, source symbol, vwap double"
    ),
    key=("ts", "exchange", "symbol", "timeframe"),
    partition_by="MONTH",
)

TICKS = Table(
    "ticks",
    _cols("ts timestamp, exchange symbol, symbol symbol, trade_id string, price double, amount double, side symbol"),
    key=("ts", "exchange", "symbol", "trade_id"),
    partition_by="DAY",
)

#: ``bt_runs``: ``heartbeat`` is the wall time (UTC) of the recorder's last write while the run is ``running`` (a
#: ``running`` run whose heartbeat is old was killed without a chance to say so: shown as stale); ``warnings`` holds
#: human-readable warnings, one per line (e.g. rejected orders); ``orders_rejected`` / ``orders_margin`` /
#: ``orders_canceled`` count orders that ended Rejected / Margin (not enough cash) / Canceled or Expired.
BT_RUNS = Table(
    "bt_runs",
    _cols(
        "ts timestamp, run_id string, sweep_id string, strategy string, params string, exchange symbol,"
        "symbols string, timeframe symbol, data_from timestamp, data_to timestamp, bars long, calendar symbol,"
        "cash double, commission double, config string, config_hash string, data_hash string,"
        "btlab_version string, backtrader_version string, status symbol, error string, finished_at timestamp,"
        "metrics string, heartbeat timestamp, warnings string, orders_rejected long, orders_margin long,"
        "orders_canceled long"
    )
    + RUN_METRIC_COLUMNS,
    key=("run_id",),
    partition_by="YEAR",
)

BT_EQUITY = Table(
    "bt_equity",
    _cols("ts timestamp, run_id symbol, value double, cash double, drawdown double, position_value double"),
    key=("ts", "run_id"),
    partition_by="MONTH",
)

BT_TRADES = Table(
    "bt_trades",
    _cols(
        "ts timestamp, run_id symbol, trade_ref long, symbol symbol, direction symbol, size double,"
        "entry_ts timestamp, entry_price double, exit_price double, pnl double, pnl_net double, commission double,"
        "bars_held long"
    ),
    key=("ts", "run_id", "trade_ref"),
    partition_by="YEAR",
)

BT_ORDERS = Table(
    "bt_orders",
    _cols(
        "ts timestamp, run_id symbol, order_ref long, symbol symbol, side symbol, type symbol, status symbol,"
        "size double, price double, executed_size double, executed_price double, commission double"
    ),
    # executed_size/executed_price are cumulative/average over the order's fills so far, so a later
    # notification of the same order in the same bar supersedes an earlier one without losing a fill.
    key=("ts", "run_id", "order_ref"),
    partition_by="YEAR",
)

#: ``bt_sweeps``: one row per parameter sweep (written by :func:`btlab.sweep.run.run_sweep`). ``ts`` is the sweep's
#: start (UTC), constant across re-writes of the same ``sweep_id`` (QuestDB dedups on ``(ts, sweep_id)``); ``grid``
#: is the grid spec as given (JSON), ``params`` the JSON list of parameter names, ``config`` the JSON of cash,
#: commission, size_pct, session, ...; ``total``/``done``/``failed`` count combinations (``done`` includes the
#: failed ones and those finished by an earlier call of a resumed sweep); ``status`` one of :data:`SWEEP_STATUSES`;
#: ``heartbeat`` the wall time (UTC) of the last write while running.
BT_SWEEPS = Table(
    "bt_sweeps",
    _cols(
        "ts timestamp, sweep_id string, strategy string, grid string, params string, exchange symbol,"
        "symbols string, timeframe symbol, calendar symbol, data_from timestamp, data_to timestamp,"
        "data_hash string, engine symbol, config string, total long, done long, failed long, status symbol,"
        "error string, finished_at timestamp, heartbeat timestamp, btlab_version string"
    ),
    key=("sweep_id",),
    partition_by="YEAR",
)

#: ``bt_states``: the state changes of a run's state machines (regimes), written by the recorder while the run runs
#: (see :mod:`btlab.backtest.states`). ``ts`` is the CLOSE time (UTC) of the bar that decided the change -- the state
#: holds from ``ts`` on -- unlike the open times of ``bt_equity``/``bt_trades``; ``machine`` names the machine (e.g.
#: its timeframe ``1d``); ``from_state`` is ``warmup`` for a machine's first state.
BT_STATES = Table(
    "bt_states",
    _cols("ts timestamp, run_id symbol, machine symbol, from_state symbol, to_state symbol"),
    key=("ts", "run_id", "machine"),
    partition_by="YEAR",
)

#: ``bt_sweeps.status`` values.
SWEEP_STATUSES: tuple[str, ...] = ("running", "finished", "interrupted", "failed")

#: ``bt_health``: pipeline figures btlab services write so that Grafana only reads the store (the pipeline-health
#: dashboard and its alerts). ``ts`` is the end of the reporting interval (UTC); ``service`` the writer
#: (:data:`HEALTH_SERVICES`); ``metric`` one of :data:`HEALTH_METRICS`; ``subject`` what the figure is about (a table
#: name for ``rows_per_s``, an instrument ``exchange:symbol`` for trade figures, the exchange id for
#: ``reconnects``, the service itself for ``heartbeat``: never empty, an empty symbol is not a value QuestDB's
#: line protocol carries); ``value`` the figure. Counts are per interval (not cumulative), so a
#: restart never makes them jump and ``sum(value)`` over a time range is the count in that range; a running service
#: writes one ``heartbeat`` row (value 1) per interval even when idle. Written by
#: :class:`btlab.store.health.HealthWriter`.
BT_HEALTH = Table(
    "bt_health",
    _cols("ts timestamp, service symbol, metric symbol, subject symbol, value double"),
    key=("ts", "service", "metric", "subject"),
    partition_by="DAY",
)

#: ``bt_health.metric`` values: name -> (unit, meaning). The pipeline dashboard and the alerts read these.
HEALTH_METRICS: dict[str, tuple[str, str]] = {
    "rows_per_s": ("rows/s", "rows written to the table named in subject, averaged over the interval"),
    "late_trades": ("count", "trades that arrived after their bar was final (not merged), in the interval"),
    "quarantined_trades": ("count", "malformed or impossible trades set aside, in the interval"),
    "trade_id_gaps_filled": ("count", "trades fetched over REST to fill trade-id gaps, in the interval"),
    "reconnects": ("count", "stream reconnections (dropped or silent connections), in the interval"),
    "consumer_lag": ("records", "records behind the end of the topic, at the end of the interval"),
    "records_per_s": ("records/s", "records consumed from or published to the topic in subject, over the interval"),
    "replay_lag_s": ("s", "how far a replay's publishing is behind its pacing schedule, at the end of the interval"),
    "dead_letters": ("count", "records sent to the dead-letter topic, in the interval"),
    "heartbeat": ("1", "one row per interval while the service runs"),
}

#: Services that write ``bt_health`` (others add themselves when they exist). Stream figures (``consumer_lag``,
#: ``records_per_s``, ``dead_letters``) name the topic in ``subject``, and a consumer group's figures name both as
#: ``"topic (group)"``, e.g. ``"btlab.bars.1m (btlab-sink)"``.
HEALTH_SERVICES: tuple[str, ...] = ("ingest-live", "sink", "replay", "paper")

TABLES: dict[str, Table] = {
    t.name: t for t in (OHLCV, TICKS, BT_RUNS, BT_EQUITY, BT_TRADES, BT_ORDERS, BT_SWEEPS, BT_STATES, BT_HEALTH)
}
