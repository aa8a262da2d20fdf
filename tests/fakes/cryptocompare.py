"""A local fake of CryptoCompare's v1 history API that serves SAVED REAL responses (no internet needed).

Run it in a background thread on a random port of 127.0.0.1 and point a client at :attr:`FakeCryptoCompare.url`::

    with FakeCryptoCompare(api_key="k") as fake:
        fake.add_saved("/data/histoday", "BTC", "USD", DATA / "histoday_BTC-USD_2015-05-04_2020-10-24.json")
        client = CryptoCompareClient(api_key="k", base_url=fake.url)

Endpoints: ``/data/histominute``, ``/data/histohour``, ``/data/histoday`` with ``fsym``, ``tsym``, ``limit``,
``toTs``, ``e`` (default ``CCCAGG``); ``aggregate`` other than 1 is refused (the fake does not aggregate).

Slicing (as the real API does): a saved response is the whole history as of the moment it was saved, its last row
being the newest bar then. A request returns ``limit + 1`` rows in ascending time ending at the bar that contains
``toTs`` (``end = floor(toTs / step) * step``; ``toTs`` later than the last saved row, or absent, means that last
row). Rows are the saved row objects verbatim; times before the first saved row are answered with the API's
all-zero padding rows (``open = high = low = close = volumefrom = volumeto = 0``), as CryptoCompare does before a
coin's history starts. ``TimeFrom``/``TimeTo`` are the first/last row times. ``limit`` defaults to the API's
(1440 / 168 / 30) and must be 1..2000.

Errors use the API's body shape (HTTP 200, ``{"Response": "Error", "Message": ..., "Type": ...}``): a missing
or wrong ``authorization: Apikey <key>`` header when the fake has a key, a missing ``fsym``/``tsym``, a bad
``limit``, an unknown pair.

Fault injection (:meth:`FakeCryptoCompare.inject`), each for ``times`` requests after the next ``after`` ones:
``"429"`` (HTTP 429, optional ``retry_after`` header), ``"ratelimit"`` (HTTP 200 error body of Type 99, the API's
real rate-limit answer), ``"error"`` (an error body with ``message``), ``"500"``, ``"garbage"`` (HTTP 200,
not JSON), ``"slow"`` (answer normally after ``seconds``).

Every request is recorded in :attr:`FakeCryptoCompare.requests` (path, query, headers).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

STEPS = {"/data/histominute": 60, "/data/histohour": 3600, "/data/histoday": 86400}
DEFAULT_LIMITS = {"/data/histominute": 1440, "/data/histohour": 168, "/data/histoday": 30}
RATE_LIMIT_BODY = {
    "Response": "Error",
    "Message": "You are over your rate limit please upgrade your account!",
    "HasWarning": False,
    "Type": 99,
    "RateLimit": {"calls_made": {"second": 21, "minute": 21}, "max_calls": {"second": 20, "minute": 300}},
    "Data": {},
}


def error_body(message: str, *, type_: int = 2, param: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Response": "Error", "Message": message, "HasWarning": False, "Type": type_,
                            "RateLimit": {}, "Data": {}}
    if param:
        body["ParamWithError"] = param
    return body


@dataclass
class Dataset:
    """One saved response: rows by time, and the envelope fields echoed back."""

    step: int
    rows: dict[int, dict[str, Any]]
    first: int
    last: int
    conversion: dict[str, Any]
    padding_conversion: str


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Fault:
    kind: str
    times: int
    after: int = 0
    options: dict[str, Any] = field(default_factory=dict)


class FakeCryptoCompare:
    """The fake server (see the module docstring). Use as a context manager, or call :meth:`start`/:meth:`stop`."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.datasets: dict[tuple[str, str, str, str], Dataset] = {}
        self.requests: list[Recorded] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- set-up ----------------------------------------------------------------------------------------------
    def add_saved(self, endpoint: str, fsym: str, tsym: str, path: str | Path, exchange: str = "CCCAGG") -> Dataset:
        """Serve the saved response at ``path`` for ``endpoint`` and the pair ``fsym``-``tsym`` (and ``e``)."""
        body = json.loads(Path(path).read_text())
        assert body["Response"] == "Success", path
        step = STEPS[endpoint]
        rows = {int(r["time"]): r for r in body["Data"]}
        times = sorted(rows)
        assert all(t % step == 0 for t in times), "saved rows must be aligned"
        conversion = body.get("ConversionType") or {"type": "direct", "conversionSymbol": ""}
        ds = Dataset(step, rows, times[0], times[-1], conversion, conversion.get("type", "direct"))
        self.datasets[(endpoint, fsym.upper(), tsym.upper(), exchange.upper())] = ds
        return ds

    def inject(self, kind: str, *, times: int = 1, after: int = 0, **options: Any) -> None:
        """Let ``after`` requests pass, then make ``times`` requests fail with ``kind``; faults queue in order."""
        assert kind in {"429", "ratelimit", "error", "500", "garbage", "slow"}, kind
        with self._lock:
            self._faults.append(Fault(kind, times, after, options))

    def clear(self) -> None:
        """Forget recorded requests and pending faults."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- server ----------------------------------------------------------------------------------------------
    def start(self) -> "FakeCryptoCompare":
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                app = web.Application()
                for path in STEPS:
                    app.router.add_get(path, self._handle)
                runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True, access_log=None)
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.SockSite(runner, sock).start())
                self._runner = runner
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-cryptocompare", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> "FakeCryptoCompare":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- requests --------------------------------------------------------------------------------------------
    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.times -= 1
            if fault.times <= 0:
                self._faults.popleft()
            return fault

    async def _handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        with self._lock:
            self.requests.append(Recorded(request.path, query, {k.lower(): v for k, v in request.headers.items()}))
        fault = self._next_fault()
        if fault is not None:
            if fault.kind == "slow":
                await asyncio.sleep(float(fault.options.get("seconds", 2.0)))
            elif fault.kind == "429":
                headers = {}
                if "retry_after" in fault.options:
                    headers["Retry-After"] = str(fault.options["retry_after"])
                return web.Response(status=429, text="Too Many Requests", headers=headers)
            elif fault.kind == "ratelimit":
                return web.json_response(RATE_LIMIT_BODY)
            elif fault.kind == "error":
                return web.json_response(error_body(str(fault.options.get("message", "injected error"))))
            elif fault.kind == "500":
                return web.Response(status=500, text="Internal Server Error")
            elif fault.kind == "garbage":
                return web.Response(status=200, text="<html>bad gateway</html>", content_type="text/html")
        return web.json_response(self._answer(request.path, query, request.headers.get("authorization")))

    def _answer(self, endpoint: str, query: dict[str, str], authorization: str | None) -> dict[str, Any]:
        if self.api_key is not None and authorization != f"Apikey {self.api_key}":
            return error_body("You need a valid auth key or api key to access this endpoint", type_=1)
        for param in ("fsym", "tsym"):
            if not query.get(param):
                return error_body(f"{param} param is empty or null.", param=param)
        try:
            limit = int(query.get("limit", DEFAULT_LIMITS[endpoint]))
        except ValueError:
            return error_body("limit param is not an integer.", param="limit")
        if not 1 <= limit <= 2000:
            return error_body("limit param is out of range (1..2000).", param="limit")
        if query.get("aggregate", "1") != "1":
            return error_body("the fake CryptoCompare does not aggregate", param="aggregate")
        fsym, tsym = query["fsym"].upper(), query["tsym"].upper()
        exchange = query.get("e", "CCCAGG").upper()
        ds = self.datasets.get((endpoint, fsym, tsym, exchange))
        if ds is None:
            return error_body(f"{exchange.lower()} market does not exist for this coin pair ({fsym}-{tsym})",
                              param="e" if exchange != "CCCAGG" else "fsym")
        try:
            to_ts = int(query["toTs"]) if "toTs" in query else ds.last
        except ValueError:
            return error_body("toTs param is not an integer.", param="toTs")
        end = min((to_ts // ds.step) * ds.step, ds.last)
        times = [end - k * ds.step for k in range(limit, -1, -1)]
        data = [ds.rows.get(t) or self._padding(t, ds) for t in times]
        return {
            "Response": "Success",
            "Type": 100,
            "Aggregated": False,
            "TimeTo": times[-1],
            "TimeFrom": times[0],
            "FirstValueInArray": True,
            "ConversionType": ds.conversion,
            "RateLimit": {},
            "HasWarning": False,
            "Data": data,
        }

    @staticmethod
    def _padding(t: int, ds: Dataset) -> dict[str, Any]:
        assert t < ds.first, f"the saved data has no row at {t} inside its span"
        return {"time": t, "high": 0, "low": 0, "open": 0, "volumefrom": 0, "volumeto": 0, "close": 0,
                "conversionType": ds.padding_conversion, "conversionSymbol": ""}
