"""A local fake Binance spot exchange (aiohttp) that replays RECORDED REAL Binance data, with fault injection.

Nothing here is synthetic: every price, amount and time served comes from a real Binance recording in the
project's ``data/`` folder or in ``../shared/data`` (see that folder's README). ccxt and ccxt.pro reach the
fake through their ordinary HTTP/WebSocket stacks; only the exchange's URLs are changed
(:func:`make_ccxt_exchange`), nothing is patched or mocked.

REST (``http://127.0.0.1:<port>``), Binance spot semantics
-----------------------------------------------------------
==============================  =====================================================================================
``GET /api/v3/ping``            ``{}``
``GET /api/v3/time``            ``{"serverTime": now}`` -- the fake's clock (:meth:`FakeBinance.set_now`)
``GET /api/v3/exchangeInfo``    the recorded response ``BINANCE.exchangeInfo.2021-10-12.cryptofeed`` (cryptofeed
                                recorder line ``<url> -> <ts>: <body>``; the body is served byte for byte)
``GET /api/v3/klines``          ``symbol, interval, startTime, endTime, limit`` (default 500, max 1000): bars with
                                ``startTime <= openTime <= endTime`` ascending, the first ``limit`` of them; only
                                ``endTime``: the last ``limit`` bars up to it; neither: the most recent ``limit``.
                                Only bars that have OPENED by ``now`` exist; the bar containing ``now`` is served as
                                the still-open current bar (its values are the recorded final ones).
                                Sources: freqtrade feather klines ``<BASE>_<QUOTE>-<interval>_*.feather``
                                (``date, open, high, low, close, volume``; files of one series are merged). Fields
                                the files do not hold are served as ``"0"`` (quote volume, taker buy base/quote
                                volume) and ``0`` (trade count); ``closeTime = openTime + interval - 1``; prices and
                                volume as ``"%.8f"`` strings (checked to round-trip to the same float64).
``GET /api/v3/aggTrades``       ``symbol, fromId, startTime, endTime, limit`` (default 500, max 1000): ``fromId``
                                inclusive; time bounds inclusive and at most 1 hour apart (-1127 otherwise); ``fromId``
                                with a time bound is -1128; nothing: the most recent. ccxt's binance
                                ``fetch_trades(symbol, since, limit)`` calls this endpoint with
                                ``startTime=since, endTime=since+3600000``. Source: the real XRPETH aggTrades of
                                2019-10-11 .. 2019-10-13 (``<SYMBOL>-aggTrades-*.csv``, data.binance.vision layout).
``GET /api/v3/trades``          ``symbol, limit``: the most recent raw trades (``fetch_trades`` with
                                ``params={"fetchTradesMethod": "publicGetTrades"}``).
``GET /api/v3/historicalTrades``  ``symbol, fromId, limit``: raw trades from ``fromId`` (inclusive), or the most
                                recent. Raw trades: the ``btcusdt@trade`` events of the WebSocket recording
                                (19,904 BTCUSDT trades, ids 3735683259..3735703162; ``quoteQty`` = price x qty
                                to 8 decimals, computed: the stream does not carry it).
==============================  =====================================================================================

Errors are Binance's: HTTP 400 with ``{"code": -1121, "msg": "Invalid symbol."}`` and the like. Only trades and bars
with a time ``<= now`` exist.

WebSocket (``ws://127.0.0.1:<port>/ws``)
-----------------------------------------
``/ws`` (or ``/ws/<anything>``, as ccxt.pro connects to ``.../ws/0``) takes JSON-RPC
``{"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}`` and answers ``{"result": null, "id": 1}``;
``UNSUBSCRIBE`` and ``LIST_SUBSCRIPTIONS`` work too. ``/ws/btcusdt@trade`` subscribes through the path,
``/stream?streams=a/b`` is the combined endpoint (events wrapped as ``{"stream": ..., "data": ...}``; on ``/ws``
they are sent bare, as Binance does). Replayed: the recorded spot stream ``ws_spot/btcusdt_2024080{8,9}.gz``
(``btcusdt@trade``, ``btcusdt@bookTicker``, ``btcusdt@depth@100ms``; ``<local receive ns> <raw JSON>`` lines),
at the recorded pace (local receive times) sped up ``speed`` times (``None``: as fast as possible).

The replay is one shared "live feed": a new connection continues where the previous one stopped (plus
``skip_on_reconnect`` recorded messages, the loss a real reconnect suffers), so a reconnecting client can collect
the whole recording. At the end of the recording the connection stays open and idle (``close_at_end`` closes it).

Faults (configurable per test)
------------------------------
* REST: :meth:`FakeBinance.fail_next` -- the next ``count`` requests (optionally only of one path) get HTTP 429
  with ``Retry-After``, 418, 5xx (503 with Binance's ``-1001`` JSON body, 502 with an HTML body, ...), ``0`` (the
  connection is dropped without a response) or a delayed answer; :meth:`FakeBinance.set_latency` slows a path;
  :meth:`FakeBinance.corrupt_next` corrupts one item of the next klines/trades answer (a field missing, ``"NaN"``,
  a negative price, a zero amount, an unparsable time -- a damaged copy of a real record).
* WebSocket (``FakeBinance.ws``, a :class:`WsFaults`): drop the n-th connection after N messages
  (``drop_after``), insert malformed copies of trades (invalid JSON, missing field, NaN/negative/zero values,
  bad time: ``malformed``), send trades twice (``duplicate``), swap a trade with the next one (``swap``).
  Trade faults are keyed by the trade's 0-based index in the recording (trade id - first id).
  ``FakeBinance.ws_trade_log`` lists (connection, trade index) of every trade message sent.

Run standalone (benchmarks, manual tries): ``python tests/fakes/binance.py --now "2025-08-18 18:27:30"``.

Usage::

    from fakes.binance import fake_binance, make_ccxt_exchange   # noqa: F401  (fake_binance is a fixture)

    def test_x(fake_binance):
        fake_binance.set_now("2025-08-18 12:00:30")
        ex = make_ccxt_exchange(fake_binance.base_url)
        ex.fetch_ohlcv("BTC/USDT", "1m", since=..., limit=1000)
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import WSMsgType, web

from btlab.marketdata.sources.ccxt.exchange import make_exchange

__all__ = [
    "DATA_DIRS",
    "FakeBinance",
    "RequestRecord",
    "WsFaults",
    "fake_binance",
    "load_klines",
    "load_ws_trades",
    "make_ccxt_exchange",
]

ROOT = Path(__file__).resolve().parents[2]
#: Where recordings are looked up, in order (the project's own copies first).
DATA_DIRS: tuple[Path, ...] = (ROOT / "data", ROOT.parent / "shared" / "data")
_SUBDIRS = ("", "binance", "binance/rest", "binance/ohlcv", "binance/ws_spot", "binance/aggtrades")

EXCHANGE_INFO_NAME = "BINANCE.exchangeInfo.2021-10-12.cryptofeed"
WS_RECORDING_GLOB = "btcusdt_*.gz"
AGG_TRADES_GLOB = "*-aggTrades-*.csv"
KLINES_GLOB = "*_*-*.feather"

_SECOND = 1000
INTERVAL_MS: dict[str, int] = {
    "1s": _SECOND, "1m": 60 * _SECOND, "3m": 180 * _SECOND, "5m": 300 * _SECOND, "15m": 900 * _SECOND,
    "30m": 1800 * _SECOND, "1h": 3600 * _SECOND, "2h": 7200 * _SECOND, "4h": 14400 * _SECOND,
    "6h": 21600 * _SECOND, "8h": 28800 * _SECOND, "12h": 43200 * _SECOND, "1d": 86400 * _SECOND,
    "3d": 259200 * _SECOND, "1w": 604800 * _SECOND, "1M": 2592000 * _SECOND,  # 1M: never in the data
}
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
HOUR_MS = 3_600_000
_QUOTE_STEP = Decimal("0.00000001")


# ---------------------------------------------------------------------------------------------------------------
# recorded data
# ---------------------------------------------------------------------------------------------------------------
def _candidates(dirs: Sequence[Path]) -> list[Path]:
    seen, out = set(), []
    for base in dirs:
        for sub in _SUBDIRS:
            d = (base / sub) if sub else base
            if d.is_dir() and d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(d)
    return out


def _find(name: str, dirs: Sequence[Path]) -> Path:
    for d in _candidates(dirs):
        for cand in (d / name, d / f"{name}.gz"):
            if cand.is_file():
                return cand
    raise FileNotFoundError(f"recording {name} not found under {', '.join(map(str, dirs))}")


def _glob(pattern: str, dirs: Sequence[Path]) -> list[Path]:
    return [p for d in _candidates(dirs) for p in sorted(d.glob(pattern))]


def _unique_names(paths: list[Path]) -> list[Path]:
    """The first path of each file name (a recording copied into the project is also in ../shared), by name."""
    out: dict[str, Path] = {}
    for p in paths:
        out.setdefault(p.name, p)
    return [out[name] for name in sorted(out)]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


@lru_cache(maxsize=4)
def load_exchange_info(dirs: tuple[Path, ...] = DATA_DIRS) -> tuple[str, frozenset[str]]:
    """The recorded exchangeInfo body (text) and its set of symbol ids."""
    text = _read_text(_find(EXCHANGE_INFO_NAME, dirs))
    for line in text.splitlines():
        if " -> " in line and "exchangeInfo" in line.split(" -> ", 1)[0]:
            body = line.split(" -> ", 1)[1].split(": ", 1)[1]
            symbols = frozenset(s["symbol"] for s in json.loads(body)["symbols"])
            return body, symbols
    raise ValueError(f"no exchangeInfo response in {EXCHANGE_INFO_NAME}")


@dataclass(frozen=True)
class Klines:
    """One recorded kline series: ``open_ms`` (int64, strictly increasing), ``values`` (n x 5 float64 OHLCV)."""

    symbol: str
    interval: str
    open_ms: np.ndarray
    values: np.ndarray
    files: tuple[str, ...]

    def frame(self) -> pd.DataFrame:
        """The series as a btlab bar frame (``ts`` UTC open time, ``open..volume``)."""
        out = pd.DataFrame(self.values, columns=["open", "high", "low", "close", "volume"])
        out.insert(0, "ts", pd.to_datetime(self.open_ms, unit="ms", utc=True).astype("datetime64[ns, UTC]"))
        return out


_KLINE_NAME = re.compile(r"^([A-Z0-9]+)_([A-Z0-9]+)-(\d+[smhdwM])(?:[_-].*)?\.feather$")


@lru_cache(maxsize=4)
def load_klines(dirs: tuple[Path, ...] = DATA_DIRS) -> dict[tuple[str, str], Klines]:
    """Every recorded kline series, keyed by ``(symbol id, interval)`` (e.g. ``("BTCUSDT", "1m")``)."""
    parts: dict[tuple[str, str], list[tuple[Path, pd.DataFrame]]] = {}
    for path in _unique_names(_glob(KLINES_GLOB, dirs)):
        m = _KLINE_NAME.match(path.name)
        if not m or m.group(3) not in INTERVAL_MS:
            continue
        frame = pd.read_feather(path)
        parts.setdefault((m.group(1) + m.group(2), m.group(3)), []).append((path, frame))
    out = {}
    for (symbol, interval), items in parts.items():
        frame = pd.concat([f for _, f in items], ignore_index=True)
        ms = pd.DatetimeIndex(pd.to_datetime(frame["date"], utc=True)).as_unit("ms").asi8
        frame = frame.assign(_ms=ms).drop_duplicates("_ms").sort_values("_ms")
        values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
        out[(symbol, interval)] = Klines(
            symbol, interval, frame["_ms"].to_numpy(np.int64), values, tuple(sorted({p.name for p, _ in items}))
        )
    return out


@dataclass(frozen=True)
class TradeTable:
    """Recorded trades of one symbol, sorted by id: ``ids, times`` (ms) int64, ``prices, qtys`` (exchange strings),
    ``buyer_maker, best_match`` bool; for aggregated trades also ``first_ids, last_ids``."""

    symbol: str
    ids: np.ndarray
    times: np.ndarray
    prices: list[str]
    qtys: list[str]
    buyer_maker: np.ndarray
    best_match: np.ndarray
    first_ids: np.ndarray | None = None
    last_ids: np.ndarray | None = None


@lru_cache(maxsize=4)
def load_agg_trades(dirs: tuple[Path, ...] = DATA_DIRS) -> dict[str, TradeTable]:
    """Recorded aggTrades per symbol id (data.binance.vision CSV: a, p, q, f, l, T, m, M; no header)."""
    out: dict[str, list[list[str]]] = {}
    for path in _unique_names(_glob(AGG_TRADES_GLOB, dirs)):
        symbol = path.name.split("-aggTrades-")[0].upper()
        rows = [r for r in csv.reader(_read_text(path).splitlines()) if r and r[0].strip().isdigit()]
        out.setdefault(symbol, []).extend(rows)
    tables = {}
    for symbol, rows in out.items():
        rows = sorted({int(r[0]): r for r in rows}.values(), key=lambda r: int(r[0]))
        tables[symbol] = TradeTable(
            symbol=symbol,
            ids=np.array([int(r[0]) for r in rows], dtype=np.int64),
            prices=[r[1] for r in rows],
            qtys=[r[2] for r in rows],
            first_ids=np.array([int(r[3]) for r in rows], dtype=np.int64),
            last_ids=np.array([int(r[4]) for r in rows], dtype=np.int64),
            times=np.array([int(r[5]) for r in rows], dtype=np.int64),
            buyer_maker=np.array([r[6].strip().lower() == "true" for r in rows]),
            best_match=np.array([r[7].strip().lower() == "true" for r in rows]),
        )
    return tables


@dataclass(frozen=True)
class WsMessage:
    """One recorded stream message: local receive ns, stream name, the combined-stream envelope text and the bare
    event text; ``trade_index`` is the 0-based index among the recording's trade events (-1 for other streams)."""

    local_ns: int
    stream: str
    envelope: str
    data: str
    trade_index: int


