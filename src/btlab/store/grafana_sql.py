"""The QuestDB SQL of btlab's Grafana dashboards and alert rules (built by :mod:`btlab.dashboards`).

Every panel target, query variable and alert rule query of ``deploy/grafana/`` is a named constant or a small
function here; :mod:`btlab.dashboards` only names them and builds panels around them. The text is QuestDB SQL as
Grafana's QuestDB data source plugin runs it, with the plugin's macros (expanded by the plugin, see
:mod:`btlab.dashboards.core`): ``$__timeFilter(ts)``, ``$__fromTime`` / ``$__toTime``, ``$__sampleByInterval``,
``$__conditionalAll(condition, $var)``.

Values reach this SQL only through Grafana variables: a single-valued one is substituted as its raw text, so the SQL
quotes it (``'$run_id'``); a multi-valued one as ``'a','b'`` (``IN ($compare)``). Identifiers are written here or
come from btlab's own tables (:data:`btlab.store.schema.TABLES`, checked by the functions that take one), never
from a user. Alert queries run in Grafana's backend, where no dashboard variable exists: they name none.

Whitespace is not significant: the dashboard builders collapse every run of whitespace to one space. Times are UTC;
bars are stamped with their open time. tests/dashboards/test_panel_sql.py parses every statement, expanded as
Grafana would, with QuestDB's own parser; tests/dashboards/test_dashboard_sql.py checks that each one here is used.
"""

from __future__ import annotations

from btlab.model.timeframe import Timeframe
from btlab.store.schema import HEALTH_METRICS, TABLES

#: Timeframes btlab uses (ccxt strings) and their length in seconds, for SQL that needs a bar's length.
_TIMEFRAME_SECONDS: dict[str, int] = {
    tf: Timeframe.parse(tf).seconds
    for tf in ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "1w")
}


def _timeframe_seconds(expr: str) -> str:
    """SQL ``CASE`` giving the length in seconds (LONG) of the timeframe string in the SQL expression ``expr``
    (a column such as ``timeframe`` or a quoted variable such as ``'$timeframe'``); NULL for a timeframe not in
    ``_TIMEFRAME_SECONDS``. ``expr`` is SQL written by btlab, never user text."""
    whens = " ".join(f"WHEN '{tf}' THEN {s}" for tf, s in _TIMEFRAME_SECONDS.items())
    return f"CASE {expr} {whens} END"


def _check_column(table: str, column: str) -> str:
    """``column`` if it is a column of btlab's ``table``; ``ValueError`` otherwise (a programming error)."""
    if column not in TABLES[table].column_names:
        raise ValueError(f"{column!r} is not a column of {table}")
    return column


# ---- Backtest run (variable run_id) --------------------------------------------------------------------------------
#: Variable run_id: recorded runs, newest first (value, text shown).
RUN_OPTIONS = ("SELECT run_id, concat(strategy, ' ', symbols, ' ', timeframe, ' ', status, ' ', run_id) "
               "FROM bt_runs ORDER BY ts DESC LIMIT 500")
#: Hidden variables: the run's exchange and timeframe.
RUN_EXCHANGE = "SELECT exchange FROM bt_runs WHERE run_id = '$run_id'"
RUN_TIMEFRAME = "SELECT timeframe FROM bt_runs WHERE run_id = '$run_id'"
#: Variable symbol: the run's first instrument, then every instrument it ordered.
RUN_SYMBOLS = ("SELECT split_part(symbols, ',', 1) AS symbol FROM bt_runs WHERE run_id = '$run_id' "
               "UNION SELECT DISTINCT symbol FROM bt_orders WHERE run_id = '$run_id'")
#: The run's status, heartbeat (wall time), finish time and error.
RUN_STATUS = "SELECT status, heartbeat, finished_at, error FROM bt_runs WHERE run_id = '$run_id'"


def run_stat(column: str) -> str:
    """One headline metric of the run: ``column`` of bt_runs. ``ValueError`` if it is no bt_runs column."""
    return f"SELECT {_check_column('bt_runs', column)} FROM bt_runs WHERE run_id = '$run_id'"


