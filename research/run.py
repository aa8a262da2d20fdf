"""Judge every research strategy out of sample on the bundled real data and write docs/RESEARCH.md.

Usage: ``make research`` (or ``python research/run.py [--only orb,mp_tracker] [--out docs/RESEARCH.md]
[--workers 2]``). Each study imports its files from ``data/`` into a temporary DuckDB store, runs a walk-forward
(:func:`btlab.sweep.walkforward.run_walkforward`: per window, the grid swept on the train range, the best
combination run on the following test range, the test segments chained) and its statistics
(:func:`btlab.evaluation.walkforward.evaluate_walkforward`: in-sample vs out-of-sample, each window's deflated
Sharpe ratio and PBO). The page states each study's request, so anyone can re-run it with ``btlab walkforward``.

Adding a study: append a :class:`Study` to :data:`STUDIES`. ``rl_tilt`` is judged apart (:class:`RLStudy`): a
policy is trained once per seed on the in-sample years, the seeds are the trials, the best in sample trades the
out-of-sample years; it needs the ``rl`` extra and is left out (saying so) without it.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import btlab
from btlab.backtest.compat import bt
from btlab.evaluation.walkforward import evaluate_walkforward, walkforward_windows
from btlab.marketdata.sources.files.folder import bar_files, symbol_of_file
from btlab.marketdata.sources.files.importer import import_bars
from btlab.store.duckdb import DuckDBStore
from btlab.sweep.walkforward import run_walkforward

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
OUT = ROOT / "docs" / "RESEARCH.md"

BTC_1H = ("BTC_USDT-1h_2017-08-17_2024-04-21.feather", "binance", "BTC/USDT", "1h")
SPY_1M = ("SPY_1min_2024-02-20_2024-05-17.csv.gz", "nyse", "SPY", "1m")
SP500_MEMBERS = ("sp500_daily/individual_stocks_5yr", "nyse", None, "1d")  # a folder: symbol from each file
SP500_INDEX = ("sp500_daily/index/GSPC_2013-02-08_2018-02-07.csv.gz", "nyse", "^GSPC", "1d")
MEMBERS = ("AAPL", "AMZN", "BAC", "CSCO", "CVX", "GE", "GOOGL", "HD", "INTC", "JNJ", "JPM", "KO", "MSFT", "ORCL",
           "PFE", "PG", "T", "WFC", "WMT", "XOM")

#: a choice "has an edge out of sample" only if ALL hold: the chained OOS Sharpe ratio is positive, the median
#: window DSR reaches the paper's 0.95, and the median window PBO is below 0.5
DSR_BAR = 0.95
PBO_BAR = 0.5


@dataclass(frozen=True)
class Study:
    """One strategy judged out of sample.

    Attributes:
        name: the row's name. strategy: a bundled strategy name. what: one line on what it does.
        files: ``(path under data/, exchange, symbol or None for a folder, timeframe)`` to import.
        grid: ``{param: [values]}`` swept on every train window. request: ``run_walkforward`` keywords
            (exchange, symbols, timeframe, resample, engine, by, cash, commission, ...).
        span: ``(from, to, train, test)`` of the windows (UTC, inclusive). kind: ``returns`` (judged on risk-adjusted
            return) or ``tracking`` (an index tracker, judged on its tracking error).
    """

    name: str
    strategy: str
    what: str
    files: tuple[tuple[str, str, str | None, str], ...]
    grid: dict[str, list[Any]]
    request: dict[str, Any]
    span: tuple[str, str, str, str]
    kind: str = "returns"
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


STUDIES: list[Study] = [
    Study("sma_cross", "sma_cross", "long when SMA(fast) > SMA(slow), flat otherwise", (BTC_1H,),
          {"fast": [5, 10, 20], "slow": [30, 50, 100, 200]},
          {"exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h", "engine": "vector", "by": "sharpe",
           "commission": 0.001},
          ("2018-01-01", "2023-12-31", "2y", "6m")),
    Study("regime_fsm", "regime_fsm", "long while the 1h and the 1d hysteresis machines are both bullish",
          (BTC_1H,), {"period": [10, 20, 50], "enter_pct": [0.02, 0.05]},
          {"exchange": "binance", "symbols": "BTC/USDT", "timeframe": "1h", "resample": ["1d"],
           "engine": "backtrader", "by": "sharpe", "commission": 0.001},
          ("2018-01-01", "2023-12-31", "2y", "6m")),
    Study("orb", "orb", "opening-range breakout, long/short, flat by the session close (NYSE regular session)",
          (SPY_1M,), {"range_minutes": [5, 15, 30], "stop_pct": [0.25, 0.5, 1.0], "take_profit_pct": [0.5, 1.0, 2.0]},
          {"exchange": "nyse", "symbols": "SPY", "timeframe": "1m", "engine": "vector", "by": "sharpe",
           "commission": 0.0001},
          ("2024-02-20", "2024-05-17", "4w", "2w"),
          notes="Commission 1 bp a side (about SPY's spread plus fees). At 10 bp a side, the crypto default, a "
                "4-combination grid on these windows lost in-sample and out of sample alike (Sharpe about -5 "
                "both). Only 63 sessions are bundled: 4-week train windows, so PBO uses fewer CSCV blocks "
                "(2 sessions each)."),
    Study("mp_tracker", "mp_tracker", "matching-pursuit basket of at most k of 20 S&P 500 names tracking ^GSPC",
          (SP500_MEMBERS, SP500_INDEX), {"k": [5, 10], "lookback": [63, 126, 252], "rebalance": [21, 63]},
          {"exchange": "nyse", "symbols": [*MEMBERS, "^GSPC"], "timeframe": "1d", "engine": "backtrader",
           "by": "tracking_error", "cash": 1_000_000, "commission": 0.001},
          ("2013-02-08", "2018-02-07", "2y", "6m"), kind="tracking",
          notes="An index tracker: the combination is chosen by the lowest tracking error on the train window "
                "(annualized std of the daily active returns against ^GSPC); Sharpe, DSR and PBO are shown for "
                "completeness, the verdict is on tracking."),
]


# ---- rl_tilt: trained once in sample, judged once out of sample; the trials are the seeds ------------------------
@dataclass(frozen=True)
class RLStudy:
    """The RL weight tilts (``btlab rl train`` / ``btlab rl evaluate``) judged out of sample.

    A policy is not re-optimized per window like a grid (one training takes about half a minute): PPO is trained on
    the in-sample years once per seed, the seeds are the trials (a user would keep the seed that did best in
    sample), and the chosen seed trades the out-of-sample years beside the untilted basket. DSR and PBO are computed
    on the DAILY ACTIVE returns (portfolio - index: what the policy is rewarded for), the seeds as the N trials.
    """

    name: str = "rl_tilt"
    files: tuple[tuple[str, str, str | None, str], ...] = (SP500_MEMBERS, SP500_INDEX)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    train: tuple[str, str] = ("2013-02-08", "2016-12-31")
    test: tuple[str, str] = ("2017-01-01", "2018-02-07")
    timesteps: int = 20_000
    cash: float = 1_000_000.0


RL_STUDY = RLStudy()


# ---- running -------------------------------------------------------------------------------------------------------
def import_files(store: DuckDBStore, files: tuple[tuple[str, str, str | None, str], ...]) -> None:
    """Import a study's files (each once per store)."""
    for rel, exchange, symbol, timeframe in files:
        path = DATA / rel
        if symbol is None:
            for f in bar_files([path]):
                import_bars(f, store, exchange=exchange, symbol=symbol_of_file(f), timeframe=timeframe)
        else:
            import_bars(path, store, exchange=exchange, symbol=symbol, timeframe=timeframe)


