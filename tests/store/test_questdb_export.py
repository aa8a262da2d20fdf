"""QuestDB bar reads through /exp (no server needed here): the answer's two formats decode into exactly the frame
read_bars returns (checked against a real DuckDB store holding the same real bars), the query text holds only
values that cannot leave a string literal, and a real local HTTP server stands in for the endpoint (auth header,
the query sent, HTTP errors, a server that never answers)."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from btlab.store.duckdb import DuckDBStore
from btlab.store.questdb_address import parse_address
from btlab.store.questdb_export import LONG_NULL, ExportError, ExportTimeout, decode_export, fetch_export
from btlab.store.questdb_sql import export_bars_sql, questdb_only_statements
from realdata import btc_1m

SERIES = {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1m"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """What read_bars returns for 300 real 1m bars, every third with a trade count and a VWAP (DuckDB store)."""
    bars = btc_1m().iloc[:300].reset_index(drop=True)
    bars["trades"] = pd.array([i if i % 3 == 0 else None for i in range(300)], dtype="Int64")
    bars["vwap"] = np.where(np.arange(300) % 3 == 0, (bars["high"] + bars["low"]) / 2, np.nan)
    with DuckDBStore(tmp_path_factory.mktemp("exp") / "s.duckdb") as store:
        store.write_bars(bars, source="test", **SERIES)
        return store.read_bars(**SERIES)


def csv_body(frame: pd.DataFrame) -> bytes:
    """The bars as /exp writes CSV (QuestDB REST docs): quoted header names, quoted ISO timestamps ending in Z,
    numbers as text, nulls empty."""
    lines = ['"ts","open","high","low","close","volume","trades","vwap"']
    for row in frame.itertuples(index=False):
        cells = [f'"{row.ts:%Y-%m-%dT%H:%M:%S.%f}Z"', *(repr(float(getattr(row, c))) for c in
                                                         ("open", "high", "low", "close", "volume"))]
        cells.append("" if pd.isna(row.trades) else str(int(row.trades)))
        cells.append("" if np.isnan(row.vwap) else repr(float(row.vwap)))
        lines.append(",".join(cells))
    return ("\r\n".join(lines) + "\r\n").encode()


def test_csv_answer_decodes_to_the_read_bars_frame(stored: pd.DataFrame) -> None:
    got = decode_export(csv_body(stored))
    pd.testing.assert_frame_equal(got, stored)
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]" and str(got["trades"].dtype) == "Int64"


def test_parquet_answer_decodes_to_the_read_bars_frame(stored: pd.DataFrame) -> None:
    trades = stored["trades"].to_numpy(dtype="float64", na_value=np.nan)
    table = pa.table({
        "ts": pa.array(stored["ts"].dt.tz_localize(None).to_numpy().astype("datetime64[us]")),  # no zone: UTC
        **{c: pa.array(stored[c].to_numpy()) for c in ("open", "high", "low", "close", "volume")},
        "trades": pa.array([None if np.isnan(v) else int(v) for v in trades], type=pa.int64()),
        "vwap": pa.array(stored["vwap"].to_numpy()),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    pd.testing.assert_frame_equal(decode_export(sink.getvalue()), stored)
    # QuestDB's LONG null may also come as its sentinel value: read as <NA> too
    sentinel = table.set_column(6, "trades", pa.array([LONG_NULL] * len(stored), type=pa.int64()))
    sink = io.BytesIO()
    pq.write_table(sentinel, sink)
    assert decode_export(sink.getvalue())["trades"].isna().all()


def test_empty_and_unreadable_answers() -> None:
    empty = decode_export(b'"ts","open","high","low","close","volume","trades","vwap"\r\n')
    assert len(empty) == 0 and str(empty["ts"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(ExportError):
        decode_export(b'{"query":"x","error":"table does not exist [table=ohlcv]","position":0}')


def test_export_sql_holds_only_plain_values_and_the_read_bars_bounds() -> None:
    sql = export_bars_sql("binance", "BTC/USDT:USDT", "1m", pd.Timestamp("2024-01-01 00:00:00.0000001", tz="UTC"),
                          pd.Timestamp("2024-02-01"))
    assert sql == ("SELECT ts, open, high, low, close, volume, trades, vwap FROM ohlcv WHERE exchange = 'binance' "
                   "AND symbol = 'BTC/USDT:USDT' AND timeframe = '1m' AND ts >= '2024-01-01T00:00:00.000001Z' "
                   "AND ts < '2024-02-01T00:00:00.000000Z' ORDER BY ts")  # bounds rounded up to the us, as bound
    for bad in ("x' OR '1'='1", "a\\b", "", "a;b", "é", "x" * 101):
        assert export_bars_sql(bad, "BTC/USDT", "1m", None, None) is None
    assert any(s.startswith("SELECT ts, open") and "'BTC/USDT:USDT'" in s for s in questdb_only_statements())


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    status = 200
    delay = 0.0
    seen: list[tuple[str, dict, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        type(self).seen.append((urlsplit(self.path).path, parse_qs(urlsplit(self.path).query),
                                self.headers.get("Authorization")))
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    _Handler.seen, _Handler.status, _Handler.delay = [], 200, 0.0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def test_fetch_sends_query_and_credentials_and_reports_failures(server, stored: pd.DataFrame) -> None:
    port = server.server_address[1]
    config = parse_address(f"http::addr=127.0.0.1:{port};username=reader;password=s3cret-pw;pg_port={port};")
    _Handler.body = csv_body(stored)
    sql = export_bars_sql("binance", "BTC/USDT", "1m", None, None)
    pd.testing.assert_frame_equal(decode_export(fetch_export(config, sql, 5.0)), stored)
    path, query, auth = _Handler.seen[-1]
    assert path == "/exp" and query["query"] == [sql] and query["fmt"] == ["parquet"]
    assert auth == "Basic cmVhZGVyOnMzY3JldC1wdw=="  # reader:s3cret-pw
    _Handler.status, _Handler.body = 400, b'{"error":"bad"}'
    with pytest.raises(ExportError) as err:
        fetch_export(config, sql, 5.0)
    assert "s3cret" not in str(err.value) and not isinstance(err.value, ExportTimeout)
    _Handler.status, _Handler.delay = 200, 3.0
    started = time.monotonic()
    with pytest.raises(ExportTimeout):
        fetch_export(config, sql, 0.5)
    assert time.monotonic() - started < 2.5