@lru_cache(maxsize=4)
def load_ws_recording(dirs: tuple[Path, ...] = DATA_DIRS) -> tuple[WsMessage, ...]:
    """The recorded spot stream messages in receive order (the REST depth snapshot line is left out)."""
    messages: list[WsMessage] = []
    seen_trades: set[int] = set()
    n_trades = 0
    for path in _unique_names(_glob(WS_RECORDING_GLOB, dirs)):
        for line in _read_text(path).splitlines():
            if not line.strip():
                continue
            ns_text, raw = line.split(" ", 1)
            if not raw.startswith('{"stream":"'):
                continue
            stream = raw[11 : raw.index('"', 11)]
            start = raw.index('"data":') + 7
            data = raw[start:-1]
            index = -1
            if stream.endswith("@trade"):
                tid = json.loads(data)["t"]
                if tid in seen_trades:
                    continue
                seen_trades.add(tid)
                index = n_trades
                n_trades += 1
            messages.append(WsMessage(int(ns_text), stream, raw, data, index))
    return tuple(messages)


@lru_cache(maxsize=4)
def load_ws_trades(dirs: tuple[Path, ...] = DATA_DIRS) -> dict[str, TradeTable]:
    """The raw trades of the WebSocket recording, per symbol id (``t, p, q, T, m, M`` of each trade event)."""
    events = [json.loads(m.data) for m in load_ws_recording(dirs) if m.trade_index >= 0]
    out = {}
    for symbol in sorted({e["s"] for e in events}):
        evs = sorted((e for e in events if e["s"] == symbol), key=lambda e: e["t"])
        out[symbol] = TradeTable(
            symbol=symbol,
            ids=np.array([e["t"] for e in evs], dtype=np.int64),
            times=np.array([e["T"] for e in evs], dtype=np.int64),
            prices=[e["p"] for e in evs],
            qtys=[e["q"] for e in evs],
            buyer_maker=np.array([bool(e["m"]) for e in evs]),
            best_match=np.array([bool(e.get("M", True)) for e in evs]),
        )
    return out