@dataclass
class Outcome:
    """A study's walk-forward: the run, its statistics, seconds it took."""

    study: Study
    run: Any
    result: Any
    seconds: float
    benchmark: Any = None  # Metrics of buy and hold over the out-of-sample span


def run_study(study: Study, store: DuckDBStore, workers: int) -> Outcome:
    start, end, train, test = study.span
    windows = walkforward_windows(start, end, train=train, test=test)
    began = time.monotonic()
    run = run_walkforward(study.strategy, {"params": study.grid}, windows=windows, workers=workers, store=store,
                          progress=_progress(study.name), **study.request)
    result = evaluate_walkforward(run)
    seconds = time.monotonic() - began
    return Outcome(study, run, result, seconds, buy_and_hold(study, run, store))


def _benchmark_symbol(study: Study) -> str:
    """What buy and hold holds: the tracked index of a tracker, else the (first) traded symbol."""
    symbols = study.request["symbols"]
    return symbols[-1] if study.kind == "tracking" else (symbols.split(",")[0] if isinstance(symbols, str)
                                                          else symbols[0])


def buy_and_hold(study: Study, run: Any, store: DuckDBStore) -> Any:
    """Metrics of ``buy_hold`` on the benchmark symbol from the first test start to the last test end (the same
    venue, session, cash and commission): what the out-of-sample record is compared with."""
    r = study.request
    result = btlab.run_backtest("buy_hold", symbol=_benchmark_symbol(study), exchange=r["exchange"],
                                timeframe=r["timeframe"], start=run.windows[0].window.test[0],
                                end=run.windows[-1].window.test[1], cash=r.get("cash", 10_000.0),
                                commission=r.get("commission", 0.001), store=store, record=False)
    return result.summary


