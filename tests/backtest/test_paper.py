"""Paper trading end to end: the local fake Binance replays the recorded real BTCUSDT trade stream (2024-08-08/09,
~11 minutes) over its WebSocket, the live ingest turns it into 1s bars published to a topic on the real broker
(Tansu, tests/broker.py), the Kafka live feed plays them to sma_cross on Backtrader's simulated broker, and the
recorder writes the run into a real DuckDB store while it runs. No mocks."""

from __future__ import annotations

import threading
import time
import uuid

import pandas as pd
import pytest
from broker import kafka_bootstrap  # noqa: F401  (session fixture: a real Tansu broker)
from fakes.binance import FakeBinance

from btlab.backtest.paper import PaperRun
from btlab.backtest.runner import run_backtest
from btlab.store.duckdb import DuckDBStore
from btlab.stream.config import StreamConfig

PARAMS = {"fast": 3, "slow": 10}
SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1s"}


def _paper(fake: FakeBinance, store: DuckDBStore, bootstrap: str, **kw) -> PaperRun:
    config = StreamConfig(bootstrap, prefix=f"paper{uuid.uuid4().hex[:10]}", partitions=1)
    return PaperRun("sma_cross", symbols="BTC/USDT", timeframe="1s", params=PARAMS, store=store, kafka=config,
                    api_url=fake.base_url, ws_url=fake.ws_origin, lateness=1.0, flush_seconds=0.3, **kw)


def _direct(store: DuckDBStore, played: pd.DataFrame):
    """The same strategy backtested directly on the bars the live path stored, over the range the paper run played."""
    return run_backtest("sma_cross", symbol="BTC/USDT", timeframe="1s", params=PARAMS, store=store, record=False,
                        start=played["ts"].iloc[0].isoformat(), end=played["ts"].iloc[-1].isoformat(),
                        allow_gaps=True)


def _same_trades(paper, direct) -> None:
    cols = ["ts", "symbol", "direction", "size", "entry_ts", "entry_price", "exit_price", "pnl", "pnl_net",
            "commission", "bars_held"]
    assert len(paper.trades) > 0
    pd.testing.assert_frame_equal(paper.trades[cols].reset_index(drop=True), direct.trades[cols].reset_index(drop=True))
    assert paper.equity["value"].iloc[-1] == direct.equity["value"].iloc[-1]


def test_paper_run_trades_live_and_is_recorded_while_it_runs(tmp_path, kafka_bootstrap):  # noqa: F811
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "paper.duckdb") as store:
        fake.ws.speed = 40.0  # the 11 recorded minutes in ~16 s
        run = _paper(fake, store, kafka_bootstrap, idle_timeout=30)
        seen: dict[str, object] = {}

        def watch() -> None:  # another thread reads the store through its API while the run goes on
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    row = store.get_run(run.run_id)
                except Exception:  # noqa: BLE001 - not written yet
                    time.sleep(0.1)
                    continue
                equity, trades, orders = (store.read_equity(run.run_id), store.read_trades(run.run_id),
                                          store.read_orders(run.run_id))
                if len(trades) >= 2 and len(orders) >= 4:
                    seen.update(status=row["status"], heartbeat=row["heartbeat"], equity=len(equity),
                                trades=len(trades), orders=len(orders),
                                ticks=store.tick_span(exchange="binance", symbol="BTC/USDT").ticks)
                    break
                time.sleep(0.1)
            run.stop()

        watcher = threading.Thread(target=watch)
        watcher.start()
        result = run.run()
        watcher.join()
        assert seen["status"] == "running" and seen["heartbeat"] is not None, seen
        assert seen["equity"] > 10 and seen["trades"] >= 2 and seen["orders"] >= 4 and seen["ticks"] > 0
        assert result.stopped_by == "stop" and result.exit_code == 0
        row = store.get_run(run.run_id)
        assert row["status"] == "stopped" and row["error"] is None
        played = result.run.bars
        assert row["bars"] == len(played) and pd.Timestamp(row["data_from"]).tz_convert("UTC") == played["ts"].iloc[0]
        assert row["config"]["paper"]["topic"] == result.topic
        # everything the run did is in the store, and fewer bars were played than the recording holds
        assert len(store.read_trades(run.run_id)) == len(result.run.trades) > seen["trades"] - 1
        assert len(store.read_equity(run.run_id)) == len(result.run.equity) == len(played)
        stored = store.read_bars(**SERIES)
        assert len(played) < 600 and set(played["ts"]) <= set(stored["ts"])
        # the paper path changes nothing: a direct backtest over the bars the live path stored trades the same
        _same_trades(result.run, _direct(store, played))