#: Equity and cash, last value per display interval (time series).
RUN_EQUITY = ("SELECT ts AS time, last(value) AS equity, last(cash) AS cash FROM bt_equity "
              "WHERE run_id = '$run_id' AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval")
#: Drawdown (fraction <= 0), deepest value per display interval (time series).
RUN_DRAWDOWN = ("SELECT ts AS time, min(drawdown) AS drawdown FROM bt_equity "
                "WHERE run_id = '$run_id' AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval")
#: Bars of the run's instrument aggregated to the display interval (candles and volume).
RUN_PRICE = ("SELECT ts AS time, first(open) AS open, max(high) AS high, min(low) AS low, last(close) AS close, "
             "sum(volume) AS volume FROM ohlcv WHERE exchange = '$exchange' AND symbol = '$symbol' "
             "AND timeframe = '$timeframe' AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval")
#: Trade entries (time, price) of the instrument shown.
RUN_ENTRIES = ("SELECT entry_ts AS time, entry_price AS entry FROM bt_trades "
               "WHERE run_id = '$run_id' AND symbol = '$symbol' ORDER BY entry_ts")
#: Trade exits (time, price) of the instrument shown.
RUN_EXITS = ("SELECT ts AS time, exit_price AS exit FROM bt_trades "
             "WHERE run_id = '$run_id' AND symbol = '$symbol' ORDER BY ts")
#: The states panel's SQL: every state change of the run (not limited to the time range, so the state in force at
#: the range's start is drawn; a run records few changes), one row per change: the time it became known (close of
#: the deciding bar), the machine, the new state. Kept on one line: it is compared with the generated target.
STATES_SQL = ("SELECT ts AS time, machine, to_state AS state FROM bt_states WHERE run_id = '$run_id' "
              "ORDER BY machine, ts")
#: Closed trades of the run in exit order.
RUN_TRADES = ("SELECT trade_ref, symbol, direction, entry_ts, ts AS exit_ts, size, entry_price, exit_price, "
              "pnl, pnl_net, commission, bars_held FROM bt_trades WHERE run_id = '$run_id' ORDER BY ts")
#: Simple return of each UTC calendar month (the first month against the starting cash).
RUN_MONTHLY_RETURNS = (
    "WITH m AS (SELECT ts, last(value) AS close FROM bt_equity WHERE run_id = '$run_id' "
    "SAMPLE BY 1M ALIGN TO CALENDAR), "
    "r AS (SELECT cash FROM bt_runs WHERE run_id = '$run_id') "
    "SELECT to_str(m.ts, 'yyyy-MM') AS month, "
    "m.close / coalesce(lag(m.close) OVER (ORDER BY m.ts), r.cash) - 1 AS monthly_return "
    "FROM m CROSS JOIN r ORDER BY month")

# ---- Runs (multi variables strategy, status, exchange, symbols, compare) -----------------------------------------
#: The bt_runs columns the runs table shows, in order.
RUN_COLUMNS = ("run_id, ts AS started, strategy, params, exchange, symbols, timeframe, data_from, data_to, status, "
               "total_return, cagr, volatility, sharpe, sortino, max_drawdown, calmar, win_rate, profit_factor, "
               "avg_trade, exposure, n_trades, end_value, cash, commission, sweep_id")
#: Runs whose data range overlaps the time range, newest first, with their data range in epoch ms (links).
RUNS_TABLE = (f"SELECT {RUN_COLUMNS}, cast(data_from AS long) / 1000 AS from_ms, "
              "cast(dateadd('d', 1, data_to) AS long) / 1000 AS to_ms FROM bt_runs "
              "WHERE data_to >= $__fromTime AND data_from <= $__toTime "
              "AND $__conditionalAll(strategy IN ($strategy), $strategy) "
              "AND $__conditionalAll(status IN ($status), $status) "
              "AND $__conditionalAll(exchange IN ($exchange), $exchange) "
              "AND $__conditionalAll(symbols IN ($symbols), $symbols) ORDER BY ts DESC")
