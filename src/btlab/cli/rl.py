"""``btlab rl ...``: train a tilt policy in sample (:func:`btlab.rl.train`) and judge it out of sample beside the
untilted basket (:func:`btlab.rl.evaluate`). Needs the optional extra ``btlab[rl]``; without it each command
prints one line saying how to install it and exits 1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from btlab.cli.common import (
    APP_SETTINGS,
    BtlabGroup,
    CashOption,
    CommissionOption,
    ExchangeOption,
    FormatOption,
    FromOption,
    OutputFormat,
    StoreOption,
    SymbolsOption,
    TimeframeOption,
    ToOption,
    console,
    fmt,
    friendly_errors,
    need_text,
    open_store_cli,
    plain,
    progress_task,
)

rl_app = typer.Typer(
    help="RL weight tilts of an index-tracking basket (optional extra: pip install 'btlab[rl]'): train a PPO "
    "policy on the in-sample years, then evaluate it out of sample beside the untilted basket.",
    no_args_is_help=True, cls=BtlabGroup, **APP_SETTINGS)

IndexOption = Annotated[str, typer.Option("--index", metavar="SYMBOL", help="The index to track (stored symbol).")]
TimestepsOption = Annotated[int, typer.Option(
    "--timesteps", min=1, metavar="N", help="PPO environment steps (one step = --rebalance sessions).")]
RlSeedOption = Annotated[int, typer.Option(
    "--seed", metavar="N", help="Seed of PPO and the environment: the same seed and data give the same policy.")]
OutOption = Annotated[Path, typer.Option(
    "--out", metavar="FILE.zip", help="Policy file to write; its sidecar FILE.zip.json (config, dates, data hash, "
    "versions) is written beside it.")]
KOption = Annotated[int, typer.Option("--k", min=1, metavar="N", help="Largest basket size (OMP selection).")]
LookbackOption = Annotated[int, typer.Option(
    "--lookback", min=2, metavar="N", help="Daily returns of the basket selection: the last N of the range.")]
MaxTiltOption = Annotated[float, typer.Option(
    "--max-tilt", metavar="FRACTION", help="Largest over/underweight per basket name (0.05 = 5 points).")]
RebalanceOption = Annotated[int, typer.Option(
    "--rebalance", min=1, metavar="N", help="Sessions between decisions (and between rebalances when trading).")]
PenaltyOption = Annotated[float, typer.Option(
    "--penalty", metavar="NUMBER", help="Quadratic tracking penalty of the reward: 100 * (a - penalty * a^2), a "
    "the step's active return net of costs.")]
ModelOption = Annotated[Path, typer.Option("--model", metavar="FILE.zip", help="Policy file from btlab rl train.")]
AllowOverlapOption = Annotated[bool, typer.Option(
    "--allow-overlap", help="Run even when --from is not after the training range (the result is then NOT out "
    "of sample).")]


@rl_app.command("train")
@friendly_errors
def rl_train(
    symbols: SymbolsOption = None,
    index: IndexOption = "^GSPC",
    from_: FromOption = "2013-02-08",
    to: ToOption = "2016-12-31",
    timesteps: TimestepsOption = 20_000,
    seed: RlSeedOption = 0,
    out: OutOption = Path("models/rl_tilt.zip"),
    k: KOption = 10,
    lookback: LookbackOption = 252,
    max_tilt: MaxTiltOption = 0.05,
    rebalance: RebalanceOption = 5,
    commission: CommissionOption = 0.001,
    penalty: PenaltyOption = 20.0,
    exchange: ExchangeOption = "nyse",
    timeframe: TimeframeOption = "1d",
    store: StoreOption = None,
) -> None:
    """Train a PPO tilt policy on the in-sample range only, and save it with its config and data hash.

    --symbols are the constituents to pick the basket from (stored symbols, without the index). The basket is the
    long-only matching-pursuit selection (as mp_tracker) of at most --k of them, on the
    last --lookback daily returns of --from .. --to. The agent sees the index's regimes (20- and 60-session SMA
    state machines), recent index and basket returns, the trailing tracking error and its current tilts; every
    --rebalance sessions it over/underweights each name by up to --max-tilt; its reward is the active return net
    of --commission on turnover minus a quadratic tracking penalty. Nothing after --to is read. Ctrl-C or
    SIGTERM stops the training and writes nothing (exit 130/143).

    \b
    Example (the bundled S&P 500 bars; import them first, see the README):
      A=AAPL,AMZN,BAC,CSCO,CVX,GE,GOOGL,HD,INTC,JNJ
      B=JPM,KO,MSFT,ORCL,PFE,PG,T,WFC,WMT,XOM
      btlab rl train --symbols $A,$B --index ^GSPC --from 2013-02-08 \\
          --to 2016-12-31 --timesteps 20000 --seed 0 --out models/tilt.zip
    """
    from btlab.strategies.tilt_policy import require_rl

    require_rl()
    from btlab.rl import train

    names = [s.strip() for s in need_text(symbols or "", "--symbols").split(",") if s.strip()]
    with open_store_cli(store, read_only=True) as st:
        with progress_task(f"PPO on {len(names)} names vs {index}, {timesteps:,} steps") as progress:
            result = train(names, out=out, index=index, start=from_, end=to, k=k, lookback=lookback,
                           timesteps=timesteps, seed=seed, max_tilt=max_tilt, rebalance=rebalance,
                           commission=commission, penalty=penalty, exchange=exchange, timeframe=timeframe,
                           store=st, progress=progress)
    spec, meta = result.spec, result.meta
    console.print(plain(f"basket ({spec.k}): " + ", ".join(f"{n} {w:.1%}" for n, w in zip(spec.names,
                                                                                         spec.base_weights))))
    console.print(plain(f"trained on {meta['train']['first_bar'][:10]} .. {meta['train']['last_bar'][:10]} "
                        f"({meta['train']['bars']} sessions), {timesteps:,} steps, seed {seed}, "
                        f"{result.seconds:.1f} s; in-sample episode reward {result.reward_trained:.2f} "
                        f"(untilted {result.reward_untilted:.2f})"))
    console.print(plain(f"policy: {result.model.resolve()}  sidecar: {result.sidecar.resolve()}"))


@rl_app.command("evaluate")
@friendly_errors
def rl_evaluate(
    model: ModelOption = ...,
    from_: FromOption = None,
    to: ToOption = None,
    cash: CashOption = 1_000_000.0,
    commission: CommissionOption = None,  # type: ignore[assignment]  # None: the model's
    allow_overlap: AllowOverlapOption = False,
    output: FormatOption = OutputFormat.table,
    store: StoreOption = None,
) -> None:
    """Run the policy out of sample (strategy rl_tilt) and the untilted basket on the same dates and costs.

    Both runs are recorded (btlab runs list). Prints them side by side: total return, the index's return over
    the same days, Sharpe, tracking error, active return, R², turnover and commissions. --commission defaults to
    the model's. --from defaults to the day after the model's last training session; a --from on or before it is
    refused unless --allow-overlap. The first decision comes once the observation's warm-up (79 sessions) is in
    the range: both rows trade the same days.

    \b
    Example:
      btlab rl evaluate --model models/tilt.zip --from 2017-01-01 --to 2018-02-07
    """
    from btlab.strategies.tilt_policy import require_rl

    require_rl()
    from btlab.rl import evaluate

    with open_store_cli(store, existing=True) as st:
        with progress_task(f"rl_tilt and untilted basket, {model.name}") as progress:
            result = evaluate(model, start=from_, end=to, cash=cash, commission=commission,
                              allow_overlap=allow_overlap, store=st, progress=progress)
    _show(result.table, output, overlap=allow_overlap)


#: (column, label, unit of btlab.report.format)
SHOWN: list[tuple[str, str, str]] = [
    ("total_return", "total return", "pct"), ("index_return", "index return (same days)", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("tracking_error", "tracking error (ann.)", "pct"), ("active_return", "active return (ann.)", "pct"),
    ("r2", "R²", "r2"), ("turnover", "turnover / year", "ratio"), ("commission", "commission", "money"),
    ("cost_per_year", "cost / year", "pct"), ("bars", "sessions", "int"), ("run_id", "run", "text"),
]


def _show(table: Any, output: OutputFormat, *, overlap: bool) -> None:
    """The evaluation table: rows are figures, columns the two runs (table), or one row per run (json/csv)."""
    if output is not OutputFormat.table:
        frame = table.reset_index(names="row")
        text = frame.to_json(orient="records", date_format="iso") if output is OutputFormat.json else \
            frame.to_csv(index=False)
        typer.echo(text.rstrip("\n"))
        return
    from rich.table import Table

    first, last = table["first"].iloc[0], table["last"].iloc[0]
    title = f"out of sample {first:%Y-%m-%d} .. {last:%Y-%m-%d}" if not overlap else \
        f"{first:%Y-%m-%d} .. {last:%Y-%m-%d} (overlap with training allowed: NOT out of sample)"
    out = Table(title=plain(title))
    out.add_column("")
    for row in table.index:
        out.add_column(str(row), justify="right")
    for column, label, unit in SHOWN:
        values = [f"{v:.4f}" if unit == "r2" else fmt(v, unit) for v in table[column]]
        out.add_row(label, *values)
    console.print(out)
