"""Build ccxt exchange clients the way btlab uses them, and the errors for a bad exchange, symbol or timeframe.

:func:`make_exchange` returns a ready ccxt client (REST, or ccxt.pro WebSocket+REST with ``pro=True``):

* ccxt's rate limiter is on (``enableRateLimit``), every request has a timeout (``timeout_ms``);
* Binance is restricted to spot markets: ``load_markets`` then needs exactly one request
  (``GET /api/v3/exchangeInfo``) -- no futures/options ``exchangeInfo``, no ``sapi`` margin or currency calls
  (options ``fetchMarkets: {"types": ["spot"]}``, ``fetchCurrencies: False``, ``fetchMargins: False``);
* the exchange's API URLs can be overridden: ``origin``/``ws_origin`` move every REST/WebSocket URL to another
  host keeping its path (a local fake exchange in tests, a reverse proxy in production), ``urls`` replaces
  single entries of ccxt's ``urls["api"]`` (deep-merged).

Names follow ccxt: exchange ids (``binance``, see ``ccxt.exchanges``), unified symbols (``BTC/USDT``),
timeframes (``1m``). Times from ccxt are integer milliseconds since the epoch (UTC).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt

from btlab.errors import BtlabError, InvalidArgumentError

__all__ = [
    "ExchangeRequestError",
    "ExchangeUnavailableError",
    "UnknownExchangeError",
    "UnknownSymbolError",
    "UnsupportedTimeframeError",
    "check_symbol",
    "check_timeframe",
    "failure_reason",
    "last_http_status",
    "make_exchange",
    "rebase_urls",
]

#: Per-exchange default options btlab sets (user ``options`` override them key by key).
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "adjustForTimeDifference": False,
    },
}

DEFAULT_TIMEOUT_MS = 15_000


class UnknownExchangeError(InvalidArgumentError):
    """The exchange id is not one of ccxt's (``ccxt.exchanges``)."""


class UnknownSymbolError(InvalidArgumentError):
    """The symbol is not a market of the exchange (checked after ``load_markets``)."""


class UnsupportedTimeframeError(InvalidArgumentError):
    """The exchange does not offer bars of this timeframe (not in the client's ``timeframes``)."""


class ExchangeUnavailableError(BtlabError, ConnectionError):
    """The exchange kept failing (network errors, 429/418 rate limiting, 5xx) after all retries.

    Attributes:
        exchange: the ccxt id.
        reason: the last error in one line.
    """

    exit_code = 2

    def __init__(self, exchange: str, reason: str) -> None:
        self.exchange = exchange
        self.reason = reason
        super().__init__(f"exchange {exchange} unavailable after retries: {reason}")


class ExchangeRequestError(BtlabError):
    """The exchange rejected a request for a reason retrying cannot fix (bad parameter, no permission, ...).

    Attributes:
        exchange: the ccxt id.
        reason: the exchange's error in one line.
    """

    def __init__(self, exchange: str, reason: str) -> None:
        self.exchange = exchange
        self.reason = reason
        super().__init__(f"exchange {exchange} rejected the request: {reason}")


def failure_reason(exc: BaseException) -> str:
    """What failed and why, in one line, from a ccxt error and the errors chained to it.

    ccxt's network errors say only what was requested (``binance GET https://api.binance.com/api/v3/exchangeInfo``);
    the cause (host not resolved, connection refused, timed out) is in the chained ``requests``/``urllib3``/socket
    errors. Returns e.g. ``binance GET http://127.0.0.1:9/api/v3/exchangeInfo: connection refused``.
    """
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and all(cur is not seen for seen in chain):
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    head = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    root = chain[-1]
    if root is exc:
        return head[:300]
    why = next((line.strip() for line in str(root).splitlines() if line.strip()), type(root).__name__)
    why = re.sub(r"^\[Errno -?\d+\]\s*", "", why)
    names = {type(e).__name__ for e in chain}
    if isinstance(root, ConnectionRefusedError):
        why = "connection refused"
    elif names & {"gaierror", "NameResolutionError"}:
        why = f"cannot resolve the host name ({why})"
    elif isinstance(root, TimeoutError) or "timed out" in why.lower():
        why = f"timed out ({why})"
    return f"{head[:200]}: {why[:200]}"


def last_http_status(exchange: Any) -> int | None:
    """HTTP status of the last REST response of a client built by :func:`make_exchange` (``None`` if unknown)."""
    return getattr(exchange, "_btlab_last_status", None)


def _install_status_hook(exchange: Any) -> None:
    """Remember each response's HTTP status (a ``requests`` response hook; ccxt itself does not keep it).

    Lets a caller tell a 5xx answered with an exchange-specific JSON error (which ccxt may map to a permanent
    ``ExchangeError``) from a real client error.
    """
    session = getattr(exchange, "session", None)
    hooks = getattr(session, "hooks", None)
    if not isinstance(hooks, dict) or "response" not in hooks:
        return

    def remember(response: Any, *args: Any, **kwargs: Any) -> None:
        exchange._btlab_last_status = getattr(response, "status_code", None)

    hooks["response"].append(remember)


def _close(word: str, choices: list[str], n: int = 3) -> str:
    near = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    return f"; did you mean {', '.join(near)}?" if near else ""