#: Filter variables of the runs table.
RUNS_STRATEGIES = "SELECT DISTINCT strategy FROM bt_runs ORDER BY strategy"
RUNS_STATUSES = "SELECT DISTINCT status FROM bt_runs ORDER BY status"
RUNS_EXCHANGES = "SELECT DISTINCT exchange FROM bt_runs ORDER BY exchange"
RUNS_SYMBOLS = "SELECT DISTINCT symbols FROM bt_runs ORDER BY symbols"
#: Variable compare: runs to draw together, newest first (value, text shown).
RUNS_COMPARE_OPTIONS = ("SELECT run_id, concat(strategy, ' ', symbols, ' ', timeframe, ' ', run_id) FROM bt_runs "
                        "ORDER BY ts DESC LIMIT 200")
#: Equity of the compared runs, one series per run id.
RUNS_COMPARE_EQUITY = ("SELECT ts AS time, run_id, last(value) AS equity FROM bt_equity "
                       "WHERE run_id IN ($compare) AND $__timeFilter(ts) "
                       "SAMPLE BY $__sampleByInterval ORDER BY time")

# ---- Market data (variables exchange, symbol, timeframe) -----------------------------------------------------------
_SERIES = "exchange = '$exchange' AND symbol = '$symbol' AND timeframe = '$timeframe'"
_TF_S = _timeframe_seconds("timeframe")
_VAR_TF_S = _timeframe_seconds("'$timeframe'")

#: Variables exchange, symbol (of the exchange), timeframe (of the instrument), from ohlcv.
MARKET_EXCHANGES = "SELECT DISTINCT exchange FROM ohlcv ORDER BY exchange"
MARKET_SYMBOLS = "SELECT DISTINCT symbol FROM ohlcv WHERE exchange = '$exchange' ORDER BY symbol"
MARKET_TIMEFRAMES = "SELECT DISTINCT timeframe FROM ohlcv WHERE exchange = '$exchange' AND symbol = '$symbol'"
#: Bars of the chosen series aggregated to the display interval.
MARKET_CANDLES = ("SELECT ts AS time, first(open) AS open, max(high) AS high, min(low) AS low, "
                  f"last(close) AS close, sum(volume) AS volume FROM ohlcv WHERE {_SERIES} "
                  "AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval")
#: Every stored series: first and last bar, bars, bars expected in continuous time, missing bars.
MARKET_COVERAGE = (
    "SELECT exchange, symbol, timeframe, first_bar, last_bar, bars, expected, expected - bars "
    "AS missing FROM (SELECT exchange, symbol, timeframe, min(ts) AS first_bar, max(ts) AS "
    f"last_bar, count() AS bars, datediff('s', min(ts), max(ts)) / ({_TF_S}) + 1 AS expected "
    "FROM ohlcv GROUP BY exchange, symbol, timeframe) ORDER BY exchange, symbol, timeframe")
#: Gaps of the chosen series in the time range (continuous time), newest first.
MARKET_GAPS = ("SELECT prev_ts AS last_bar_before, ts AS first_bar_after, "
               f"datediff('s', prev_ts, ts) / ({_VAR_TF_S}) - 1 AS missing_bars "
               "FROM (SELECT ts, lag(ts) OVER (ORDER BY ts) AS prev_ts FROM ohlcv "
               f"WHERE {_SERIES} AND $__timeFilter(ts)) "
               f"WHERE datediff('s', prev_ts, ts) > {_VAR_TF_S} "
               "ORDER BY ts DESC LIMIT 1000")
#: Per series: now - close time of its last bar, in seconds.
MARKET_BAR_LAG = ("SELECT exchange, symbol, timeframe, ts AS last_bar, "
                  f"datediff('s', ts, now()) - ({_TF_S}) AS lag_s FROM ohlcv "
                  "LATEST ON ts PARTITION BY exchange, symbol, timeframe ORDER BY lag_s")