def _progress(name: str):
    def show(p: Any) -> None:
        if p.stage == "test":
            print(f"  {name}: window {p.window + 1}/{p.n_windows} chose "
                  + ", ".join(f"{k}={v}" for k, v in p.params.items() if k in _grid_names(name)), flush=True)
    return show


def _grid_names(name: str) -> set[str]:
    return {k for s in STUDIES if s.name == name for k in s.grid}


# ---- rl_tilt ---------------------------------------------------------------------------------------------------------
@dataclass
class RLOutcome:
    """Per seed (rows) the in-sample and out-of-sample figures of the policy, the untilted basket's, the chosen
    seed, its DSR and the seeds' PBO, seconds."""

    study: RLStudy
    seeds: Any  # DataFrame indexed by seed
    untilted: dict[str, dict[str, float]]  # {"in_sample": figures, "out_of_sample": figures}
    chosen: int
    dsr: float
    pbo: float
    seconds: float
    benchmark: Any = None  # Metrics of buy and hold of the index over the out-of-sample range


def _rl_figures(result: Any, index: str) -> tuple[dict[str, float], Any]:
    """Tracking figures and Sharpe/CAGR/max drawdown of one run, and its daily active returns."""
    from btlab.backtest.tracking import active_returns, tracking_metrics

    bars = result.bars_by_symbol[index]
    fig = tracking_metrics(result.equity, result.orders, bars)
    active = active_returns(result.equity["value"], bars.set_index("ts")["close"], fig["first"])["active"]
    m = result.summary
    return {"tracking_error": fig["tracking_error"], "active_return": fig["active_return"], "turnover": fig["turnover"],
            "sharpe": m.sharpe, "cagr": m.cagr, "max_drawdown": m.max_drawdown, "total_return": m.total_return}, active


