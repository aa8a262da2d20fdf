#!/bin/sh
# The compose stack's one-shot `demo` job: real market data and a few recorded backtests in the store, so every
# Grafana dashboard shows data on the first `make up`. Uses only btlab commands; run from the folder holding data/
# (the container's /work). The last backtest reads its bars from Redpanda: they are replayed from the store through
# the broker first, and the run equals the direct run just before it (both show on the runs dashboard). Safe to run again: imports are idempotent upserts, and the backtests run only when the
# store has no demo run yet (the sweep resumes: nothing is run twice). The test suite runs this script with the same arguments (tests/deploy).
set -eu

btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather --exchange binance --symbol BTC/USDT --timeframe 1h
btlab data import data/BTC_USDT-1m_2025-05-20_2025-08-18.feather --exchange binance --symbol BTC/USDT --timeframe 1m
btlab data import data/ETH_USDT-1m_2025-05-20_2025-08-18.feather --exchange binance --symbol ETH/USDT --timeframe 1m
btlab ingest binance-vision data/XRPETH-aggTrades-2019-10-11_2019-10-13.csv --exchange binance --symbol XRP/ETH
btlab data import data/SPY_1min_2024-02-20_2024-05-17.csv.gz --exchange nyse --symbol SPY --timeframe 1m

# A small opening-range-breakout sweep on the real SPY minutes (regular New York sessions), on the stack's Dask
# workers (BTLAB_DASK_SCHEDULER) or a local cluster; the sweep dashboard shows it. Run again, it resumes the same
# sweep: every combination is already finished, nothing runs twice.
btlab sweep run --strategy orb --exchange nyse --symbols SPY --timeframe 1m --from 2024-03-01 --to 2024-04-30 \
    --grid-param range_minutes=15,30 --grid-param stop_pct=0.25,0.5 --grid-param take_profit_pct=0,1 \
    --sweep-id demo-orb

if btlab runs list --strategy sma_cross --limit 1 --format csv | grep -q sma_cross; then
    echo "demo: runs already recorded, no new backtest"
    exit 0
fi
for params in "fast=10 slow=30" "fast=20 slow=50"; do
    set -- $params
    btlab backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h --from 2020-01-01 --to 2023-12-31 \
        -p "$1" -p "$2" --no-report
done
btlab backtest --strategy buy_hold --symbol BTC/USDT --timeframe 1h --from 2020-01-01 --to 2023-12-31 --no-report
btlab backtest --strategy sma_cross --symbols BTC/USDT,ETH/USDT --timeframe 1m --from 2025-06-01 --to 2025-06-30 \
    -p fast=30 -p slow=120 --no-report
# The same backtest "as if live": the bars go from the store through Redpanda (replayed at full speed, ending with
# an end-of-replay marker) into a Backtrader live feed. Trades and final value equal the direct run above.
btlab replay --exchange binance --symbols BTC/USDT,ETH/USDT --timeframe 1m --from 2025-06-01 --to 2025-06-30 \
    --speed max --topic btlab.demo.replay
btlab backtest --strategy sma_cross --symbols BTC/USDT,ETH/USDT --timeframe 1m --from 2025-06-01 --to 2025-06-30 \
    -p fast=30 -p slow=120 --no-report --source kafka --topic btlab.demo.replay