#: Per instrument: now - time of its last trade, in seconds.
MARKET_TICK_LAG = ("SELECT exchange, symbol, ts AS last_trade, datediff('s', ts, now()) AS lag_s FROM ticks "
                   "LATEST ON ts PARTITION BY exchange, symbol ORDER BY lag_s")
#: Stored trades of the chosen instrument per display interval.
MARKET_TICK_RATE = ("SELECT ts AS time, count() AS trades FROM ticks WHERE exchange = '$exchange' "
                    "AND symbol = '$symbol' AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval")

# ---- Pipeline health (multi variable service) ----------------------------------------------------------------------
#: Variable service: services that wrote bt_health.
HEALTH_SERVICE_OPTIONS = "SELECT DISTINCT service FROM bt_health ORDER BY service"
#: Each service's last heartbeat and its age in seconds.
HEALTH_LAST_HEARTBEAT = ("SELECT service, ts AS last_heartbeat, datediff('s', ts, now()) AS age_s FROM bt_health "
                         "WHERE metric = 'heartbeat' LATEST ON ts PARTITION BY service ORDER BY service")
#: Aggregates :func:`health_metric_series` may apply per display interval.
_HEALTH_AGGREGATES = frozenset({"avg", "sum", "max", "min", "last"})


def health_metric_series(metric: str, agg: str) -> str:
    """One bt_health ``metric`` aggregated with ``agg`` per display interval, one series per service and subject
    (time series). ``ValueError`` for a metric not in :data:`~btlab.store.schema.HEALTH_METRICS` or an aggregate
    not in avg/sum/max/min/last."""
    if metric not in HEALTH_METRICS:
        raise ValueError(f"{metric!r} is not a bt_health metric")
    if agg not in _HEALTH_AGGREGATES:
        raise ValueError(f"{agg!r} is not one of {sorted(_HEALTH_AGGREGATES)}")
    return (f"SELECT ts AS time, concat(service, ' ', subject) AS series, {agg}(value) AS {metric} "
            f"FROM bt_health WHERE metric = '{metric}' AND $__conditionalAll(service IN ($service), "
            "$service) AND $__timeFilter(ts) SAMPLE BY $__sampleByInterval ORDER BY time")


# ---- Sweep (variables sweep_id, metric, x, y) ----------------------------------------------------------------------
#: bt_runs columns the sweep board can rank by (higher is better for each, so "best" is max), the first the default.
SWEEP_METRIC_COLUMNS: tuple[str, ...] = tuple(_check_column("bt_runs", c) for c in (
    "sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown", "win_rate", "profit_factor", "avg_trade",
    "end_value"))
#: The chosen metric of a bt_runs row: a CASE over the ``metric`` variable (a quoted literal, never an identifier
#: built from a variable); NULL while a combination runs or when it failed.
SWEEP_METRIC = "CASE '$metric' " + " ".join(f"WHEN '{c}' THEN {c}" for c in SWEEP_METRIC_COLUMNS) + " END"
#: Parameters of the sweep (the JSON list bt_sweeps.params) offered for an axis, at most this many.
SWEEP_MAX_PARAMS = 8

#: Variable sweep_id: sweeps, newest first (value, text shown).
SWEEP_OPTIONS = ("SELECT sweep_id, concat(strategy, ' ', symbols, ' ', timeframe, ' ', status, ' ', sweep_id) "
                 "FROM bt_sweeps ORDER BY ts DESC LIMIT 500")


def sweep_param_names(first: int) -> str:
    """Variable of an axis: the sweep's parameter names, starting with the ``first``-th (0-based; so x and y default
    to the first two), then the others in order, at most :data:`SWEEP_MAX_PARAMS`. QuestDB's json_extract reads one
    array element per path (paths cannot be built dynamically), hence one SELECT per position."""
    order = [first] + [i for i in range(SWEEP_MAX_PARAMS) if i != first]
    parts = " UNION ALL ".join(
        f"SELECT json_extract(cast(params AS varchar), '[{i:d}]') AS name, {n} AS k FROM bt_sweeps "
        "WHERE sweep_id = '$sweep_id'" for n, i in enumerate(order))
    return f"SELECT name FROM ({parts}) WHERE name IS NOT NULL ORDER BY k"