def run_rl_study(study: RLStudy, store: DuckDBStore, folder: Path) -> RLOutcome:
    """Train one policy per seed in sample, run each in and out of sample (with the untilted basket), choose the
    seed with the best in-sample training reward, and compute DSR (chosen seed) and PBO (seeds) on daily active
    returns of the in-sample runs."""
    import numpy as np
    import pandas as pd

    from btlab.evaluation.walkforward import window_dsr, window_pbo
    from btlab.rl import evaluate, train

    began = time.monotonic()
    rows, actives, untilted = {}, {}, {}
    for seed in study.seeds:
        print(f"  rl_tilt: seed {seed}: training {study.timesteps:,} steps on {study.train[0]} .. {study.train[1]}",
              flush=True)
        trained = train(list(MEMBERS), out=folder / f"tilt-seed{seed}.zip", start=study.train[0],
                        end=study.train[1], timesteps=study.timesteps, seed=seed, store=store)
        ins = evaluate(trained.model, start=study.train[0], end=study.train[1], cash=study.cash, allow_overlap=True,
                       store=store, record=False)
        oos = evaluate(trained.model, start=study.test[0], end=study.test[1], cash=study.cash, store=store,
                       record=False)
        is_fig, actives[seed] = _rl_figures(ins.results["rl_tilt"], "^GSPC")
        oos_fig, _ = _rl_figures(oos.results["rl_tilt"], "^GSPC")
        rows[seed] = {"reward": trained.reward_trained, "reward_untilted": trained.reward_untilted,
                      **{f"is_{k}": v for k, v in is_fig.items()}, **{f"oos_{k}": v for k, v in oos_fig.items()},
                      "oos_first": oos.table.loc["rl_tilt", "first"], "oos_last": oos.table.loc["rl_tilt", "last"]}
        if not untilted:  # the same basket for every seed (chosen on the training range): run once
            untilted = {"in_sample": _rl_figures(ins.results["untilted"], "^GSPC")[0],
                        "out_of_sample": _rl_figures(oos.results["untilted"], "^GSPC")[0]}
    seeds = pd.DataFrame.from_dict(rows, orient="index")
    chosen = int(seeds["reward"].idxmax())
    trials = pd.concat(actives, axis=1).dropna()
    sharpes = trials.mean() / trials.std(ddof=1) * np.sqrt(252)
    dsr = window_dsr(trials[chosen].to_numpy(), sharpes.to_numpy(), n_trials=len(study.seeds), periods_per_year=252)
    pbo = window_pbo(trials.to_numpy())
    first, last = seeds.loc[chosen, "oos_first"], seeds.loc[chosen, "oos_last"]
    held = btlab.run_backtest("buy_hold", symbol="^GSPC", exchange="nyse", timeframe="1d", start=first, end=last,
                              cash=study.cash, commission=0.001, store=store, record=False).summary
    return RLOutcome(study, seeds, untilted, chosen, dsr, pbo, time.monotonic() - began, held)


def rl_verdict(o: RLOutcome) -> str:
    """One plain line: does the chosen seed track better (lower tracking error) or earn more (active return) than
    the untilted basket out of sample, with DSR/PBO on active returns; before the first colon: the headline."""
    row, base = o.seeds.loc[o.chosen], o.untilted["out_of_sample"]
    better_te = row["oos_tracking_error"] < base["tracking_error"]
    better_active = row["oos_active_return"] > base["active_return"]
    stats = f"DSR {_f(o.dsr)}, PBO {_f(o.pbo)} over {len(o.seeds)} seeds"
    if better_te and better_active and o.dsr >= DSR_BAR and o.pbo < PBO_BAR:
        return f"an edge out of sample: lower tracking error and higher active return than the untilted basket; {stats}"
    return (f"no edge out of sample: tracking error {_f(row['oos_tracking_error'], 'pct')} vs "
            f"{_f(base['tracking_error'], 'pct')} untilted, active return {_f(row['oos_active_return'], 'pct')} vs "
            f"{_f(base['active_return'], 'pct')} a year, turnover {_f(row['oos_turnover'])} vs "
            f"{_f(base['turnover'])}; {stats}")