def _exchange_class(exchange_id: str, pro: bool) -> type:
    if pro:
        import importlib

        importlib.import_module("ccxt.pro")  # on demand: it pulls in aiohttp
    ids = ccxt.pro.exchanges if pro else ccxt.exchanges
    if not isinstance(exchange_id, str) or exchange_id not in ids:
        hint = _close(str(exchange_id).lower(), list(ids))
        raise UnknownExchangeError(
            f"unknown exchange {exchange_id!r}{hint} (ccxt{'.pro' if pro else ''} knows {len(ids)} exchanges, "
            f"e.g. binance, bybit, coinbase, kraken, okx; the full list is ccxt.exchanges)"
        )
    return getattr(ccxt.pro if pro else ccxt, exchange_id)


def rebase_urls(api_urls: Mapping[str, Any], origin: str | None, ws_origin: str | None = None) -> dict[str, Any]:
    """A copy of a ccxt ``urls["api"]`` mapping with every URL moved to another scheme://host:port.

    Paths and queries are kept (``https://api.binance.com/api/v3`` -> ``http://127.0.0.1:8080/api/v3``).
    ``ws://``/``wss://`` URLs are moved to ``ws_origin`` (if given), all others to ``origin`` (if given); nested
    mappings (``urls["api"]["ws"]``) are handled recursively. A value that is not a URL is kept.

    Args:
        api_urls: e.g. ``ccxt.binance().urls["api"]``.
        origin: ``"http://host:port"`` (a path on it is ignored).
        ws_origin: ``"ws://host:port"``.
    """

    def move(url: str, to: str | None) -> str:
        if to is None:
            return url
        src, dst = urlsplit(url), urlsplit(to)
        return urlunsplit((dst.scheme, dst.netloc, src.path, src.query, src.fragment))

    out: dict[str, Any] = {}
    for key, value in api_urls.items():
        if isinstance(value, Mapping):
            out[key] = rebase_urls(value, origin, ws_origin)
        elif isinstance(value, str) and "://" in value:
            out[key] = move(value, ws_origin if value.startswith(("ws://", "wss://")) else origin)
        else:
            out[key] = value
    return out


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value) if isinstance(value, Mapping) else value
    return base


def make_exchange(
    exchange_id: str,
    *,
    urls: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    origin: str | None = None,
    ws_origin: str | None = None,
    pro: bool = False,
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    rate_limit: bool = True,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """Create a ccxt client for ``exchange_id`` (markets are not loaded yet).

    Args:
        exchange_id: a ccxt id such as ``"binance"`` (``ccxt.exchanges`` lists them).
        urls: entries deep-merged into the client's ``urls["api"]`` after ``origin``/``ws_origin`` are applied,
            e.g. ``{"public": "http://proxy/api/v3", "ws": {"spot": "ws://proxy/ws"}}``.
        options: ccxt ``options`` merged over btlab's defaults (:data:`DEFAULT_OPTIONS`).
        origin: move every REST URL of ``urls["api"]`` to this ``scheme://host:port`` (see :func:`rebase_urls`).
        ws_origin: the same for WebSocket URLs (ccxt.pro).
        pro: build the ccxt.pro (asyncio, WebSocket) client instead of the synchronous REST client; close it
            with ``await exchange.close()``.
        timeout_ms: per-request timeout in milliseconds.
        rate_limit: ccxt's built-in rate limiter (``enableRateLimit``); leave it on against real exchanges.
        config: further ccxt constructor settings (``apiKey``, ``proxies``, ...).

    Returns:
        A ``ccxt.Exchange`` (or ``ccxt.pro`` exchange) instance.

    Raises:
        UnknownExchangeError: ``exchange_id`` is not a ccxt exchange (the message suggests close ids).
    """
    cls = _exchange_class(exchange_id, pro)
    merged_options = copy.deepcopy(DEFAULT_OPTIONS.get(exchange_id, {}))
    if options:
        _deep_merge(merged_options, options)
    settings: dict[str, Any] = {"enableRateLimit": bool(rate_limit), "timeout": int(timeout_ms)}
    if config:
        settings.update(config)
    settings["options"] = _deep_merge(merged_options, settings.get("options", {}) or {})
    exchange = cls(settings)
    if origin is not None or ws_origin is not None:
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], origin, ws_origin)
    if urls:
        api = exchange.urls["api"] if isinstance(exchange.urls.get("api"), dict) else {}
        exchange.urls["api"] = _deep_merge(copy.deepcopy(api), urls)
    _install_status_hook(exchange)
    return exchange


def check_symbol(exchange: Any, symbol: str) -> dict[str, Any]:
    """The ccxt market of ``symbol``; markets must be loaded.

    Raises:
        UnknownSymbolError: not a market of the exchange (the message suggests close symbols).
    """
    markets = exchange.markets or {}
    if symbol not in markets:
        hint = _close(str(symbol).upper(), list(markets))
        raise UnknownSymbolError(
            f"unknown symbol {symbol!r} on {exchange.id}{hint} (use ccxt unified symbols such as BTC/USDT; "
            f"{len(markets)} markets loaded)"
        )
    return markets[symbol]


def check_timeframe(exchange: Any, timeframe: str) -> None:
    """Check that the exchange serves bars of ``timeframe`` (a ccxt timeframe string).

    Raises:
        UnsupportedTimeframeError: the exchange has no ``fetchOHLCV`` or does not list ``timeframe``.
    """
    if not exchange.has.get("fetchOHLCV"):
        raise UnsupportedTimeframeError(f"{exchange.id} does not serve OHLCV bars (no fetchOHLCV in ccxt)")
    offered = list((exchange.timeframes or {}).keys())
    if offered and timeframe not in offered:
        raise UnsupportedTimeframeError(
            f"{exchange.id} does not offer timeframe {timeframe!r}; it offers {', '.join(offered)}"
        )