#: Progress of the sweep: status, total, done, failed, share done, heartbeat, finish time.
SWEEP_PROGRESS = ("SELECT status, total, done, failed, done / cast(total AS double) AS progress, "
                  "heartbeat, finished_at FROM bt_sweeps WHERE sweep_id = '$sweep_id'")
#: Best metric per pair of values of the parameters $x and $y (read from bt_runs.params).
SWEEP_HEATMAP = ("SELECT x_value, y_value, max(metric) AS metric FROM ("
                 "SELECT json_extract(cast(params AS varchar), '.$x')::double AS x_value, "
                 "json_extract(cast(params AS varchar), '.$y')::double AS y_value, "
                 f"{SWEEP_METRIC} AS metric FROM bt_runs WHERE sweep_id = '$sweep_id') "
                 "WHERE metric IS NOT NULL AND x_value IS NOT NULL AND y_value IS NOT NULL "
                 "ORDER BY x_value, y_value")
#: The chosen metric of every finished combination (histogram).
SWEEP_DISTRIBUTION = (f"SELECT {SWEEP_METRIC} AS metric FROM bt_runs WHERE sweep_id = '$sweep_id' "
                      f"AND {SWEEP_METRIC} IS NOT NULL")
#: The 50 best finished combinations by the chosen metric, with their data range in epoch ms (links).
SWEEP_TOP = (f"SELECT run_id, params, {SWEEP_METRIC} AS metric, sharpe, total_return, cagr, max_drawdown, "
             "calmar, win_rate, n_trades, end_value, cast(data_from AS long) / 1000 AS from_ms, "
             "cast(dateadd('d', 1, data_to) AS long) / 1000 AS to_ms FROM bt_runs "
             f"WHERE sweep_id = '$sweep_id' AND {SWEEP_METRIC} IS NOT NULL ORDER BY metric DESC LIMIT 50")
#: Combinations that raised: parameters and error.
SWEEP_FAILED = ("SELECT run_id, params, error, ts FROM bt_runs WHERE sweep_id = '$sweep_id' "
                "AND status = 'failed' ORDER BY ts")

# ---- Alert rules (no variables; one row per instance, string columns are labels, one numeric value) --------------
#: Live series (a bar in the last day): seconds since their last bar closed (label series).
ALERT_INGEST_LAG = ("SELECT concat(exchange, ':', symbol, ' ', timeframe) AS series, "
                    f"datediff('s', ts, now()) - ({_TF_S}) AS lag_s FROM ohlcv "
                    "WHERE ts > dateadd('d', -1, now()) LATEST ON ts PARTITION BY exchange, symbol, timeframe")
#: Services with a heartbeat in the last week: seconds since their last one (label service).
ALERT_NO_HEARTBEAT = ("SELECT service, datediff('s', ts, now()) AS age_s FROM bt_health WHERE metric = 'heartbeat' "
                      "AND ts > dateadd('d', -7, now()) LATEST ON ts PARTITION BY service")
#: Runs that failed in the last hour (labels run_id, strategy).
ALERT_RUN_FAILED = ("SELECT run_id, strategy, count() AS failed FROM bt_runs WHERE status = 'failed' "
                    "AND finished_at > dateadd('h', -1, now()) GROUP BY run_id, strategy")
#: Late and quarantined trades per service and subject over the last 5 minutes.
ALERT_BAD_TRADES = ("SELECT service, subject, sum(value) AS trades FROM bt_health "
                    "WHERE metric IN ('late_trades', 'quarantined_trades') AND ts > dateadd('m', -5, now()) "
                    "GROUP BY service, subject")
