"""btlab's Grafana dashboards: backtest run, runs, market data, pipeline health, parameter sweep.

Each function builds one dashboard with grafana-foundation-sdk and registers it (:func:`~btlab.dashboards.core.
dashboard`). The panels' and variables' SQL is in :mod:`btlab.store.grafana_sql` (QuestDB SQL for the QuestDB data
source plugin; macros: see :mod:`btlab.dashboards.core`); values come only from Grafana variables. Times are UTC;
bars are stamped with their OPEN time (ARCHITECTURE.md).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    barchart,
    candlestick,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.models import dashboard as mdash
from grafana_foundation_sdk.models.candlestick import VizDisplayMode
from grafana_foundation_sdk.models.common import VisibilityMode

from btlab.dashboards.core import (
    QUESTDB,
    SQL,
    dashboard,
    dashboard_link,
    field_override,
    new_dashboard,
    query_variable,
)
from btlab.dashboards.health import HEALTH_METRICS
from btlab.store import grafana_sql as q
from btlab.store.grafana_sql import STATES_SQL  # the states panel's SQL, also read here by tests

RUN_UID = "btlab-run"
RUNS_UID = "btlab-runs"
MARKET_UID = "btlab-market"
HEALTH_UID = "btlab-health"

CONVENTIONS = ("Returns from equity resampled to daily UTC closes (per exchange session for equity venues), "
               "rf = 0, sample standard deviation (ddof = 1), annualized with 365 days (24/7 crypto) or 252 "
               "(exchange-session equities); definitions as empyrical's.")


def _grid(panel, w: int, h: int):
    return panel.span(w).height(h)


def _stat(title: str, column: str, unit: str, description: str, decimals: int = 2) -> stat.Panel:
    return _grid(stat.Panel().title(title).description(description).datasource(QUESTDB).unit(unit)
                 .decimals(decimals)
                 .with_target(SQL(q.run_stat(column), table=True)), 3, 4)


# ---- Backtest run ------------------------------------------------------------------------------------------------
#: Headline metrics of a run: (column of bt_runs, title, unit, convention stated in the panel description).
RUN_STATS: tuple[tuple[str, str, str, str], ...] = (
    ("total_return", "Total return", "percentunit", "End value / starting cash - 1, after commissions."),
    ("cagr", "CAGR", "percentunit", "Compound annual growth rate over the run's daily returns. " + CONVENTIONS),
    ("sharpe", "Sharpe", "none", "Annualized Sharpe ratio of daily returns. " + CONVENTIONS),
    ("sortino", "Sortino", "none", "Annualized Sortino ratio of daily returns. " + CONVENTIONS),
    ("max_drawdown", "Max drawdown", "percentunit",
     "Largest peak-to-trough fall of equity, a fraction <= 0, measured on every bar."),
    ("calmar", "Calmar", "none", "CAGR / |max drawdown|. " + CONVENTIONS),
    ("win_rate", "Win rate", "percentunit", "Closed trades with net PnL > 0 / closed trades."),
    ("profit_factor", "Profit factor", "none", "Gross profit / gross loss of closed trades (net of commission)."),
    ("n_trades", "Trades", "none", "Closed trades."),
    ("end_value", "End value", "none", "Account value (cash + positions) at the last bar, quote currency."),
)


@dashboard(RUN_UID)
def backtest_run() -> gdash.Dashboard:
    """One run: headline metrics, equity and drawdown, price with entries/exits, trades, monthly returns."""
    board = (new_dashboard(RUN_UID, "btlab: backtest run",
                           "One backtest run (variable run_id, newest first). Open a run from the Runs dashboard "
                           "to get its data range as the time range. Refreshes every 10 s so a running run "
                           "fills in; a finished run does not change.")
             .time("now-10y", "now").refresh("10s")
             .link(dashboard_link("Runs", RUNS_UID))
             .with_variable(query_variable(
                 "run_id", q.RUN_OPTIONS,
                 label="run", description="Recorded runs, newest first (strategy symbols timeframe status id)"))
             .with_variable(query_variable("exchange", q.RUN_EXCHANGE, hide=True))
             .with_variable(query_variable("timeframe", q.RUN_TIMEFRAME, hide=True))
             .with_variable(query_variable(
                 "symbol", q.RUN_SYMBOLS,
                 label="instrument", description="Instrument shown in the price panel")))

    board = board.with_panel(_grid(
        stat.Panel().title("Status").datasource(QUESTDB)
        .description("running -> finished / failed / interrupted (a paper run: stopped). A running run whose heartbeat (wall time of the "
                     "recorder's last write) is over 2 minutes old was killed: stale.")
        .with_target(SQL(q.RUN_STATUS, table=True))
        .reduce_options(_reduce_all_fields()), 6, 4))
    for column, title, unit, description in RUN_STATS:
        board = board.with_panel(_stat(title, column, unit, description, 0 if column == "n_trades" else 2))

    board = (board
             .with_panel(_grid(
                 timeseries.Panel().title("Equity").datasource(QUESTDB).unit("none")
                 .description("Account value (cash + positions) at each base bar's open time, last value per "
                              "display interval.")
                 .with_target(SQL(q.RUN_EQUITY)),
                 24, 9))
             .with_panel(_grid(
                 timeseries.Panel().title("Drawdown").datasource(QUESTDB).unit("percentunit").max(0)
                 .fill_opacity(30)
                 .description("Equity / running peak - 1 (a fraction <= 0), deepest value per display interval.")
                 .with_target(SQL(q.RUN_DRAWDOWN)),
                 24, 5))
             .with_panel(_price_panel())
             .with_panel(_states_panel()))

    board = (board
             .with_panel(_grid(
                 table.Panel().title("Trades").datasource(QUESTDB).filterable(True)
                 .description("Closed trades; exit_ts is the bar open time of the exit fill. PnL in quote "
                              "currency, pnl_net after commission.")
                 .with_target(SQL(q.RUN_TRADES, table=True)), 24, 10))
             .with_panel(_grid(
                 barchart.Panel().title("Monthly returns").datasource(QUESTDB).unit("percentunit")
                 .x_field("month").show_value(VisibilityMode.AUTO)
                 .description("Simple return of each UTC calendar month: last equity of the month / last equity "
                              "of the month before - 1, the first month against the starting cash.")
                 .with_target(SQL(q.RUN_MONTHLY_RETURNS, table=True)), 24, 8)))
    return board


def _reduce_all_fields():
    from grafana_foundation_sdk.builders import common

    return common.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("/.*/")


def _price_panel() -> candlestick.Panel:
    entry = field_override("entry", custom_drawStyle="points", custom_pointSize=9,
                           color={"mode": "fixed", "fixedColor": "green"})
    exit_ = field_override("exit", custom_drawStyle="points", custom_pointSize=9,
                           color={"mode": "fixed", "fixedColor": "red"})
    panel = (candlestick.Panel().title("Price with entries and exits").datasource(QUESTDB)
             .mode(VizDisplayMode.CANDLES_VOLUME).include_all_fields(True)
             .description("Bars of the run's instrument from ohlcv (open time), aggregated to the display "
                          "interval (first open, max high, min low, last close, summed volume). Green points: "
                          "trade entries at their entry price; red: exits.")
             .with_target(SQL(q.RUN_PRICE))
             .with_target(SQL(q.RUN_ENTRIES, ref_id="B"))
             .with_target(SQL(q.RUN_EXITS, ref_id="C"))
             .override_by_name(*entry).override_by_name(*exit_))
    return _grid(panel, 24, 12)


#: Colours of the regime states of :class:`btlab.backtest.states.HysteresisMachine` in the states panel (any other
#: state a strategy records gets Grafana's palette colour).
STATE_COLOURS = {"bullish": "green", "neutral": "yellow", "bearish": "red"}


def _states_panel() -> statetimeline.Panel:
    """The run's state machines (``bt_states``) as a state timeline, one lane per machine: the long result
    (time, machine, state) is split into one frame per machine by Grafana's "partition by values" transformation
    (each frame's state field gets the label ``machine``, shown as the lane's name)."""
    mappings = [mdash.ValueMap({state: mdash.ValueMappingResult(text=state, color=colour, index=i)
                                for i, (state, colour) in enumerate(STATE_COLOURS.items())})]
    panel = (statetimeline.Panel().title("State machines").datasource(QUESTDB)
             .description("State changes of the run's machines (bt_states), one lane per machine (e.g. regime_fsm's "
                          "timeframes): a state holds from the close time of the bar that decided it to the "
                          "machine's next change; before a machine's first state it was warming up (no colour).")
             .with_target(SQL(STATES_SQL, table=True))
             .with_transformation(mdash.DataTransformerConfig(
                 id_val="partitionByValues", options={"fields": ["machine"], "keepFields": False}))
             .display_name("${__field.labels.machine}")
             .mappings(mappings).merge_values(True).show_value(VisibilityMode.AUTO).row_height(0.8))
    return _grid(panel, 24, 6)


# ---- Runs ----------------------------------------------------------------------------------------------------------


@dashboard(RUNS_UID)
def runs() -> gdash.Dashboard:
    """All runs, filterable and sortable by any column, and the equity curves of chosen runs together."""
    link = (gdash.DashboardLink("Open run").type(mdash.DashboardLinkType.LINK)
            .url(f"/d/{RUN_UID}?var-run_id=${{__data.fields.run_id}}"
                 "&from=${__data.fields.from_ms}&to=${__data.fields.to_ms}"))
    hidden = [field_override(name, custom_hidden=True) for name in ("from_ms", "to_ms")]
    run_table = (table.Panel().title("Runs").datasource(QUESTDB).filterable(True)
                 .description("Runs whose data range overlaps the time range, newest first. Click a column "
                              "header to sort, the "
                              "funnel to filter; a run id opens the run's dashboard over its data range. "
                              + CONVENTIONS)
                 .with_target(SQL(q.RUNS_TABLE, table=True))
                 .override_by_name("run_id", [mdash.DynamicConfigValue(id_val="links", value=[link.build()])]))
    for name, props in hidden:
        run_table = run_table.override_by_name(name, props)
    for name in ("total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"):
        run_table = run_table.override_by_name(*field_override(name, unit="percentunit", decimals=2))

    board = (new_dashboard(RUNS_UID, "btlab: runs",
                           "Every recorded backtest run whose data range overlaps the time range; compare "
                           "equity curves of chosen runs over the same range.")
             .time("now-10y", "now").refresh("30s")
             .link(dashboard_link("Backtest run", RUN_UID))
             .with_variable(query_variable("strategy", q.RUNS_STRATEGIES, multi=True, include_all=True))
             .with_variable(query_variable("status", q.RUNS_STATUSES, multi=True, include_all=True))
             .with_variable(query_variable("exchange", q.RUNS_EXCHANGES, multi=True, include_all=True))
             .with_variable(query_variable("symbols", q.RUNS_SYMBOLS, label="instruments", multi=True,
                                           include_all=True))
             .with_variable(query_variable("compare", q.RUNS_COMPARE_OPTIONS, label="compare runs", multi=True))
             .with_panel(_grid(run_table, 24, 14))
             .with_panel(_grid(
                 timeseries.Panel().title("Equity of chosen runs").datasource(QUESTDB).unit("none")
                 .description("Account value of each run chosen in 'compare runs', last value per display "
                              "interval; one line per run id.")
                 .with_target(SQL(q.RUNS_COMPARE_EQUITY)), 24, 10)))
    return board


# ---- Market data ---------------------------------------------------------------------------------------------------
@dashboard(MARKET_UID)
def market_data() -> gdash.Dashboard:
    """Candles and volume of one series, coverage and gaps per series, tick rate, ingest lag."""
    board = (new_dashboard(MARKET_UID, "btlab: market data",
                           "Bars and trades in the store: one series' candles, coverage and gaps, live tick rate "
                           "and ingest lag.")
             .time("now-7d", "now").refresh("1m")
             .link(dashboard_link("Pipeline health", HEALTH_UID))
             .with_variable(query_variable("exchange", q.MARKET_EXCHANGES))
             .with_variable(query_variable("symbol", q.MARKET_SYMBOLS))
             .with_variable(query_variable("timeframe", q.MARKET_TIMEFRAMES))
             .with_panel(_grid(
                 candlestick.Panel().title("$symbol $timeframe").datasource(QUESTDB)
                 .mode(VizDisplayMode.CANDLES_VOLUME)
                 .description("Bars (open time) aggregated to the display interval: first open, max high, "
                              "min low, last close, summed volume.")
                 .with_target(SQL(q.MARKET_CANDLES)), 24, 12))
             .with_panel(_grid(
                 table.Panel().title("Coverage per series").datasource(QUESTDB).filterable(True)
                 .description("Every stored series (all time): first and last bar (open time), bars, bars "
                              "expected between them and missing bars, counted in continuous (24/7) time -- for "
                              "equity venues, whose nights and weekends count here, use `btlab data coverage`.")
                 .with_target(SQL(q.MARKET_COVERAGE, table=True)), 24, 8))
             .with_panel(_grid(
                 table.Panel().title("Gaps in $symbol $timeframe").datasource(QUESTDB)
                 .description("Missing bars of the chosen series in the time range: after each bar followed by "
                              "a later bar than the next one expected (continuous time).")
                 .with_target(SQL(q.MARKET_GAPS, table=True)), 12, 8))
             .with_panel(_grid(
                 table.Panel().title("Ingest lag").datasource(QUESTDB)
                 .description("Per instrument: now - close time of its last bar (open + timeframe), and now - "
                              "time of its last trade, in seconds. Live series should stay near the lateness "
                              "allowance.")
                 .with_target(SQL(q.MARKET_BAR_LAG, table=True))
                 .with_target(SQL(q.MARKET_TICK_LAG, table=True, ref_id="B")),
                 12, 8))
             .with_panel(_grid(
                 timeseries.Panel().title("Tick rate $symbol").datasource(QUESTDB).unit("none")
                 .description("Stored trades of the chosen instrument per display interval ($__interval).")
                 .with_target(SQL(q.MARKET_TICK_RATE)),
                 24, 8)))
    return board


# ---- Pipeline health -----------------------------------------------------------------------------------------------
def _metric_series(metric: str, agg: str, title: str, unit: str, w: int = 12) -> timeseries.Panel:
    meaning = HEALTH_METRICS[metric][1]
    return _grid(
        timeseries.Panel().title(title).datasource(QUESTDB).unit(unit)
        .description(f"bt_health metric '{metric}': {meaning}; {agg} per display interval, one line per "
                     "service and subject.")
        .with_target(SQL(q.health_metric_series(metric, agg))), w, 8)


@dashboard(HEALTH_UID)
def pipeline_health() -> gdash.Dashboard:
    """Rows/s per table, late and quarantined trades, trade-id gaps filled, reconnects, heartbeats, and the streams'
    consumer lag, records/s, dead letters and replay lag (bt_health)."""
    board = (new_dashboard(HEALTH_UID, "btlab: pipeline health",
                           "Figures btlab services write into bt_health (rows/s, late and quarantined trades, gaps "
                           "filled, reconnects, heartbeats).")
             .time("now-6h", "now").refresh("30s")
             .link(dashboard_link("Market data", MARKET_UID))
             .with_variable(query_variable("service", q.HEALTH_SERVICE_OPTIONS, multi=True, include_all=True))
             .with_panel(_grid(
                 table.Panel().title("Last heartbeat per service").datasource(QUESTDB)
                 .description("Each service's last heartbeat row and its age in seconds (no row for a minute: "
                              "the service is down or cannot write; alert 'btlab: no heartbeat').")
                 .with_target(SQL(q.HEALTH_LAST_HEARTBEAT, table=True)), 24, 6))
             .with_panel(_metric_series("rows_per_s", "avg", "Rows written per second, per table", "none"))
             .with_panel(_metric_series("late_trades", "sum", "Late trades", "none"))
             .with_panel(_metric_series("quarantined_trades", "sum", "Quarantined trades", "none"))
             .with_panel(_metric_series("trade_id_gaps_filled", "sum", "Trade-id gaps filled (trades)", "none"))
             .with_panel(_metric_series("reconnects", "sum", "Reconnects", "none", w=24))
             .with_row(gdash.Row("Streams"))
             .with_panel(_metric_series("dead_letters", "sum", "Dead letters", "none"))
             .with_panel(_metric_series("consumer_lag", "max", "Consumer lag per topic and group (records)", "none"))
             .with_panel(_metric_series("records_per_s", "avg", "Records per second, per topic", "none"))
             .with_panel(_metric_series("replay_lag_s", "max", "Replay lag behind schedule", "s")))
    return board


# ---- Sweep ---------------------------------------------------------------------------------------------------------
SWEEP_UID = "btlab-sweep"


def _param_variable(name: str, first: int) -> gdash.QueryVariable:
    """A variable listing the sweep's parameter names, starting with the ``first``-th (so x and y default to the
    first two; SQL: :func:`btlab.store.grafana_sql.sweep_param_names`)."""
    return query_variable(name, q.sweep_param_names(first),
                          label=f"{name} parameter",
                          description=f"Parameter on the {name} axis of the heatmap (numeric parameters)")


@dashboard(SWEEP_UID)
def sweep() -> gdash.Dashboard:
    """One parameter sweep: progress, the metric over two parameters, its distribution, top and failed runs."""
    from grafana_foundation_sdk.builders import histogram, xychart
    from grafana_foundation_sdk.models.xychart import SeriesMapping

    def by_name(field: str) -> xychart.MatcherConfig:
        return xychart.MatcherConfig().id("byName").options(field)

    metric_var = (gdash.CustomVariable("metric").label("metric")
                  .values(",".join(q.SWEEP_METRIC_COLUMNS))
                  .current(mdash.VariableOption(selected=True, text="sharpe", value="sharpe"))
                  .description("Metric of the heatmap, distribution and ranking (higher is better for each)"))
    run_link = (gdash.DashboardLink("Open combination run").type(mdash.DashboardLinkType.LINK)
                .url(f"/d/{RUN_UID}?var-run_id=${{__data.fields.run_id}}"
                     "&from=${__data.fields.from_ms}&to=${__data.fields.to_ms}"))
    full_link = (gdash.DashboardLink("Open its full re-run (btlab sweep top)").type(mdash.DashboardLinkType.LINK)
                 .url(f"/d/{RUN_UID}?var-run_id=${{__data.fields.run_id}}-full"
                      "&from=${__data.fields.from_ms}&to=${__data.fields.to_ms}"))
    top_table = (table.Panel().title("Top combinations by $metric").datasource(QUESTDB).filterable(True)
                 .description("The 50 best finished combinations by the chosen metric. A run id opens the "
                              "combination's run (a sweep records its metrics, not its equity) or its full re-run "
                              "'<run id>-full' recorded by `btlab sweep top` (equity, trades). " + CONVENTIONS)
                 .with_target(SQL(q.SWEEP_TOP, table=True))
                 .override_by_name("run_id", [mdash.DynamicConfigValue(
                     id_val="links", value=[run_link.build(), full_link.build()])]))
    for name, props in [field_override(n, custom_hidden=True) for n in ("from_ms", "to_ms")]:
        top_table = top_table.override_by_name(name, props)
    for name in ("total_return", "cagr", "max_drawdown", "win_rate"):
        top_table = top_table.override_by_name(*field_override(name, unit="percentunit", decimals=2))

    board = (new_dashboard(SWEEP_UID, "btlab: sweep",
                           "One parameter sweep (variable sweep_id, newest first): progress, the chosen metric over "
                           "two parameters, its distribution, the best and the failed combinations.")
             .time("now-10y", "now").refresh("10s")
             .link(dashboard_link("Runs", RUNS_UID)).link(dashboard_link("Backtest run", RUN_UID))
             .with_variable(query_variable(
                 "sweep_id", q.SWEEP_OPTIONS,
                 label="sweep", description="Sweeps, newest first (strategy symbols timeframe status id)"))
             .with_variable(metric_var)
             .with_variable(_param_variable("x", 0))
             .with_variable(_param_variable("y", 1))
             .with_panel(_grid(
                 stat.Panel().title("Progress").datasource(QUESTDB)
                 .description("Combinations of the sweep (bt_sweeps): total, done (finished or failed, including "
                              "those of earlier calls of a resumed sweep), failed, the share done, and the status "
                              "(running -> finished / interrupted / failed). Heartbeat: wall time of the last write "
                              "while running.")
                 .with_target(SQL(q.SWEEP_PROGRESS, table=True))
                 .override_by_name(*field_override("progress", unit="percentunit", decimals=1))
                 .reduce_options(_reduce_all_fields()), 24, 4))
             .with_panel(_grid(
                 xychart.Panel().title("$metric over $x and $y").datasource(QUESTDB)
                 .description("Heatmap of the chosen metric over two numeric parameters: one point per pair of "
                              "values, coloured by the best (max) metric over the combinations of the other "
                              "parameters with that pair. Parameters are read from bt_runs.params (JSON) with "
                              "QuestDB's json_extract.")
                 .mapping(SeriesMapping.MANUAL)
                 .series([xychart.XYSeriesConfig().x(xychart.XychartXYSeriesConfigX().matcher(by_name("x_value")))
                          .y(xychart.XychartXYSeriesConfigY().matcher(by_name("y_value")))
                          .color(xychart.XychartXYSeriesConfigColor().matcher(by_name("metric")))])
                 .point_size(xychart.XychartFieldConfigPointSize().fixed(14))
                 .override_by_name(*field_override("metric", color={"mode": "continuous-RdYlGr"}))
                 .with_target(SQL(q.SWEEP_HEATMAP, table=True)), 14, 12))
             .with_panel(_grid(
                 histogram.Panel().title("Distribution of $metric").datasource(QUESTDB)
                 .description("Histogram of the chosen metric over the finished combinations (failed and "
                              "running ones have none).")
                 .with_target(SQL(q.SWEEP_DISTRIBUTION, table=True)), 10, 12))
             .with_panel(_grid(top_table, 24, 12))
             .with_panel(_grid(
                 table.Panel().title("Failed combinations").datasource(QUESTDB).filterable(True)
                 .description("Combinations that raised: their parameters and error; the sweep went on.")
                 .with_target(SQL(q.SWEEP_FAILED, table=True)), 24, 8)))
    return board