def _rl_headline(o: RLOutcome) -> str:
    row = o.seeds.loc[o.chosen]
    return (f"| rl_tilt | {len(MEMBERS)} names + ^GSPC 1d | 1 (seeds: {len(o.seeds)}) | "
            f"{_f(row['is_sharpe'])} → {_f(row['oos_sharpe'])} | {_f(row['is_cagr'], 'pct')} → "
            f"{_f(row['oos_cagr'], 'pct')} | {_f(row['oos_max_drawdown'], 'pct')} | {_f(o.benchmark.sharpe)} / "
            f"{_f(o.benchmark.cagr, 'pct')} | {_f(o.dsr)} | {_f(o.pbo)} | {rl_verdict(o).split(':')[0]} |")


def _rl_section(o: RLOutcome) -> list[str]:
    s = o.study
    cmd = (f"btlab rl train --symbols {','.join(MEMBERS)} --index ^GSPC \\\n    --from {s.train[0]} --to {s.train[1]} "
           f"--timesteps {s.timesteps} --seed {o.chosen} --out models/tilt.zip\n"
           f"btlab rl evaluate --model models/tilt.zip --from {s.test[0]} --to {s.test[1]}")
    lines = ["## rl_tilt", "",
             "`rl_tilt`: PPO (stable-baselines3) over- and underweights, by at most 5 % per name, the matching-pursuit "
             "basket of at most 10 of the 20 names, every 5 sessions, from the regimes of two hysteresis machines on "
             "^GSPC, recent returns, the trailing tracking error and the current tilts; reward: active return minus "
             "20 x its square, net of 0.1 % commission on turnover (README, RL weight tilts). Trained on "
             f"{s.train[0]} .. {s.train[1]} only, once per seed ({s.timesteps:,} steps each); the seed with the best "
             "in-sample training reward is the choice (the seeds are the trials), and it trades "
             f"{s.test[0]} .. {s.test[1]} beside the untilted basket (same names, schedule and costs). DSR and PBO "
             "on daily ACTIVE returns of the in-sample runs (what the policy is rewarded for). "
             f"{o.seconds:.0f} s.", "", "```bash", cmd, "```", "",
             "| seed | training reward (untilted) | tracking error IS | OOS | active return IS | OOS | turnover OOS "
             "| Sharpe IS | OOS |", "|---|---|---|---|---|---|---|---|---|"]
    for seed, r in o.seeds.iterrows():
        mark = " (chosen)" if seed == o.chosen else ""
        lines.append(f"| {seed}{mark} | {r['reward']:.2f} ({r['reward_untilted']:.2f}) | "
                     f"{_f(r['is_tracking_error'], 'pct')} | {_f(r['oos_tracking_error'], 'pct')} | "
                     f"{_f(r['is_active_return'], 'pct')} | {_f(r['oos_active_return'], 'pct')} | "
                     f"{_f(r['oos_turnover'])} | {_f(r['is_sharpe'])} | {_f(r['oos_sharpe'])} |")
    ui, uo = o.untilted["in_sample"], o.untilted["out_of_sample"]
    lines.append(f"| untilted basket | — | {_f(ui['tracking_error'], 'pct')} | {_f(uo['tracking_error'], 'pct')} | "
                 f"{_f(ui['active_return'], 'pct')} | {_f(uo['active_return'], 'pct')} | {_f(uo['turnover'])} | "
                 f"{_f(ui['sharpe'])} | {_f(uo['sharpe'])} |")
    row = o.seeds.loc[o.chosen]
    lines += ["", f"Out of sample {row['oos_first']:%Y-%m-%d} .. {row['oos_last']:%Y-%m-%d} (the first months of "
              "the test years are the observation's warm-up). Buy and hold of ^GSPC over the same span: Sharpe "
              f"{_f(o.benchmark.sharpe)}, CAGR {_f(o.benchmark.cagr, 'pct')}.", "",
              f"**Verdict: {rl_verdict(o)}.**", ""]
    return lines


def _has_rl() -> bool:
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- the page ------------------------------------------------------------------------------------------------------
def _f(x: Any, unit: str = "ratio") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(v):
        return "—"
    return f"{v * 100:.1f} %" if unit == "pct" else f"{v:.2f}"