def test_paper_run_stops_when_idle_after_playing_every_published_bar(tmp_path, kafka_bootstrap):  # noqa: F811
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "idle.duckdb") as store:
        fake.ws.speed = 200.0
        result = _paper(fake, store, kafka_bootstrap, idle_timeout=2).run()
        assert result.stopped_by == "idle"
        played = result.run.bars
        stored = store.read_bars(**SERIES)
        # the end marker came after the last bar: every bar published (= every bar stored) was played
        assert len(played) == result.bars_published == len(stored) > 400
        assert list(played["ts"]) == list(stored["ts"])
        assert store.get_run(result.run.run_id)["status"] == "stopped"
        assert not store.read_health(service="paper", metric="heartbeat").empty
        _same_trades(result.run, _direct(store, played))


def test_max_bars_stops_after_that_many_bars(tmp_path, kafka_bootstrap):  # noqa: F811
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "max.duckdb") as store:
        fake.ws.speed = 200.0
        result = _paper(fake, store, kafka_bootstrap, max_bars=40, idle_timeout=20).run()
        assert result.stopped_by == "max_bars" and len(result.run.equity) == 40
        assert store.get_run(result.run.run_id)["status"] == "stopped"
        assert len(store.read_equity(result.run.run_id)) == 40


def test_bad_arguments_are_refused_before_anything_is_opened():
    from btlab.errors import InvalidArgumentError, StrategyParameterError

    with pytest.raises(StrategyParameterError):
        PaperRun("sma_cross", params={"fast": 30, "slow": 10}, kafka="127.0.0.1:1")
    with pytest.raises(InvalidArgumentError, match="max_bars"):
        PaperRun("sma_cross", max_bars=0, kafka="127.0.0.1:1")


def test_a_run_stopped_before_its_first_bar_is_stopped_without_metrics(tmp_path, kafka_bootstrap):  # noqa: F811
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "early.duckdb") as store:
        fake.ws.speed = 1.0
        run = _paper(fake, store, kafka_bootstrap)
        run.stop()  # before the run starts: honoured once it waits for its first bar
        result = run.run()
        assert result.stopped_by == "stop" and result.run.summary is None and result.run.equity.empty
        row = store.get_run(run.run_id)
        assert row["status"] == "stopped" and row["bars"] == 0 and row["error"] is None


def test_idle_before_any_bar_stops_the_run_without_metrics(tmp_path, kafka_bootstrap):  # noqa: F811
    """ETH/USDT is listed by the fake exchange but has no trade in the recording: no bar ever comes."""
    with FakeBinance(now="2024-08-09 00:10:00") as fake, DuckDBStore(tmp_path / "quiet.duckdb") as store:
        config = StreamConfig(kafka_bootstrap, prefix=f"paper{uuid.uuid4().hex[:10]}", partitions=1)
        quiet = PaperRun("sma_cross", symbols="ETH/USDT", timeframe="1s", params=PARAMS, store=store, kafka=config,
                         api_url=fake.base_url, ws_url=fake.ws_origin, idle_timeout=1)
        result = quiet.run()
        assert result.stopped_by == "idle" and result.bars_published == 0 and result.run.summary is None
        assert store.get_run(quiet.run_id)["status"] == "stopped"