def default_now_ms(dirs: tuple[Path, ...] = DATA_DIRS) -> int:
    """30 s into the newest recorded 1m bar: that bar is the still-open current bar, everything else is final."""
    lasts = [int(k.open_ms[-1]) for (s, i), k in load_klines(dirs).items() if i == "1m"]
    return (max(lasts) if lasts else int(time.time() * 1000)) + 30_000


def to_ms(value: Any) -> int:
    """Milliseconds since the epoch from an int (ms), a datetime, a pandas Timestamp or a date string (UTC)."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


# ---------------------------------------------------------------------------------------------------------------
# faults and bookkeeping
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class RestFault:
    """One injected REST failure. ``status`` 0 drops the connection without an answer."""

    status: int
    retry_after: float | None = None
    body: str | None = None
    path: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class RequestRecord:
    """One REST request the fake received: path, query parameters, HTTP status sent (0: dropped)."""

    method: str
    path: str
    params: dict[str, str]
    status: int
    at: float


MALFORMED_KINDS = ("invalid_json", "missing_field", "nan_price", "nan_qty", "negative_price", "zero_qty", "bad_time")


@dataclass
class WsFaults:
    """WebSocket replay settings and faults (change them before the client connects).

    Attributes:
        speed: replay pace = recorded pace x ``speed``; ``None`` sends as fast as possible.
        drop_after: the i-th connection (0-based) is dropped (TCP abort, no close frame) after
            ``drop_after[i]`` stream messages; connections beyond the list are not dropped.
        skip_on_reconnect: recorded messages lost between a drop and the next connection.
        malformed: trade index -> kind (one of :data:`MALFORMED_KINDS`): a corrupted copy of that trade is sent
            just before the real one. Note: ccxt.pro 4.5 does not survive ``invalid_json``, ``nan_price`` or
            ``nan_qty``: the exception escapes its receive loop and later ``watch_trades`` calls never resolve
            (a consumer needs its own timeout and reconnect).
        duplicate: trade indexes sent twice in a row.
        swap: trade indexes sent after the next trade (out of order).
        close_at_end: close the connection (code 1000) after the last recorded message.
    """

    speed: float | None = None
    drop_after: list[int] = field(default_factory=list)
    skip_on_reconnect: int = 0
    malformed: dict[int, str] = field(default_factory=dict)
    duplicate: set[int] = field(default_factory=set)
    swap: set[int] = field(default_factory=set)
    close_at_end: bool = False


def _binance_error(code: int, msg: str, status: int = 400) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _default_fault_body(status: int) -> tuple[str, str]:
    if status in (418, 429):
        return (
            json.dumps({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight "
                        "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}),
            "application/json",
        )
    if status in (500, 503):
        return (
            json.dumps({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
            "application/json",
        )
    return (f"<html><head><title>{status}</title></head><body><h1>{status} Bad Gateway</h1></body></html>",
            "text/html")


_FIELDS = {"price": ("p", "price", 1), "qty": ("q", "qty", 5), "time": ("T", "time", 0)}


def _corrupt_item(item: Any, kind: str) -> Any:
    """A corrupted copy of one REST list item (an aggTrade/trade dict or a kline array)."""
    def key(name: str) -> Any:
        short, long_, pos = _FIELDS[name]
        if isinstance(item, list):
            return pos
        return short if short in item else long_

    item = list(item) if isinstance(item, list) else dict(item)
    if kind == "missing_field":
        if isinstance(item, list):
            item[key("price")] = None
        else:
            item.pop(key("price"), None)
    elif kind == "nan_price":
        item[key("price")] = "NaN"
    elif kind == "nan_qty":
        item[key("qty")] = "NaN"
    elif kind == "negative_price":
        item[key("price")] = "-" + str(item[key("price")])
    elif kind == "zero_qty":
        item[key("qty")] = "0.00000000"
    elif kind == "bad_time":
        item[key("time")] = "yesterday"
    return item


class _BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _int_param(query: Any, name: str, *, required: bool = False) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        if required:
            raise _BadRequest(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
        return None
    try:
        return int(raw)
    except ValueError:
        raise _BadRequest(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None


def _limit(query: Any) -> int:
    limit = _int_param(query, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if limit <= 0 or limit > MAX_LIMIT:
        raise _BadRequest(-1130, "Invalid data sent for a parameter.")
    return limit


def _trade_range(table: TradeTable, visible: int, *, from_id: int | None, start: int | None, end: int | None,
                 limit: int) -> tuple[int, int]:
    """Index range [lo, hi) of the trades to answer, Binance rules (see module docs)."""
    if from_id is not None:
        lo = int(np.searchsorted(table.ids[:visible], from_id, side="left"))
        return lo, min(lo + limit, visible)
    times = table.times[:visible]
    if start is not None:
        lo = int(np.searchsorted(times, start, side="left"))
        hi = int(np.searchsorted(times, end, side="right")) if end is not None else visible
        return lo, min(hi, lo + limit)
    hi = int(np.searchsorted(times, end, side="right")) if end is not None else visible
    return max(0, hi - limit), hi


# ---------------------------------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------------------------------
class FakeBinance:
    """The fake exchange; a context manager that serves in a background thread (own event loop).

    Args:
        now: the server clock (ms, Timestamp or string, UTC); default :func:`default_now_ms`.
        clock_rate: 0 freezes the clock at ``now`` (default); 1 lets it run with the wall clock.
        data_dirs: where recordings are looked up.

    Attributes:
        base_url: ``http://127.0.0.1:<port>`` (REST origin; Binance paths below it).
        ws_url: ``ws://127.0.0.1:<port>/ws``.
        ws: the :class:`WsFaults` in effect.
        requests: every REST request served, in order (:class:`RequestRecord`).
        ws_connections: WebSocket connections accepted so far; ``ws_sent``: stream messages sent.
    """

    def __init__(self, *, now: Any = None, clock_rate: float = 0.0, data_dirs: Sequence[Path] = DATA_DIRS) -> None:
        self.dirs = tuple(Path(d) for d in data_dirs)
        self._exchange_info, self.symbols = load_exchange_info(self.dirs)
        self.klines = load_klines(self.dirs)
        self.agg_trades = load_agg_trades(self.dirs)
        self._now_ms = to_ms(now) if now is not None else default_now_ms(self.dirs)
        self._clock_rate = float(clock_rate)
        self._clock_t0 = time.monotonic()
        self._lock = threading.Lock()
        self._rest_faults: deque[RestFault] = deque()
        self._corruptions: list[tuple[str, str, int]] = []
        self._latency: dict[str, float] = {}
        self.requests: list[RequestRecord] = []
        self.ws = WsFaults()
        self.ws_connections = 0
        self.ws_sent = 0
        #: (connection index, trade index) of every trade message sent, corrupted copies included
        self.ws_trade_log: list[tuple[int, int]] = []
        self._ws_cursor = 0
        self._ws_clients: set[web.WebSocketResponse] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0

    # ---- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "FakeBinance":
        self._thread = threading.Thread(target=self._serve, name="fake-binance", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"fake Binance failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> "FakeBinance":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            app = web.Application(middlewares=[self._middleware])
            app.router.add_get("/api/v3/ping", self._ping)
            app.router.add_get("/api/v3/time", self._time)
            app.router.add_get("/api/v3/exchangeInfo", self._exchange_info_handler)
            app.router.add_get("/api/v3/klines", self._klines)
            app.router.add_get("/api/v3/aggTrades", self._agg_trades)
            app.router.add_get("/api/v3/trades", self._recent_trades)
            app.router.add_get("/api/v3/historicalTrades", self._historical_trades)
            app.router.add_get("/ws", self._ws_handler)
            app.router.add_get("/ws/{name:.*}", self._ws_handler)
            app.router.add_get("/stream", self._ws_handler)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = int(self._runner.addresses[0][1])
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    async def _shutdown(self) -> None:
        for ws in list(self._ws_clients):
            await ws.close(code=1001, message=b"server shutting down")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def ws_origin(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # ---- configuration (any thread) -------------------------------------------------------------------------
    def set_now(self, value: Any, *, clock_rate: float | None = None) -> int:
        """Set the server clock (ms, Timestamp or UTC string); returns it in ms."""
        with self._lock:
            self._now_ms = to_ms(value)
            self._clock_t0 = time.monotonic()
            if clock_rate is not None:
                self._clock_rate = float(clock_rate)
        return self._now_ms

    @property
    def now_ms(self) -> int:
        """The server clock in ms since the epoch."""
        with self._lock:
            return self._now_ms + int((time.monotonic() - self._clock_t0) * 1000 * self._clock_rate)

    def fail_next(self, count: int = 1, status: int = 429, *, retry_after: float | None = 0, path: str | None = None,
                  body: str | None = None, delay: float = 0.0) -> None:
        """Make the next ``count`` REST requests (of ``path`` only, if given) fail.

        ``status``: 429/418 (with ``Retry-After: retry_after`` seconds unless None, Binance -1003 body), 500/503
        (Binance -1001 JSON body), 502/504 and others (HTML body), 0 (connection dropped, no response).
        ``delay``: seconds to wait before failing (exceed the client timeout to cause a timeout).
        """
        with self._lock:
            for _ in range(count):
                self._rest_faults.append(RestFault(status, retry_after, body, path, delay))

    def set_latency(self, seconds: float, path: str = "/api/v3/klines") -> None:
        """Answer every request of ``path`` after ``seconds``."""
        with self._lock:
            self._latency[path] = float(seconds)

    def corrupt_next(self, path: str, kind: str, index: int = 0) -> None:
        """Corrupt item ``index`` of the next successful JSON-list answer of ``path`` (klines, aggTrades, trades).

        ``kind`` as for WebSocket trades (:data:`MALFORMED_KINDS` but ``invalid_json``): a field removed or set to
        ``"NaN"``, a negative price, a zero amount, an unparsable time. For klines, price = open, amount = volume.
        """
        if kind not in MALFORMED_KINDS or kind == "invalid_json":
            raise ValueError(f"unknown kind {kind!r}")
        with self._lock:
            self._corruptions.append((path, kind, index))

    def clear_faults(self) -> None:
        """Forget the REST faults not yet used."""
        with self._lock:
            self._rest_faults.clear()
            self._corruptions.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._rest_faults)

    def count(self, path: str = "/api/v3/klines", *, status: int | None = None) -> int:
        """Requests received for ``path`` (optionally only those answered with ``status``)."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path and (status is None or r.status == status))

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- REST -----------------------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> RestFault | None:
        with self._lock:
            for i, fault in enumerate(self._rest_faults):
                if fault.path is None or fault.path == path:
                    del self._rest_faults[i]
                    return fault
        return None

    def _log(self, request: web.Request, status: int) -> None:
        with self._lock:
            self.requests.append(RequestRecord(request.method, request.path, dict(request.query), status,
                                               time.monotonic()))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/ws" or request.path.startswith(("/ws/", "/stream")):
            return await handler(request)
        latency = self._latency.get(request.path, 0.0)
        if latency:
            await asyncio.sleep(latency)
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            self._log(request, fault.status)
            if fault.status == 0:
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # nothing is sent
            body, ctype = (fault.body, "application/json") if fault.body is not None else _default_fault_body(
                fault.status)
            headers = {}
            if fault.retry_after is not None and fault.status in (418, 429):
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return web.Response(status=fault.status, text=body, content_type=ctype, headers=headers)
        try:
            response = await handler(request)
        except _BadRequest as exc:
            response = _binance_error(exc.code, exc.msg)
        except web.HTTPException as exc:
            self._log(request, exc.status)
            raise
        self._log(request, response.status)
        if response.status == 200 and isinstance(response, web.Response):
            with self._lock:
                found = next((c for c in self._corruptions if c[0] == request.path), None)
                if found is not None:
                    self._corruptions.remove(found)
            if found is not None:
                items = json.loads(response.text or "[]")
                if isinstance(items, list) and len(items) > found[2]:
                    items[found[2]] = _corrupt_item(items[found[2]], found[1])
                    return web.json_response(items)
        return response

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.now_ms})

    async def _exchange_info_handler(self, request: web.Request) -> web.Response:
        return web.Response(text=self._exchange_info, content_type="application/json")

    def _symbol(self, query: Any) -> str:
        symbol = query.get("symbol")
        if not symbol:
            raise _BadRequest(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if symbol not in self.symbols:
            raise _BadRequest(-1121, "Invalid symbol.")
        return symbol

    async def _klines(self, request: web.Request) -> web.Response:
        q = request.query
        symbol = self._symbol(q)
        interval = q.get("interval")
        if not interval:
            raise _BadRequest(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval not in INTERVAL_MS:
            raise _BadRequest(-1120, "Invalid interval.")
        start, end, limit = _int_param(q, "startTime"), _int_param(q, "endTime"), _limit(q)
        if start is not None and end is not None and start > end:
            raise _BadRequest(-1023, "Start time is greater than end time.")
        series = self.klines.get((symbol, interval))
        if series is None:
            return web.json_response([])
        tf = INTERVAL_MS[interval]
        opened = int(np.searchsorted(series.open_ms, self.now_ms, side="right"))  # bars with openTime <= now
        times = series.open_ms[:opened]
        if start is not None:
            lo = int(np.searchsorted(times, start, side="left"))
            hi = int(np.searchsorted(times, end, side="right")) if end is not None else opened
            hi = min(hi, lo + limit)
        else:
            hi = int(np.searchsorted(times, end, side="right")) if end is not None else opened
            lo = max(0, hi - limit)
        rows = []
        vals = series.values
        for i in range(lo, hi):
            t = int(times[i])
            o, h, l, c, v = vals[i]
            rows.append([t, f"{o:.8f}", f"{h:.8f}", f"{l:.8f}", f"{c:.8f}", f"{v:.8f}", t + tf - 1, "0", 0, "0",
                         "0", "0"])
        return web.json_response(rows)

    async def _agg_trades(self, request: web.Request) -> web.Response:
        q = request.query
        symbol = self._symbol(q)
        from_id, start, end, limit = (_int_param(q, "fromId"), _int_param(q, "startTime"), _int_param(q, "endTime"),
                                      _limit(q))
        if from_id is not None and (start is not None or end is not None):
            raise _BadRequest(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and end - start > HOUR_MS:
            raise _BadRequest(-1127, "More than 1 hours between startTime and endTime.")
        table = self.agg_trades.get(symbol)
        if table is None:
            return web.json_response([])
        visible = int(np.searchsorted(table.times, self.now_ms, side="right"))
        lo, hi = _trade_range(table, visible, from_id=from_id, start=start, end=end, limit=limit)
        assert table.first_ids is not None and table.last_ids is not None
        return web.json_response([
            {"a": int(table.ids[i]), "p": table.prices[i], "q": table.qtys[i], "f": int(table.first_ids[i]),
             "l": int(table.last_ids[i]), "T": int(table.times[i]), "m": bool(table.buyer_maker[i]),
             "M": bool(table.best_match[i])}
            for i in range(lo, hi)
        ])

    def _raw_trades(self, table: TradeTable, lo: int, hi: int) -> list[dict[str, Any]]:
        return [
            {"id": int(table.ids[i]), "price": table.prices[i], "qty": table.qtys[i],
             "quoteQty": format((Decimal(table.prices[i]) * Decimal(table.qtys[i])).quantize(_QUOTE_STEP), "f"),
             "time": int(table.times[i]), "isBuyerMaker": bool(table.buyer_maker[i]),
             "isBestMatch": bool(table.best_match[i])}
            for i in range(lo, hi)
        ]

    async def _recent_trades(self, request: web.Request) -> web.Response:
        symbol, limit = self._symbol(request.query), _limit(request.query)
        table = load_ws_trades(self.dirs).get(symbol)
        if table is None:
            return web.json_response([])
        visible = int(np.searchsorted(table.times, self.now_ms, side="right"))
        return web.json_response(self._raw_trades(table, max(0, visible - limit), visible))

    async def _historical_trades(self, request: web.Request) -> web.Response:
        q = request.query
        symbol, from_id, limit = self._symbol(q), _int_param(q, "fromId"), _limit(q)
        table = load_ws_trades(self.dirs).get(symbol)
        if table is None:
            return web.json_response([])
        visible = int(np.searchsorted(table.times, self.now_ms, side="right"))
        lo, hi = _trade_range(table, visible, from_id=from_id, start=None, end=None, limit=limit)
        return web.json_response(self._raw_trades(table, lo, hi))

    # ---- WebSocket ------------------------------------------------------------------------------------------
    async def _ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        combined = request.path.startswith("/stream")
        subs: set[str] = set()
        name = request.match_info.get("name", "")
        if "@" in name:
            subs.update(s for s in name.split("/") if s)
        if combined and request.query.get("streams"):
            subs.update(s for s in request.query["streams"].split("/") if s)
        with self._lock:
            conn_index = self.ws_connections
            self.ws_connections += 1
        drop_after = self.ws.drop_after[conn_index] if conn_index < len(self.ws.drop_after) else None
        self._ws_clients.add(ws)
        sender: asyncio.Task | None = None

        def start_sender() -> None:
            nonlocal sender
            if sender is None and subs:
                sender = asyncio.ensure_future(self._replay(ws, subs, combined, drop_after, request, conn_index))

        start_sender()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    req = json.loads(msg.data)
                    method, params, req_id = req.get("method"), req.get("params") or [], req.get("id")
                except (ValueError, AttributeError):
                    await ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}}))
                    continue
                if method == "SUBSCRIBE":
                    subs.update(params)
                    await ws.send_str(json.dumps({"result": None, "id": req_id}))
                    start_sender()
                elif method == "UNSUBSCRIBE":
                    subs.difference_update(params)
                    await ws.send_str(json.dumps({"result": None, "id": req_id}))
                elif method == "LIST_SUBSCRIPTIONS":
                    await ws.send_str(json.dumps({"result": sorted(subs), "id": req_id}))
                else:
                    await ws.send_str(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown method "
                                                                             f"{method!r}"}, "id": req_id}))
        finally:
            self._ws_clients.discard(ws)
            if sender is not None and not sender.done():
                sender.cancel()
                try:
                    await sender
                except (asyncio.CancelledError, Exception):
                    pass
        return ws

    def _malformed(self, msg: WsMessage, kind: str, combined: bool) -> str:
        if kind == "invalid_json":
            text = msg.envelope if combined else msg.data
            return text[: len(text) // 2]
        data = json.loads(msg.data)
        if kind == "missing_field":
            data.pop("p", None)
        elif kind == "nan_price":
            data["p"] = "NaN"
        elif kind == "nan_qty":
            data["q"] = "NaN"
        elif kind == "negative_price":
            data["p"] = "-" + data["p"]
        elif kind == "zero_qty":
            data["q"] = "0.00000000"
        elif kind == "bad_time":
            data["T"] = "yesterday"
        else:
            raise ValueError(f"unknown malformed kind {kind!r}; use one of {MALFORMED_KINDS}")
        body = json.dumps(data, separators=(",", ":"))
        return json.dumps({"stream": msg.stream, "data": data}, separators=(",", ":")) if combined else body

    async def _replay(self, ws: web.WebSocketResponse, subs: set[str], combined: bool, drop_after: int | None,
                      request: web.Request, conn_index: int) -> None:
        timeline = load_ws_recording(self.dirs)
        faults = self.ws
        sent = 0
        held: list[str] = []  # a swapped trade waits here for the next trade
        with self._lock:
            pos = self._ws_cursor
        first_ns: int | None = None
        t0 = time.monotonic()
        try:
            while pos < len(timeline):
                msg = timeline[pos]
                pos += 1
                with self._lock:
                    self._ws_cursor = max(self._ws_cursor, pos)
                if msg.stream not in subs:
                    continue
                if faults.speed is not None:
                    if first_ns is None:
                        first_ns = msg.local_ns
                    due = t0 + (msg.local_ns - first_ns) / 1e9 / faults.speed
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                text = msg.envelope if combined else msg.data
                out: list[tuple[int, str]] = []
                k = msg.trade_index
                if k >= 0 and k in faults.malformed:
                    out.append((k, self._malformed(msg, faults.malformed[k], combined)))
                if k >= 0 and k in faults.swap:
                    held.append((k, text))
                else:
                    out.append((k, text))
                    if k >= 0 and k in faults.duplicate:
                        out.append((k, text))
                    if k >= 0 and held:
                        out.extend(held)
                        held.clear()
                for k_out, item in out:
                    await ws.send_str(item)
                    sent += 1
                    with self._lock:
                        self.ws_sent += 1
                        if k_out >= 0:
                            self.ws_trade_log.append((conn_index, k_out))
                    if drop_after is not None and sent >= drop_after:
                        with self._lock:
                            self._ws_cursor = max(self._ws_cursor, pos) + faults.skip_on_reconnect
                        if request.transport is not None:
                            request.transport.abort()
                        return
            for k_out, item in held:
                await ws.send_str(item)
                with self._lock:
                    self.ws_trade_log.append((conn_index, k_out))
            if faults.close_at_end:
                await ws.close(code=1000, message=b"end of recording")
        except (ConnectionError, RuntimeError):
            return


# ---------------------------------------------------------------------------------------------------------------
# clients and the fixture
# ---------------------------------------------------------------------------------------------------------------
def make_ccxt_exchange(base_http_url: str, ws_url: str | None = None, *, pro: bool = False, **kwargs: Any) -> Any:
    """A ccxt binance client (``pro=True``: ccxt.pro) whose REST and WebSocket URLs point at the fake.

    Every REST URL of ``urls["api"]`` is moved to ``base_http_url`` keeping its path, WebSocket URLs to the
    origin of ``ws_url`` (default: the same host, ``ws://``). Built with btlab's own factory
    (:func:`btlab.marketdata.sources.ccxt.exchange.make_exchange`: rate limiter on, spot markets only); ``kwargs`` go to it.
    """
    if ws_url is None:
        ws_url = "ws" + base_http_url[len("http"):] if base_http_url.startswith("http") else base_http_url
    parts = ws_url.split("/")
    ws_origin = "/".join(parts[:3])
    return make_exchange("binance", origin=base_http_url, ws_origin=ws_origin, pro=pro, **kwargs)


@pytest.fixture
def fake_binance() -> Iterator[FakeBinance]:
    """A running :class:`FakeBinance` (fresh faults and request log; clock at :func:`default_now_ms`)."""
    with FakeBinance() as fake:
        yield fake


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the fake from the command line (for benchmarks and manual runs) until SIGTERM/SIGINT.

    ``python tests/fakes/binance.py [--now "2025-08-18 18:27:30"] [--clock-rate 1]`` prints one line
    ``<base_url> <ws_url>`` when it is ready. Point btlab at it with
    ``make_exchange("binance", origin=<base_url>, ws_origin=<ws origin>)``.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="fake Binance spot exchange replaying recorded real data")
    parser.add_argument("--now", default=None, help="server clock (UTC), default: inside the newest 1m bar")
    parser.add_argument("--clock-rate", type=float, default=0.0, help="0 freezes the clock, 1 runs it")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with FakeBinance(now=args.now, clock_rate=args.clock_rate) as fake:
        print(fake.base_url, fake.ws_url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