def _median(values: Any) -> float:
    finite = sorted(float(v) for v in values if _finite(v))
    if not finite:
        return math.nan
    mid = len(finite) // 2
    return finite[mid] if len(finite) % 2 else (finite[mid - 1] + finite[mid]) / 2


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def verdict(o: Outcome) -> str:
    """One plain line: what the out-of-sample record supports (see :data:`DSR_BAR`, :data:`PBO_BAR`); its part
    before the first colon is the headline table's verdict."""
    side = o.result.side_by_side
    oos_sr, is_sr = side.loc["sharpe", "out_of_sample"], side.loc["sharpe", "in_sample"]
    dsr, pbo = _median(o.result.windows["dsr"]), _median(o.result.windows["pbo"])
    held = f"buy and hold of {_benchmark_symbol(o.study)}: Sharpe {_f(o.benchmark.sharpe)}"
    if o.study.kind == "tracking":
        te_is, te_oos = side.loc["tracking_error", "in_sample"], side.loc["tracking_error", "out_of_sample"]
        worse = "worse than" if te_oos > te_is * 1.1 else "about as"
        return (f"tracks {_benchmark_symbol(o.study)} out of sample, no excess return: tracking error "
                f"{_f(te_oos, 'pct')} a year, {worse} in-sample ({_f(te_is, 'pct')}); Sharpe {_f(oos_sr)} "
                f"({held})")
    if oos_sr > 0 and dsr >= DSR_BAR and pbo < PBO_BAR:
        return (f"an edge out of sample: Sharpe {_f(oos_sr)}, median DSR {_f(dsr)}, median PBO {_f(pbo)} "
                f"({held})")
    why = []
    if not oos_sr > 0:
        why.append(f"out-of-sample Sharpe {_f(oos_sr)} (in-sample {_f(is_sr)})")
    elif oos_sr < is_sr:
        why.append(f"out-of-sample Sharpe {_f(oos_sr)} below in-sample {_f(is_sr)}")
    if not dsr >= DSR_BAR:
        why.append(f"median DSR {_f(dsr)} < {DSR_BAR}")
    if not pbo < PBO_BAR:
        why.append(f"median PBO {_f(pbo)} >= {PBO_BAR}")
    if o.benchmark.sharpe > oos_sr:
        why.append(held)
    return "no edge out of sample: " + "; ".join(why)


def _command(s: Study) -> str:
    r = s.request
    symbols = r["symbols"] if isinstance(r["symbols"], str) else ",".join(r["symbols"])
    parts = [f"btlab walkforward --strategy {s.strategy}"]
    parts += [f"--grid-param {k}={','.join(str(v) for v in vals)}" for k, vals in s.grid.items()]
    parts += [f"--exchange {r['exchange']} --symbols {symbols} --timeframe {r['timeframe']}"]
    if r.get("resample"):
        parts.append(f"--resample {','.join(r['resample'])}")
    start, end, train, test = s.span
    parts.append(f"--from {start} --to {end} --train {train} --test {test}")
    parts.append(f"--engine {r.get('engine', 'backtrader')} --by {r.get('by', 'sharpe')}")
    parts.append(f"--cash {r.get('cash', 10_000):.0f} --commission {r.get('commission', 0.001):g}")
    return " \\\n    ".join(parts)


def _data(s: Study) -> str:
    """``BTC/USDT 1h + 1d``, ``20 names + ^GSPC 1d``."""
    r = s.request
    symbols = r["symbols"] if isinstance(r["symbols"], str) else f"{len(r['symbols']) - 1} names + {r['symbols'][-1]}"
    return f"{symbols} {r['timeframe']}" + (f" + {','.join(r['resample'])}" if r.get("resample") else "")


def _headline(outcomes: list[Outcome]) -> list[str]:
    lines = ["| strategy | data | windows | Sharpe IS → OOS | CAGR IS → OOS | max drawdown OOS | buy & hold OOS "
             "Sharpe / CAGR | median DSR | median PBO | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        side, w = o.result.side_by_side, o.result.windows
        lines.append(
            f"| {o.study.name} | {_data(o.study)} | {len(w)} | "
            f"{_f(side.loc['sharpe', 'in_sample'])} → {_f(side.loc['sharpe', 'out_of_sample'])} | "
            f"{_f(side.loc['cagr', 'in_sample'], 'pct')} → {_f(side.loc['cagr', 'out_of_sample'], 'pct')} | "
            f"{_f(side.loc['max_drawdown', 'out_of_sample'], 'pct')} | {_f(o.benchmark.sharpe)} / "
            f"{_f(o.benchmark.cagr, 'pct')} | {_f(_median(w['dsr']))} | "
            f"{_f(_median(w['pbo']))} | {verdict(o).split(':')[0]} |")
    return lines


def _section(o: Outcome) -> list[str]:
    s, res, run = o.study, o.result, o.run
    by = res.by
    unit = "pct" if by in ("tracking_error", "cagr", "total_return", "max_drawdown", "volatility") else "ratio"
    lines = [f"## {s.name}", "", f"`{s.strategy}`: {s.what}. Chosen by `{by}` on each train window "
             f"({s.request.get('engine', 'backtrader')} engine for the sweeps; the test runs on Backtrader, "
             f"recorded). {len(res.windows)} windows, train {s.span[2]} / test {s.span[3]}, "
             f"{int(res.windows['n_trials'].max())} combinations each; {o.seconds:.0f} s.", ""]
    if s.notes:
        lines += [s.notes, ""]
    sharpe_too = by != "sharpe"
    head = f"| # | train (UTC) | test (UTC) | chosen | {by} IS | {by} OOS |" + (
        " Sharpe IS | Sharpe OOS |" if sharpe_too else "") + " OOS return | N | DSR | PBO |"
    lines += ["```bash", _command(s), "```", "", head, "|---" * (head.count("|") - 1) + "|"]
    for row, w in zip(res.windows.to_dict("records"), run.windows):
        chosen = ", ".join(f"{k}={row['params'][k]}" for k in s.grid)
        sharpes = f" {_f(row['is_sharpe'])} | {_f(row['oos_sharpe'])} |" if sharpe_too else ""
        lines.append(f"| {row['window'] + 1} | {' .. '.join(w.window.train)} | {' .. '.join(w.window.test)} | "
                     f"{chosen} | {_f(row[f'is_{by}'], unit)} | {_f(row[f'oos_{by}'], unit)} |{sharpes} "
                     f"{_f(row['oos_return'], 'pct')} | {row['n_trials']} | {_f(row['dsr'])} | {_f(row['pbo'])} |")
    lines += ["", "| metric | in-sample (mean of the chosen, train windows) | out-of-sample (chained test segments) |",
              "|---|---|---|"]
    for metric, row in res.side_by_side.iterrows():
        u = "ratio" if metric in ("sharpe", "sortino", "calmar") else "pct"
        lines.append(f"| {metric} | {_f(row['in_sample'], u)} | {_f(row['out_of_sample'], u)} |")
    m = res.metrics
    start_value = run.cash
    b = o.benchmark
    lines += ["", f"Out of sample {run.windows[0].window.test[0]} .. {run.windows[-1].window.test[1]}: "
              f"{start_value:,.0f} → {m.end_value:,.0f}, {int(m.n_trades)} trades. Buy and hold of "
              f"{_benchmark_symbol(s)} over the same span (same commission): Sharpe {_f(b.sharpe)}, CAGR "
              f"{_f(b.cagr, 'pct')}, max drawdown {_f(b.max_drawdown, 'pct')}.", "",
              f"**Verdict: {verdict(o)}.**", ""]
    return lines


def _machine() -> str:
    """The machine line of benchmarks/RESULTS.md (CPU, cores, memory, OS, Python, date): benchmarks/common.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("btlab_bench_common", ROOT / "benchmarks" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    return common.machine()


def render(outcomes: list[Outcome], total_s: float, workers: int, rl: RLOutcome | None = None) -> str:
    lines = [
        "# Research results: every strategy out of sample", "",
        f"Generated by `make research` (`python research/run.py`, {total_s:.0f} s with {workers} Dask workers) on "
        f"{_machine()}; btlab {btlab.__version__}, Backtrader {bt.__version__}. Data: "
        "the real files bundled in `data/` (see data/README.md), imported into a temporary DuckDB store.", "",
        "How to read it. Each strategy runs a walk-forward: on each window its grid is swept on the train range, the "
        "best combination (by the metric named) is run on the following test range, which it has not seen, and the "
        "test segments are chained (each starts flat with the previous one's ending equity). **In-sample** is the "
        "mean over windows of the chosen combination's metric on its train window (the best of N trials: biased "
        "upwards by the choice); **out-of-sample** is the metric of the chained test curve. **DSR** is the "
        "deflated Sharpe ratio (Bailey & López de Prado 2014) of each window's choice given its N trials: the "
        "probability that its true Sharpe ratio is above what the best of N trials with no skill would show "
        f"(≥ {DSR_BAR} is the paper's bar). **PBO** is the probability of backtest overfitting (CSCV, Bailey et "
        "al. 2017) of the grid on each train window: how often the in-sample best lands at or below the median out "
        f"of sample (about 0.5: noise). A strategy is said to have an edge only if its chained out-of-sample "
        f"Sharpe ratio is positive, its median DSR is ≥ {DSR_BAR} and its median PBO < {PBO_BAR}.", "",
        "Buy and hold: the traded symbol (the index for the tracker) held from the first test day to the last, "
        "with the same commission: what the out-of-sample record competes with.", "",
        "Metrics: returns from equity at daily UTC closes (exchange sessions for NYSE data), rf = 0, ddof = 1, "
        "annualized with 365 (crypto) or 252 (NYSE). Drawdowns are fractions of the peak. Costs: the commission "
        "named per study, market orders filled at the next bar's open.", "",
    ]
    lines += _headline(outcomes)
    lines += [_rl_headline(rl), ""] if rl is not None else ["", "`rl_tilt`: not run (the `rl` extra is not "
                                                            "installed, or `--only` left it out).", ""]
    for o in outcomes:
        lines += _section(o)
    if rl is not None:
        lines += _rl_section(rl)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated study names (default: all)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"the page to write (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--workers", type=int, default=2, help="Dask worker processes (default 2)")
    args = ap.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    studies = [s for s in STUDIES if wanted is None or s.name in wanted]
    with_rl = wanted is None or RL_STUDY.name in wanted
    known = {s.name for s in STUDIES} | {RL_STUDY.name}
    if wanted and wanted - known:
        print(f"unknown study in --only: {', '.join(sorted(wanted - known))}", file=sys.stderr)
        return 1
    if with_rl and not _has_rl():
        print("rl_tilt: left out: the rl extra is not installed (pip install 'btlab[rl]')", file=sys.stderr)
        with_rl = False
    rl = None
    began = time.monotonic()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="btlab-research-") as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as st:
        imported: set[tuple[str, str, str | None, str]] = set()
        for study in studies:
            import_files(st, tuple(f for f in study.files if f not in imported))
            imported.update(study.files)
            print(f"{study.name}: walk-forward ...", flush=True)
            outcomes.append(run_study(study, st, args.workers))
            print(f"{study.name}: {outcomes[-1].seconds:.0f} s; {verdict(outcomes[-1])}", flush=True)
        if with_rl:
            import_files(st, tuple(f for f in RL_STUDY.files if f not in imported))
            print("rl_tilt: one policy per seed ...", flush=True)
            rl = run_rl_study(RL_STUDY, st, Path(tmp))
            print(f"rl_tilt: {rl.seconds:.0f} s; {rl_verdict(rl)}", flush=True)
    total = time.monotonic() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(outcomes, total, args.workers, rl))
    print(f"wrote {args.out} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
