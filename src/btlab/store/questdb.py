"""Server backend: QuestDB (writes over ILP/HTTP, reads over the PostgreSQL wire protocol).

Layout in QuestDB (from :data:`btlab.store.schema.TABLES`): every table has the designated timestamp ``ts``
(``TIMESTAMP``, microsecond precision, UTC), is partitioned (``table.partition_by``), is a WAL table and
deduplicates on ``DEDUP UPSERT KEYS(ts, <other key columns>)`` so a re-written key replaces its row. Column kinds
map to ``symbol`` -> ``SYMBOL``, ``string`` -> ``VARCHAR``, ``timestamp`` -> ``TIMESTAMP``, ``double`` ->
``DOUBLE``, ``long`` -> ``LONG``. Tables are created over SQL before any write, so ILP never auto-creates them.

How it uses QuestDB (documented features only):

* DDL and deduplication -- https://questdb.com/docs/reference/sql/create-table/ (``TIMESTAMP(ts) PARTITION BY
  .. WAL DEDUP UPSERT KEYS(..)``; the designated timestamp must be one of the keys),
  https://questdb.com/docs/concept/deduplication/, https://questdb.com/docs/reference/sql/alter-table-add-column/,
  https://questdb.com/docs/reference/sql/alter-table-enable-deduplication/.
* Writes -- the official client (https://py-questdb-client.readthedocs.io/, ``Sender.from_conf`` and
  ``Sender.dataframe(df, table_name=.., symbols=[..], at='ts')``), ILP over HTTP with auto-flush off and
  ``flush(transactional=True)``. https://questdb.com/docs/reference/api/ilp/overview/#http-transaction-semantics:
  one HTTP request holding rows of one table is one transaction.
* Visibility -- a WAL commit becomes readable once the WAL apply job has applied it:
  ``wal_tables()`` (``name, suspended, writerTxn, sequencerTxn``,
  https://questdb.com/docs/reference/function/meta/#wal_tables) is polled until ``writerTxn >= sequencerTxn``;
  a suspended table is reported (https://questdb.com/docs/reference/sql/alter-table-resume-wal/).
* Reads -- PGWire with psycopg 3 (https://questdb.com/docs/pgwire/python/: port 8812, user ``admin``, password
  ``quest``, database ``qdb``, ``autocommit=True``), parameters always bound, results in binary format.
  ``base.py`` binds ``LIMIT ?``: use QuestDB >= 8.2.2 (bind variables in ``LIMIT`` fixed there, questdb#5377).
* Deletes -- QuestDB has no row ``DELETE``; :meth:`QuestDBStore.delete_rows` uses the documented "replace table"
  pattern (https://questdb.com/docs/operations/modifying-data/#replace-table: copy the rows to keep into a new
  table, ``DROP TABLE``, ``RENAME TABLE``), see its docstring for the costs.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import numpy as np
import pandas as pd

from btlab.errors import StoreConfigError, StoreNotFoundError, StoreUnavailableError
from btlab.store.base import RUN_TABLES, STAGE_INFIX, RowFilter, Store, conform, staging_statements
from btlab.store.schema import TABLES, Table

#: QuestDB column type of each :data:`btlab.store.schema.ColumnKind`.
QUESTDB_TYPES = {"timestamp": "TIMESTAMP", "symbol": "SYMBOL", "string": "VARCHAR", "double": "DOUBLE", "long": "LONG"}

DEFAULT_HTTP_PORT = 9000
DEFAULT_PG_PORT = 8812
DEFAULT_PG_USER = "admin"
DEFAULT_PG_PASSWORD = "quest"
DEFAULT_PG_DBNAME = "qdb"
#: Suffix of the temporary copy a delete builds (see :meth:`QuestDBStore.delete_rows`).
KEEP_SUFFIX = "_btlab_keep"

#: btlab-only keys of the client configuration string (removed before the string reaches the ILP client).
PG_KEYS = ("pg_host", "pg_port", "pg_user", "pg_password", "pg_dbname", "pg_sslmode", "pg_sslrootcert", "pg_timeout")
#: Keys of the official client's configuration string that btlab passes on to it (ILP over HTTP(S)): the keys
#: ``questdb.Sender.from_conf`` knows (https://py-questdb-client.readthedocs.io/en/stable/conf.html), less ``addr``
#: and the ``auto_flush*`` keys. The client checks their values when the address is parsed (and refuses keys that do
#: not apply to HTTP, e.g. ``bind_interface``); any other key is refused, since the client would silently ignore it.
CLIENT_KEYS = frozenset({
    "username", "password", "token", "token_x", "token_y", "auth_timeout", "tls_verify", "tls_ca", "tls_roots",
    "tls_roots_password", "max_buf_size", "retry_timeout", "retry_max_backoff_millis", "request_min_throughput",
    "request_timeout", "protocol_version", "init_buf_size", "max_name_len", "bind_interface", "max_datagram_size",
    "multicast_ttl", "qwp_ws_progress",
})
#: Keys whose values never appear in any message, :attr:`QuestDBConfig.display` or ``repr``.
SECRET_KEYS = frozenset({"password", "token", "token_x", "token_y", "tls_roots_password", "pg_password"})
#: The store decides when to flush (one request per table batch), so these client keys are dropped.
_FLUSH_KEYS = frozenset({"auto_flush", "auto_flush_rows", "auto_flush_bytes", "auto_flush_interval"})
_KNOWN_KEYS = CLIENT_KEYS | set(PG_KEYS) | _FLUSH_KEYS | {"addr"}
#: libpq ``sslmode`` values (https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Seconds one PG-wire statement (its result included) may take before btlab gives up on the server (``pg_timeout``).
DEFAULT_PG_TIMEOUT = 300.0
#: Seconds past ``pg_timeout`` the client-side watchdog waits (the server's own ``statement_timeout`` fires first).
WATCHDOG_GRACE = 2.0
_SCHEMES = ("http", "https")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_MASK = "***"
#: Longest address excerpt quoted in a message.
_SHOWN_MAX = 240
_FORMS = (
    "use http::addr=HOST:9000; (optionally username=..;password=..; and pg_host, pg_port, pg_user, pg_password, "
    "pg_dbname, pg_sslmode, pg_sslrootcert, pg_timeout for the PostgreSQL wire protocol) or "
    "questdb://HOST[:9000][?pg_port=8812&pg_user=..]"
)


# ---- address --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuestDBConfig:
    """Where a QuestDB store lives, parsed from an address by :func:`parse_address`.

    Holds credentials: keep it inside the process (it is what :func:`btlab.store.open_store` takes to open the same
    store again); no credential appears in its ``repr``, :attr:`display`, :attr:`resolved` or any error message.

    Attributes:
        ilp_conf: configuration string for :meth:`questdb.Sender.from_conf` (ILP over HTTP(S); may hold
            credentials, so it is left out of ``repr``).
        http_host, http_port: the HTTP endpoint (ILP writes).
        tls: ``https`` instead of ``http``.
        pg_host, pg_port, pg_user, pg_password, pg_dbname: the PostgreSQL wire endpoint (reads and DDL).
        display: the address without any password or token, for messages and :attr:`Store.address`.
        completed: what the address did not say and was completed with QuestDB's defaults on the same host
            (``"HTTP port"``, ``"PG wire port"``), for messages.
        pg_sslmode: libpq ``sslmode`` for PG wire (``pg_sslmode``); default ``verify-full`` when :attr:`tls`, else
            None (libpq's own default, ``prefer`` unless ``PGSSLMODE`` says otherwise).
        pg_sslrootcert: libpq ``sslrootcert``, the CA file that signs the server certificate (``pg_sslrootcert``);
            None with ``verify-full``: the system's trusted roots (``sslrootcert=system``).
        pg_timeout: seconds one PG-wire statement, its result included, may take (``pg_timeout``, default 300):
            sent as QuestDB's ``statement_timeout`` and enforced by the client (see :func:`pg_connect_params`).
        secrets: the credential values of the address, to scrub from server and client messages.
    """

    ilp_conf: str = field(repr=False)
    http_host: str
    http_port: int
    tls: bool
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str = field(repr=False)
    pg_dbname: str
    display: str
    completed: tuple[str, ...] = ()
    pg_sslmode: str | None = None
    pg_sslrootcert: str | None = None
    pg_timeout: float = DEFAULT_PG_TIMEOUT
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def resolved(self) -> str:
        """Both endpoints as they will be used (no credentials), e.g. ``ILP/HTTP http://h:9000, PG wire h:8812
        (PG wire port not given: QuestDB's default 8812 on the same host)``."""
        scheme = "https" if self.tls else "http"
        text = (f"ILP/HTTP {scheme}://{_join_host_port(self.http_host, self.http_port)}, "
                f"PG wire {_join_host_port(self.pg_host, self.pg_port)}")
        notes = []
        if "HTTP port" in self.completed:
            notes.append(f"HTTP port not given: QuestDB's default {DEFAULT_HTTP_PORT}")
        if "PG wire port" in self.completed:
            notes.append(f"PG wire port not given: QuestDB's default {DEFAULT_PG_PORT} on the same host")
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def scrub(self, text: str) -> str:
        """``text`` (a server or client message) with every credential value of the address replaced by ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, _MASK)
        return text


def redact_address(address: str) -> str:
    """A store address fit for any message: password, token and ``pg_password`` values replaced by ``***``.

    Works on malformed addresses too (that is what it is for): in a configuration string (``http::...``) every
    secret value is masked, and so is whatever follows it up to the next known key (a ``;`` the user did not double
    inside a password must not show the rest of the password); text that is not ``key=value`` and the values of
    unknown keys (a misspelt ``pasword=``) are masked as well. In a URL (``scheme://user:password@host``) the
    password and every value of an unknown query parameter are masked. At most about 240 characters are kept.
    """
    text = address.strip()
    if "://" in text:
        return _shown_url(text)
    scheme, sep, rest = text.partition("::")
    if sep:
        return _excerpt(f"{_excerpt(scheme, 20)}::" + _render_shown(_segments(rest)), _SHOWN_MAX)
    return _excerpt(text, _SHOWN_MAX)


def parse_address(address: str) -> QuestDBConfig:
    """Parse a QuestDB store address (no network access).

    Accepted forms:

    * the official client configuration string ``http::addr=HOST[:PORT];`` or ``https::...``, with the client's
      keys (:data:`CLIENT_KEYS`: ``username=..;password=..;`` for HTTP basic auth, ``token=..;``,
      ``retry_timeout=..;``, ``tls_ca=..;``, ...) plus btlab's ``pg_host`` (default: the HTTP host), ``pg_port``
      (8812), ``pg_user`` (``admin``), ``pg_password`` (``quest``), ``pg_dbname`` (``qdb``), ``pg_sslmode``
      (default ``verify-full`` for ``https``, else libpq's default ``prefer``), ``pg_sslrootcert`` (CA file; default
      with ``verify-full``: the system's trusted roots) and ``pg_timeout`` (seconds, default 300), which are removed
      before the string reaches the client. A literal ``;`` inside a value is written ``;;``. ``auto_flush*`` keys
      are dropped: the store flushes itself. The client checks the values of its keys here, so a bad one (say
      ``retry_timeout=abc``) is a :class:`StoreConfigError` before anything connects.
    * ``questdb://[USER[:PASSWORD]@]HOST[:HTTP_PORT][?QUERY]`` where ``QUERY`` may set the ``pg_*`` keys above and
      ``tls=true`` (https); ``USER``/``PASSWORD`` are HTTP basic-auth credentials (percent-encode ``@ / ? #`` in them).

    Endpoints (the rule): reads and DDL (PostgreSQL wire) and writes (ILP over HTTP) go to the SAME host --
    ``pg_host`` defaults to the ``addr`` host; give it only when the PG wire endpoint really is on another host.
    A port the address does not name is QuestDB's default on that same host: HTTP 9000, PG wire 8812. So
    ``http::addr=db:9;`` reads from ``db:8812`` -- which may be another server than the one on port 9 if the
    ports were remapped; that is why :class:`QuestDBStore` checks both endpoints when it opens and every
    connection error prints both resolved endpoints (:attr:`QuestDBConfig.resolved`, no credentials). Name both
    ports when either is not the default.

    Raises:
        StoreConfigError: the address is malformed (naming what is wrong, quoting the address only as
            :func:`redact_address` shows it, and the accepted forms).
    """
    text = address.strip()
    if text.startswith("questdb://"):
        return _parse_url(text)
    scheme, sep, rest = text.partition("::")
    if not sep:
        raise StoreConfigError(f"not a QuestDB address; {_FORMS}")
    segments = _segments(rest)
    shown = _excerpt(f"{_excerpt(scheme, 20)}::" + _render_shown(segments), _SHOWN_MAX)
    if scheme not in _SCHEMES:
        raise StoreConfigError(f"QuestDB address {shown!r}: transport {_excerpt(scheme, 20)!r} is not supported; "
                               f"{_FORMS}")
    _check_segments(segments, shown)
    pairs = [(s.key, s.value) for s in segments if s.key is not None]
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise StoreConfigError(f"QuestDB address {shown!r}: key(s) given twice: {', '.join(dupes)}")
    values = dict(pairs)
    if not values.get("addr"):
        raise StoreConfigError(f"QuestDB address {shown!r} has no addr=HOST:PORT; {_FORMS}")
    host, port = _split_host_port(values["addr"], DEFAULT_HTTP_PORT, shown)
    port_given = _has_port(values["addr"])
    client = [(k, v) for k, v in pairs if k not in PG_KEYS and k not in _FLUSH_KEYS and k != "addr"]
    client_pairs = [("addr", _join_host_port(host, port))] + client
    ilp_conf = _render_conf(scheme, client_pairs)
    display = _render_conf(
        scheme,
        [(k, v) for k, v in pairs if k not in SECRET_KEYS and k not in _FLUSH_KEYS],
    )
    config = _config(ilp_conf, host, port, scheme == "https", values, shown, display, port_given)
    _check_client_conf(scheme, client_pairs, shown)
    return config


def _config(ilp_conf: str, host: str, port: int, tls: bool, values: dict[str, str], shown: str,
            display: str, port_given: bool) -> QuestDBConfig:
    """The parsed address, with btlab's PG-wire keys (``pg_*``) defaulted from the HTTP host and QuestDB's defaults."""
    completed = tuple(
        what for what, given in (("HTTP port", port_given), ("PG wire port", bool(values.get("pg_port"))))
        if not given
    )
    sslmode = values.get("pg_sslmode") or ("verify-full" if tls else None)
    if sslmode is not None and sslmode not in SSL_MODES:
        raise StoreConfigError(f"QuestDB address {shown!r}: pg_sslmode must be one of {', '.join(SSL_MODES)}, got "
                               f"{_excerpt(sslmode, 20)!r}")
    rootcert = values.get("pg_sslrootcert") or None
    if rootcert is not None and rootcert != "system" and not Path(rootcert).expanduser().is_file():
        raise StoreConfigError(f"QuestDB address {shown!r}: pg_sslrootcert {_excerpt(rootcert, 80)!r} is not a file "
                               "(the CA certificate, PEM)")
    pg_password = values.get("pg_password", DEFAULT_PG_PASSWORD)
    secrets = {v for k, v in values.items() if k in SECRET_KEYS and v and v != DEFAULT_PG_PASSWORD}
    return QuestDBConfig(
        ilp_conf=ilp_conf,
        http_host=host,
        http_port=port,
        tls=tls,
        pg_host=values.get("pg_host") or host,
        pg_port=_port(values.get("pg_port"), DEFAULT_PG_PORT, shown, "pg_port"),
        pg_user=values.get("pg_user") or DEFAULT_PG_USER,
        pg_password=pg_password,
        pg_dbname=values.get("pg_dbname") or DEFAULT_PG_DBNAME,
        display=display,
        completed=completed,
        pg_sslmode=sslmode,
        pg_sslrootcert=rootcert,
        pg_timeout=_seconds(values.get("pg_timeout"), DEFAULT_PG_TIMEOUT, shown, "pg_timeout"),
        secrets=tuple(sorted(secrets)),
    )


def _parse_url(address: str) -> QuestDBConfig:
    shown = _shown_url(address)
    netloc_end = len(address)
    for ch in "/?#":
        at = address.find(ch, len("questdb://"))
        netloc_end = min(netloc_end, at) if at >= 0 else netloc_end
    if "@" in address[netloc_end:]:
        raise StoreConfigError(f"QuestDB address {shown!r}: '@' after the host; write '@', '/', '?' and '#' inside a "
                               "user name, password or parameter percent-encoded (%40, %2F, %3F, %23)")
    try:
        url = urlsplit(address)
        port = url.port
    except ValueError:
        raise StoreConfigError(f"QuestDB address {shown!r}: malformed host or port; {_FORMS}") from None
    if not url.hostname:
        raise StoreConfigError(f"QuestDB address {shown!r} has no host; {_FORMS}")
    if url.path not in ("", "/") or url.fragment:
        raise StoreConfigError(f"QuestDB address {shown!r}: unexpected path or fragment; {_FORMS}")
    try:
        query = parse_qsl(url.query, keep_blank_values=True, strict_parsing=bool(url.query))
    except ValueError:
        raise StoreConfigError(f"QuestDB address {shown!r}: malformed query string; {_FORMS}") from None
    names = [k for k, _ in query]
    dupes = sorted({k for k in names if names.count(k) > 1 and _NAME.match(k)})
    if dupes:
        raise StoreConfigError(f"QuestDB address {shown!r}: parameter(s) given twice: {', '.join(dupes)}")
    values = dict(query)
    unknown = sorted(set(values) - set(PG_KEYS) - {"tls"})
    if unknown:
        named = [k for k in unknown if _NAME.match(k) and len(k) <= 40]
        what = ", ".join(named) if len(named) == len(unknown) else "a malformed one"
        raise StoreConfigError(f"QuestDB address {shown!r}: unknown parameter(s) {what}; {_FORMS}")
    tls_text = values.get("tls", "false").lower()
    if tls_text not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
        raise StoreConfigError(f"QuestDB address {shown!r}: tls must be true or false, got {_excerpt(tls_text, 20)!r}")
    tls = tls_text in ("true", "1", "on", "yes")
    host = url.hostname
    http_port = port if port is not None else DEFAULT_HTTP_PORT
    if not 0 < http_port < 65536:
        raise StoreConfigError(f"QuestDB address {shown!r}: port {http_port} out of range")
    scheme = "https" if tls else "http"
    client: list[tuple[str, str]] = [("addr", _join_host_port(host, http_port))]
    if url.username:
        client.append(("username", unquote(url.username)))
    if url.password is not None:
        client.append(("password", unquote(url.password)))
        values = {**values, "password": unquote(url.password)}  # a secret to scrub from messages
    userinfo, at, hostport = url.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    kept = [(k, v) for k, v in query if k not in SECRET_KEYS]
    display = f"questdb://{user + '@' if at and user else ''}{hostport}" + (
        f"?{urlencode(kept, quote_via=quote)}" if kept else "")
    config = _config(_render_conf(scheme, client), host, http_port, tls, values, shown, display, port is not None)
    _check_client_conf(scheme, client, shown)
    return config


def _shown_url(address: str) -> str:
    """A ``scheme://`` address for messages (see :func:`redact_address`): the user name stays, a password becomes
    ``***``, so do secret and unknown query values; whatever precedes the LAST ``@`` counts as user information,
    so a password holding ``@ / ? #`` never shows either."""
    scheme, _, rest = address.partition("://")
    head = f"{_excerpt(scheme, 20)}://"
    at = rest.rfind("@")
    if at >= 0:
        name, colon, _ = rest[:at].partition(":")
        head += _excerpt(name, 40) + (f":{_MASK}" if colon else "") + "@"
        rest = rest[at + 1 :]
    hostpart, sep_q, query = rest.partition("?")
    hostpart, sep_f, _ = hostpart.partition("#")
    shown = head + _excerpt(hostpart, 80) + ("#..." if sep_f else "")
    if sep_q:
        items = []
        for part in query.split("&"):
            key, eq, value = part.partition("=")
            key = unquote(key)
            if not _NAME.match(key) or len(key) > 40:
                items.append(_MASK)
            elif key in SECRET_KEYS or (key not in PG_KEYS and key != "tls"):
                items.append(f"{key}={_MASK}")
            else:
                items.append(f"{key}{eq}{_excerpt(value, 60)}")
        shown += "?" + "&".join(items)
    return _excerpt(shown, _SHOWN_MAX)


@dataclass(frozen=True, slots=True)
class _Segment:
    """One ``key=value`` item of a configuration string, as the user wrote it.

    ``key`` is None for an item that is not ``key=value`` with a lower-case key; ``after_secret``: it follows a
    secret value with only unknown or malformed items between (so it may be the rest of that secret).
    """

    key: str | None
    value: str
    after_secret: bool


def _segments(rest: str) -> list[_Segment]:
    """The items of a configuration string after ``scheme::`` (``;;`` is a literal ``;``; blank items skipped)."""
    raw: list[str] = []
    current: list[str] = []
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if ch == ";":
            if i + 1 < n and rest[i + 1] == ";":
                current.append(";")
                i += 2
                continue
            raw.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    raw.append("".join(current))
    out: list[_Segment] = []
    after_secret = False
    for item in raw:
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _NAME.match(key):
            out.append(_Segment(None, "", after_secret))
        elif key in SECRET_KEYS:
            out.append(_Segment(key, value, after_secret))
            after_secret = True
        elif key in _KNOWN_KEYS:
            out.append(_Segment(key, value, after_secret))
            after_secret = False
        else:
            out.append(_Segment(key, value, after_secret))
    return out


def _render_shown(segments: Sequence[_Segment]) -> str:
    """Items for messages: secret and unknown values masked; an item after a secret that is not a known key, or
    that is not ``key=value`` at all, masked whole."""
    items = []
    for seg in segments:
        if seg.key is None or (seg.after_secret and seg.key not in _KNOWN_KEYS):
            items.append(_MASK)
        elif seg.key in SECRET_KEYS or seg.key not in _KNOWN_KEYS:
            items.append(f"{_excerpt(seg.key, 40)}={_MASK}")
        else:
            items.append(f"{seg.key}={_excerpt(seg.value, 60).replace(';', ';;')}")
    return "".join(f"{item};" for item in items)


def _check_segments(segments: Sequence[_Segment], shown: str) -> None:
    """Refuse items that are not ``key=value`` and unknown keys, naming where (never quoting a value)."""
    previous: str | None = None
    unknown: list[str] = []
    for seg in segments:
        if seg.key is None or (seg.after_secret and seg.key not in _KNOWN_KEYS):
            where = f"after {previous}=" if previous else "at the start"
            hint = " (a ';' inside a value is written ';;')" if seg.after_secret else ""
            raise StoreConfigError(f"QuestDB address {shown!r}: expected key=value {where}{hint}; {_FORMS}")
        if seg.key not in _KNOWN_KEYS:
            unknown.append(_excerpt(seg.key, 40))
        previous = seg.key
    if unknown:
        raise StoreConfigError(
            f"QuestDB address {shown!r}: unknown key(s) {', '.join(unknown)} (the QuestDB client ignores keys it does "
            f"not know, so a misspelt one would be dropped silently); client keys: {', '.join(sorted(CLIENT_KEYS))}; "
            f"btlab's: {', '.join(PG_KEYS)}"
        )


def _check_client_conf(scheme: str, pairs: Sequence[tuple[str, str]], shown: str) -> None:
    """Let the official client check the values of its keys (no connection is made), with every secret value
    replaced by a placeholder, so the client's message cannot hold one.

    Raises:
        StoreConfigError: the client refuses the configuration (naming the key when one key alone is refused).
    """
    import questdb

    safe = [(k, ("x" if v else v) if k in SECRET_KEYS else v) for k, v in pairs]

    def refusal(items: Sequence[tuple[str, str]]) -> str | None:
        try:
            sender = questdb.Sender.from_conf(_render_conf(scheme, items), auto_flush=False)
        except Exception as exc:  # noqa: BLE001 -- QuestDBError, ValueError, TypeError, OverflowError: all refusals
            kind = "" if isinstance(exc, questdb.QuestDBError) else f"{type(exc).__name__}: "
            return kind + _one_line(exc)
        sender.close(flush=False)
        return None

    reason = refusal(safe)
    if reason is None:
        return
    for key, value in safe[1:]:  # safe[0] is addr
        alone = refusal([safe[0], (key, value)])
        if alone is not None:
            raise StoreConfigError(f"QuestDB address {shown!r}: key {key}: {_excerpt(alone, 160)}")
    raise StoreConfigError(f"QuestDB address {shown!r}: the QuestDB client refuses it: {_excerpt(reason, 160)}")


def _render_conf(scheme: str, pairs: Sequence[tuple[str, str]]) -> str:
    return f"{scheme}::" + "".join(f"{k}={v.replace(';', ';;')};" for k, v in pairs)


def _excerpt(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (with ``...``): messages quote at most a short excerpt of any input."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def _split_host_port(addr: str, default_port: int, shown: str) -> tuple[str, int]:
    addr = addr.strip()
    if addr.startswith("["):  # [IPv6]:port
        host, _, tail = addr[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else (None if not tail else "x")
    elif addr.count(":") == 1:
        host, port_text = addr.split(":")
    elif ":" in addr:  # bare IPv6 without a port
        host, port_text = addr, None
    else:
        host, port_text = addr, None
    if not host:
        raise StoreConfigError(f"QuestDB address {shown!r}: addr has no host; {_FORMS}")
    return host, _port(port_text, default_port, shown, "addr port")


def _has_port(addr: str) -> bool:
    """Whether an ``addr`` value names a port (``host:port`` or ``[v6]:port``; a bare IPv6 address has none)."""
    addr = addr.strip()
    if addr.startswith("["):
        return "]:" in addr
    return addr.count(":") == 1


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port(text: str | None, default: int, shown: str, what: str) -> int:
    if text is None or text == "":
        return default
    try:
        port = int(text)
    except ValueError:
        raise StoreConfigError(
            f"QuestDB address {shown!r}: {what} must be a number, got {_excerpt(text, 20)!r}") from None
    if not 0 < port < 65536:
        raise StoreConfigError(f"QuestDB address {shown!r}: {what} {port} out of range")
    return port


def _seconds(text: str | None, default: float, shown: str, what: str) -> float:
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise StoreConfigError(
            f"QuestDB address {shown!r}: {what} must be a number of seconds > 0, got {_excerpt(text, 20)!r}")
    return value


def pg_connect_params(config: QuestDBConfig, connect_timeout: float = 5.0) -> dict[str, Any]:
    """The libpq connection parameters :class:`QuestDBStore` connects with (``psycopg.connect(**params)``).

    * endpoint and login: ``host``, ``port``, ``user``, ``password``, ``dbname``;
    * ``connect_timeout``: whole seconds (>= 2: libpq's minimum) to connect and log in;
    * TLS: ``sslmode`` = :attr:`QuestDBConfig.pg_sslmode` (``verify-full`` by default for an ``https``
      address; not set otherwise, leaving libpq's default ``prefer``), ``sslrootcert`` = ``pg_sslrootcert``, or
      ``system`` (the system's trusted roots) with ``verify-full`` and no ``pg_sslrootcert``. QuestDB Open Source has
      no TLS on PG wire (https://questdb.com/docs/cookbook/operations/tls-pgbouncer/): behind a TLS-terminating proxy
      use ``https`` as is, without one say ``pg_sslmode=disable``;
    * a hung server: ``options=-c statement_timeout=<ms>`` (QuestDB's one supported startup option: the server ends
      a SELECT/UPDATE running longer, https://questdb.com/docs/pgwire/pgwire-intro/), TCP keepalives
      (``keepalives_idle`` 10 s, ``keepalives_interval`` 5 s, ``keepalives_count`` 3: a vanished peer is noticed on
      an idle link) and ``tcp_user_timeout`` = ``pg_timeout`` in ms (sent data left unacknowledged that long breaks
      the connection). A server that answers TCP but never replies is caught by the store's own watchdog
      (``pg_timeout`` + 2 s per statement).
    """
    params: dict[str, Any] = {
        "host": config.pg_host,
        "port": config.pg_port,
        "user": config.pg_user,
        "password": config.pg_password,
        "dbname": config.pg_dbname,
        "connect_timeout": max(2, int(-(-connect_timeout // 1))),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(config.pg_timeout * 1000),
        "options": f"-c statement_timeout={int(config.pg_timeout * 1000)}",
    }
    if config.pg_sslmode is not None:
        params["sslmode"] = config.pg_sslmode
    if config.pg_sslrootcert is not None:
        params["sslrootcert"] = config.pg_sslrootcert
    elif config.pg_sslmode == "verify-full":
        params["sslrootcert"] = "system"
    return params


# ---- SQL helpers ---------------------------------------------------------------------------------------------
def table_ddl(table: Table, name: str | None = None) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for QuestDB: designated timestamp ``ts``, partitioned, WAL, deduplicated.

    The dedup keys are ``ts`` followed by the table's other key columns (QuestDB requires the designated
    timestamp among them; for ``bt_runs``, keyed by ``run_id``, that is ``(ts, run_id)`` -- a run keeps its ``ts``).
    ``name`` creates the same table under another name (default: the table's own).
    """
    name = name or table.name
    _check_name(name)
    cols = ", ".join(f"{_ident(c.name)} {QUESTDB_TYPES[c.kind]}" for c in table.columns)
    keys = ", ".join(_ident(k) for k in dedup_keys(table))
    return (
        f"CREATE TABLE IF NOT EXISTS {name} ({cols}) TIMESTAMP({_ident('ts')}) "
        f"PARTITION BY {table.partition_by} WAL DEDUP UPSERT KEYS({keys})"
    )


def add_column_ddl(table: Table, column: str) -> str:
    """``ALTER TABLE .. ADD COLUMN`` for one column of ``table`` (the additive migration of :meth:`ensure_schema`)."""
    _check_name(table.name)
    kind = next(c.kind for c in table.columns if c.name == column)
    return f"ALTER TABLE {table.name} ADD COLUMN {_ident(column)} {QUESTDB_TYPES[kind]}"


def dedup_ddl(table: Table) -> str:
    """``ALTER TABLE .. DEDUP ENABLE UPSERT KEYS(..)`` with :func:`dedup_keys` of ``table``."""
    _check_name(table.name)
    return f"ALTER TABLE {table.name} DEDUP ENABLE UPSERT KEYS({', '.join(_ident(k) for k in dedup_keys(table))})"


def table_columns_sql(table: Table) -> str:
    """The ``table_columns()`` query describing ``table`` (its name is checked, so it may be inlined)."""
    _check_name(table.name)
    return f"SELECT * FROM table_columns('{table.name}')"


#: WAL state of every table (``wal_tables()``): applied (writerTxn) versus committed (sequencerTxn) transactions.
WAL_TABLES_SQL = "SELECT name, suspended, writerTxn, sequencerTxn FROM wal_tables()"


def questdb_only_statements() -> list[str]:
    """Every statement the QuestDB backend sends besides the shared :class:`~btlab.store.base.Store` SQL.

    Used by ``tests/test_questdb_sql.py``, which parses them with QuestDB's own SQL parser.
    """
    out = [WAL_TABLES_SQL, WAL_TABLES_SQL + " WHERE name = ?"]
    for table in TABLES.values():
        out += [table_ddl(table), dedup_ddl(table), table_columns_sql(table)]
        out += [add_column_ddl(table, c.name) for c in table.columns if c.name != "ts"]
    samples = {"ohlcv": RowFilter("ohlcv", {"exchange": "x", "symbol": "y", "timeframe": "1h"}, "2024-01-01",
                                  "2024-02-01")}
    samples.update({name: RowFilter(name, {"run_id": ["a", "b"]}) for name in RUN_TABLES})
    for name, row_filter in samples.items():
        out += list(delete_statements(TABLES[name], row_filter.where()[0]).values())
    stage = f"ohlcv{STAGE_INFIX}0123456789ab"
    out += [table_ddl(TABLES["ohlcv"], name=stage), *staging_statements(TABLES["ohlcv"], stage, "INSERT").values()]
    return out
def delete_statements(table: Table, where: str) -> dict[str, str]:
    """The statements :meth:`QuestDBStore.delete_rows` sends for one table (``?`` placeholders; ``where`` is
    built by :meth:`btlab.store.base.RowFilter.where` from schema identifiers only).

    Keys: ``count`` (rows selected), ``count_all``, ``drop_keep`` (a leftover copy), ``create_keep`` (the copy,
    same DDL), ``copy`` (``INSERT INTO`` the copy every row not selected), ``count_keep``, ``drop`` (the table),
    ``rename`` (the copy to the table's name).
    """
    _check_name(table.name)
    keep = table.name + KEEP_SUFFIX
    cols = ", ".join(_ident(c.name) for c in table.columns)
    return {
        "count": f"SELECT count(*) AS n FROM {table.name} WHERE {where}",
        "count_all": f"SELECT count(*) AS n FROM {table.name}",
        "drop_keep": f"DROP TABLE IF EXISTS {keep}",
        "create_keep": table_ddl(table, name=keep),
        "copy": f"INSERT INTO {keep} ({cols}) SELECT {cols} FROM {table.name} WHERE NOT ({where})",
        "count_keep": f"SELECT count(*) AS n FROM {keep}",
        "drop": f"DROP TABLE {table.name}",
        "rename": f"RENAME TABLE {keep} TO {table.name}",
    }


def dedup_keys(table: Table) -> tuple[str, ...]:
    """The QuestDB ``UPSERT KEYS`` of ``table``: ``ts`` first, then its other natural-key columns."""
    return ("ts", *(k for k in table.key if k != "ts"))


def to_pyformat(sql: str) -> str:
    """Translate ``?`` placeholders to psycopg's ``%s`` (and escape literal ``%`` as ``%%``).

    ``?`` inside single-quoted literals or double-quoted identifiers is left alone.
    """
    out: list[str] = []
    quote_char: str | None = None
    for ch in sql:
        if quote_char is not None:
            if ch == quote_char:
                quote_char = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote_char = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _ident(name: str) -> str:
    _check_name(name)
    return f'"{name}"'  # quoted: some column names (e.g. ``type``) are QuestDB keywords


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"invalid identifier {name!r}")


def ilp_frame(table: Table, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Prepare rows for :meth:`questdb.Sender.dataframe`: returns ``(frame, symbol_columns)``.

    The frame is :func:`btlab.store.base.conform`-ed and reduced to the last row of each key (QuestDB would keep
    the last one too; this makes the returned row count match DuckDB's), then sorted by ``ts``. Text columns
    hold ``str`` or ``None``. Columns that are null in every row are dropped: ILP has no null literal (an absent
    column is null) and the client does not accept an all-null object column as a SYMBOL column. Timestamps are
    ``datetime64[ns, UTC]`` (QuestDB keeps microseconds).

    Raises:
        ValueError: a key column (``ts`` included) holds a null -- QuestDB would otherwise stamp rows with the
            server time or store null keys, where DuckDB refuses the batch -- or a timestamp is before
            1970-01-01 UTC, which the client cannot send. Nothing is sent then.
    """
    batch = conform(table, frame)
    for key in table.key:
        if batch[key].isna().any():
            row = int(np.flatnonzero(batch[key].isna().to_numpy())[0]) + 1
            raise ValueError(f"table {table.name}: key column {key!r} is null in row {row}")
    epoch = pd.Timestamp(0, tz="UTC")
    for col in table.kinds("timestamp"):
        early = (batch[col] < epoch).to_numpy()
        if early.any():
            row = int(np.flatnonzero(early)[0])
            raise ValueError(
                f"table {table.name}: {col} {batch[col].iloc[row]} in row {row + 1} is before 1970-01-01 UTC"
            )
    text_cols = [c.name for c in table.columns if c.kind in ("symbol", "string")]
    for col in text_cols:
        values = batch[col]
        if not values.map(lambda v: v is None or isinstance(v, str)).all():
            batch[col] = values.map(lambda v: v if v is None or isinstance(v, str) else str(v))
    batch = batch.drop_duplicates(subset=list(table.key), keep="last")  # last of a key wins, in any backend
    keep = [c for c in batch.columns if c == "ts" or batch[c].notna().any()]
    batch = batch[keep].sort_values("ts", kind="stable").reset_index(drop=True)
    symbols = [c for c in table.kinds("symbol") if c in batch.columns]
    return batch, symbols


# ---- store ---------------------------------------------------------------------------------------------------
_INT_OIDS = frozenset({20, 21, 23})  # int8, int2, int4
_FLOAT_OIDS = frozenset({700, 701})  # float4, float8
_TS_OIDS = frozenset({1114, 1184})  # timestamp, timestamptz


class QuestDBStore(Store):
    """A :class:`~btlab.store.base.Store` in a QuestDB server.

    Writes go through the official ``questdb`` client over ILP/HTTP, reads and DDL through the PostgreSQL wire
    protocol (psycopg 3). Timestamps are stored as QuestDB ``TIMESTAMP`` (UTC, microsecond precision: sub-
    microsecond parts are truncated); reads return them as ``datetime64[ns, UTC]`` through the base class.

    Upserts: :meth:`upsert` sends the batch for one table as one HTTP request when it has at most
    ``rows_per_request`` rows, which QuestDB commits as one transaction (all rows or none). A larger batch is
    sent as several requests of ``rows_per_request`` rows, each its own transaction: if one fails, the earlier
    ones stay written. Every table deduplicates on its natural key, so running the same write again completes
    it without duplicates. After the requests, :meth:`upsert` waits until QuestDB has applied them (WAL), so a
    following :meth:`query` sees the rows.

    Opening checks BOTH endpoints (a TCP connection to the HTTP port, then the PG wire login), so an address
    whose two ports lead to different places fails at once instead of reading one server while writes fail on
    the other; connection errors name both resolved endpoints (:attr:`QuestDBConfig.resolved`). A statement that
    gets no answer within the address's ``pg_timeout`` (default 300 s) ends in :class:`StoreUnavailableError`
    instead of blocking forever (see :func:`pg_connect_params`). No message names a credential of the address.

    Not thread-safe: use one store per thread.

    Args:
        config: from :func:`parse_address`.
        connect_timeout: seconds to wait for each endpoint (libpq rounds up to >= 2).
        wal_timeout: seconds :meth:`upsert` waits for written rows to become visible.
        rows_per_request: rows per ILP/HTTP request (one QuestDB transaction each).
        read_only: no DDL (tables are not created or migrated) and no writes; at least one btlab table must exist.

    Raises:
        StoreUnavailableError: the server cannot be reached (naming the address without credentials), or its
            tables are unusable (not WAL, suspended, another designated timestamp).
        StoreNotFoundError: ``read_only`` and the server holds no btlab table yet.
    """

    def __init__(
        self,
        config: QuestDBConfig,
        *,
        connect_timeout: float = 5.0,
        wal_timeout: float = 30.0,
        rows_per_request: int = 100_000,
        read_only: bool = False,
    ) -> None:
        if rows_per_request <= 0:
            raise ValueError("rows_per_request must be positive")
        self.config = config
        self.address = config.display
        self.connect_timeout = connect_timeout
        self.wal_timeout = wal_timeout
        self.rows_per_request = int(rows_per_request)
        self.read_only = bool(read_only)
        self._conn: Any = None
        self._sender: Any = None
        self._closed = False
        self._check_http()
        self._connect()
        try:
            if self.read_only:
                if not set(self._wal_status()) & set(TABLES):
                    raise StoreNotFoundError(
                        self.address, f"no btlab tables in the QuestDB at {self.address} yet (nothing written there)"
                    )
            else:
                self.ensure_schema()
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_address(cls, address: str, **kwargs: Any) -> "QuestDBStore":
        """Open the store at ``address`` (see :func:`parse_address` for the forms); ``kwargs`` go to ``__init__``.

        Raises:
            StoreConfigError: the address is malformed.
            StoreUnavailableError: the server cannot be reached.
        """
        return cls(parse_address(address), **kwargs)

    # ---- connections --------------------------------------------------------------------------------------
    def _unavailable(self, reason: str) -> StoreUnavailableError:
        return StoreUnavailableError(self.address, f"{self.config.scrub(reason)}; resolved: {self.config.resolved}")

    def _check_http(self) -> None:
        """Open (and close) a TCP connection to the ILP/HTTP endpoint, so a wrong HTTP port fails at open."""
        cfg = self.config
        try:
            with socket.create_connection((cfg.http_host, cfg.http_port), timeout=max(0.5, self.connect_timeout)):
                pass
        except OSError as exc:
            scheme = "https" if cfg.tls else "http"
            raise self._unavailable(
                f"ILP/HTTP at {scheme}://{_join_host_port(cfg.http_host, cfg.http_port)}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None

    def _connect(self) -> None:
        import psycopg

        cfg = self.config
        try:
            self._conn = psycopg.connect(
                **pg_connect_params(cfg, self.connect_timeout), autocommit=True, prepare_threshold=None
            )
        except psycopg.Error as exc:
            hint = ""
            if cfg.pg_sslmode not in (None, "disable", "allow", "prefer") and "SSL" in str(exc):
                hint = " (QuestDB Open Source has no TLS on PG wire: add pg_sslmode=disable if none is in front of it)"
            raise self._unavailable(
                f"PostgreSQL wire at {_join_host_port(cfg.pg_host, cfg.pg_port)}: {_one_line(exc)}{hint}"
            ) from None

    @property
    def _connection(self) -> Any:
        if self._closed:
            raise RuntimeError(f"store {self.address} is closed")
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = None
            self._connect()
        return self._conn

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, list[tuple]]:
        """Run ``sql`` (psycopg ``%s`` style); returns ``(description, rows)``. Reconnects once if the link broke.

        A statement whose answer (all its rows) has not arrived after ``pg_timeout`` + 2 s is given up: a watchdog
        shuts the connection's socket down, so the wait ends even on a server that accepts data but never answers.

        Raises:
            StoreUnavailableError: the connection broke and cannot be re-established, or no answer in time.
        """
        import psycopg

        args = tuple(_bind(p) for p in params)
        for attempt in (1, 2):
            conn = self._connection
            watchdog = _Watchdog(conn, self.config.pg_timeout + WATCHDOG_GRACE)
            try:
                with watchdog, conn.cursor(binary=True) as cur:
                    cur.execute(sql, args)
                    if cur.description is None:
                        return None, []
                    return cur.description, cur.fetchall()
            except psycopg.OperationalError as exc:
                if watchdog.fired:
                    self._conn = None
                    conn.close()
                    raise self._unavailable(
                        f"PostgreSQL wire at {_join_host_port(self.config.pg_host, self.config.pg_port)}: no answer "
                        f"within {self.config.pg_timeout:g} s (pg_timeout)"
                    ) from None
                if conn.broken and attempt == 1:
                    continue  # connection lost (e.g. server restart): statements here are read-only or idempotent
                if conn.broken:
                    raise self._unavailable(_one_line(exc)) from None
                raise
        raise AssertionError("unreachable")

    def _get_sender(self) -> Any:
        if self._sender is None:
            import questdb

            try:
                sender = questdb.Sender.from_conf(self.config.ilp_conf, auto_flush=False)
            except Exception:  # noqa: BLE001 -- checked by parse_address with placeholders; the real values differ
                raise StoreConfigError(
                    f"QuestDB address {self.address!r}: the QuestDB client refuses its credentials"
                ) from None
            try:
                sender.establish()
            except questdb.QuestDBError as exc:
                sender.close(flush=False)
                raise self._ilp_error(exc) from None
            self._sender = sender
        return self._sender

    def _ilp_error(self, exc: Exception) -> Exception:
        """A :class:`StoreUnavailableError` for connection-type client errors, else ``exc`` unchanged."""
        import questdb

        code = getattr(exc, "code", None)
        names = (
            "CouldNotResolveAddr", "SocketError", "AuthError", "TlsError", "HttpNotSupported",
            "ProtocolVersionError", "ConnectTimeout", "HandshakeError",
        )
        unavailable = {getattr(questdb.QuestDBErrorCode, n) for n in names if hasattr(questdb.QuestDBErrorCode, n)}
        if code in unavailable:
            cfg = self.config
            scheme = "https" if cfg.tls else "http"
            return self._unavailable(
                f"ILP at {scheme}://{_join_host_port(cfg.http_host, cfg.http_port)}: {_one_line(exc)}"
            )
        return exc

    # ---- primitives ---------------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create missing tables, add missing columns, and make sure each table is WAL with the right dedup keys.

        Also finishes or undoes a :meth:`delete_rows` that was cut short (see there).

        Raises:
            StoreUnavailableError: a table exists but is not a WAL table, is suspended, or has another designated
                timestamp than ``ts`` (e.g. it was auto-created by ILP from other data).
        """
        if self.read_only:
            return
        self._recover_deletes()
        for table in TABLES.values():
            self._execute(table_ddl(table))
        wal = self._wal_status()
        for table in TABLES.values():
            if table.name not in wal:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table.name} exists but is not a WAL table; btlab needs WAL + DEDUP "
                    f"(rename or drop it so btlab can create it)",
                )
            desc, rows = self._execute(table_columns_sql(table))
            names = [d.name.lower() for d in desc]
            info = {r[names.index("column")]: dict(zip(names, r)) for r in rows}
            designated = [c for c, r in info.items() if r.get("designated")]
            if designated != ["ts"]:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table.name} has designated timestamp {designated or None}, expected ['ts'] "
                    f"(created outside btlab?)",
                )
            changed = False
            for col in table.columns:
                if col.name not in info:  # additive migration
                    self._execute(add_column_ddl(table, col.name))
                    changed = True
            have_keys = {c for c, r in info.items() if r.get("upsertkey")}
            if have_keys != set(dedup_keys(table)):
                self._execute(dedup_ddl(table))
                changed = True
            if changed:
                self._wait_applied(table.name)

    def upsert(self, table: str, frame: pd.DataFrame) -> int:
        """Insert or replace rows of ``table`` by its dedup keys; returns the number of rows sent.

        See the class docstring for atomicity (one transaction per ``rows_per_request`` rows). Returns after the
        rows are visible to :meth:`query`.

        Raises:
            KeyError: unknown table.
            ValueError: unknown columns, or a null in a key column (nothing was sent).
            StoreUnavailableError: the server cannot be reached, the table is suspended, or the rows did not
                become visible within ``wal_timeout`` seconds.
            questdb.QuestDBError: the server rejected the data (e.g. a column of another type).
        """
        spec = TABLES[table]
        if frame.empty:
            return 0
        self._writable()
        return self._send(spec, frame, spec.name)

    def _send(self, spec: Table, frame: pd.DataFrame, target: str) -> int:
        """Send rows of ``spec`` to table ``target`` over ILP (``rows_per_request`` rows a request), wait until
        they are applied; return how many (see :meth:`upsert`)."""
        import questdb

        batch, symbols = ilp_frame(spec, frame)
        sender = self._get_sender()
        step = self.rows_per_request
        try:
            for lo in range(0, len(batch), step):
                chunk = batch.iloc[lo : lo + step]
                sender.dataframe(chunk, table_name=target, symbols=symbols, at="ts")
                sender.flush(transactional=True)
        except questdb.QuestDBError as exc:
            err = self._ilp_error(exc)
            if isinstance(err, StoreUnavailableError):
                self._drop_sender()
                raise err from None
            raise
        self._wait_applied(target)
        return len(batch)

    # ---- staging hooks (see Store.staging) -------------------------------------------------------------------
    def _stage_create(self, table: Table, name: str) -> None:
        """The staging table: ``table``'s own DDL under ``name`` (WAL, so ILP can write to it)."""
        self._writable()
        self._execute(table_ddl(table, name=name))

    def _stage_append(self, table: Table, name: str, frame: pd.DataFrame) -> int:
        self._writable()
        return self._send(table, frame, name)

    def _stage_copy(self, table: Table, steps: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """``INSERT INTO table SELECT .. FROM staging`` (QuestDB commits it in batches; dedup keys make a repeat
        complete it); waits until applied."""
        self._writable()
        for sql, params in steps:
            self._execute(to_pyformat(sql), params)
        self._wait_applied(table.name)

    def _stage_drop(self, sql: str) -> None:
        self._writable()
        self._execute(sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run read-only SQL with ``?`` placeholders over PGWire; returns every row.

        Columns are named from the cursor description. Integer columns are ``int64`` (``Int64`` when they hold
        nulls), floating-point columns ``float64`` (nulls as NaN), timestamps naive ``datetime64`` in UTC,
        text ``object`` with ``None`` for nulls.

        Raises:
            StoreUnavailableError: the connection is lost and cannot be re-established.
            psycopg.Error: the SQL is invalid for QuestDB.
        """
        desc, rows = self._execute(to_pyformat(sql), params)
        if desc is None:
            return pd.DataFrame()
        return _frame(desc, rows)

    def delete_rows(self, filters: Sequence[RowFilter]) -> list[int]:
        """Delete rows by rewriting each affected table without them (QuestDB has no row ``DELETE``).

        For each filter (in order), following QuestDB's documented "replace table" pattern
        (https://questdb.com/docs/operations/modifying-data/#replace-table): count the rows it selects (none: the
        table is left alone); create ``<table>_btlab_keep`` with the table's own DDL (same columns, designated
        timestamp, partitioning, WAL and DEDUP UPSERT KEYS); ``INSERT INTO`` it every row NOT selected (values
        bound); wait until applied; check that it holds exactly the table's rows minus the selected ones (if a
        writer changed the table meanwhile: drop the copy, raise, nothing deleted); then ``DROP TABLE`` the table
        and ``RENAME TABLE`` the copy to its name.

        Costs: every remaining row of the table is copied (time and, until the drop, disk space proportional to
        the whole table, not to the rows deleted); rows written to the table by another process between the copy
        and the drop are lost, so do not delete while something writes to that table (live ingest, a running
        backtest for the run tables); readers see the table missing for the moment between ``DROP`` and
        ``RENAME``. Filters on different tables are separate operations (no transaction spans them). If the
        process dies between ``DROP`` and ``RENAME``, the next read-write open renames the copy back
        (:meth:`ensure_schema`); a copy left beside an intact table is dropped there.

        Raises:
            StoreUnavailableError: read-only store, server gone, or the table changed during the copy.
        """
        self._writable()
        return [self._delete(f) for f in filters]

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        _, rows = self._execute(to_pyformat(sql), params)
        return int(rows[0][0]) if rows else 0

    def _delete(self, rows: RowFilter) -> int:
        spec = TABLES[rows.table]
        where, params = rows.where()
        sql = delete_statements(spec, where)
        self._wait_applied(spec.name)
        selected = self._scalar(sql["count"], params)
        if selected == 0:
            return 0
        total = self._scalar(sql["count_all"])
        keep = spec.name + KEEP_SUFFIX
        self._execute(sql["drop_keep"])
        self._execute(sql["create_keep"])
        self._execute(to_pyformat(sql["copy"]), params)
        self._wait_applied(keep)
        kept = self._scalar(sql["count_keep"])
        self._wait_applied(spec.name)
        if kept != total - selected or self._scalar(sql["count_all"]) != total:
            self._execute(sql["drop_keep"])
            raise self._unavailable(
                f"table {spec.name} changed while deleting from it (another writer?): nothing deleted; retry when "
                f"nothing writes to it"
            )
        self._execute(sql["drop"])
        self._execute(sql["rename"])
        self._wait_applied(spec.name)
        return selected

    def _recover_deletes(self) -> None:
        """Finish or undo a :meth:`delete_rows` cut short: a ``<table>_btlab_keep`` copy without its table takes the
        table's name (the drop happened, the rename did not); beside an intact table it is dropped."""
        tables = set(self._wal_status())
        for table in TABLES.values():
            keep = table.name + KEEP_SUFFIX
            if keep not in tables:
                continue
            sql = delete_statements(table, "true")
            self._execute(sql["drop_keep"] if table.name in tables else sql["rename"])

    def _writable(self) -> None:
        if self.read_only:
            raise StoreUnavailableError(self.address, "opened read-only: cannot write")

    def close(self) -> None:
        """Close the ILP sender and the PostgreSQL wire connection. Idempotent."""
        self._closed = True
        self._drop_sender()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    # ---- internals ----------------------------------------------------------------------------------------
    def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            try:
                sender.close(flush=False)
            except Exception:  # noqa: BLE001 -- closing a broken sender must not hide the original error
                pass

    def _wal_status(self, name: str | None = None) -> dict[str, tuple[bool, int, int]]:
        desc, rows = self._execute(to_pyformat(WAL_TABLES_SQL + " WHERE name = ?"), [name]) if name else \
            self._execute(WAL_TABLES_SQL)
        return {r[0]: (bool(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows}

    def _wait_applied(self, table: str) -> None:
        """Block until every WAL transaction of ``table`` committed so far is applied (visible to readers).

        Polls ``wal_tables()`` with a short, growing interval (5 ms .. 100 ms), at most ``wal_timeout`` seconds.
        """
        deadline = time.monotonic() + self.wal_timeout
        target: int | None = None
        delay = 0.005
        while True:
            status = self._wal_status(table).get(table)
            if status is None:
                raise StoreUnavailableError(self.address, f"table {table} is not listed by wal_tables()")
            suspended, writer_txn, sequencer_txn = status
            if suspended:
                raise StoreUnavailableError(
                    self.address,
                    f"table {table} is suspended (applying a WAL transaction failed; see the server log, "
                    f"SELECT * FROM wal_tables() and ALTER TABLE {table} RESUME WAL)",
                )
            if target is None:
                target = sequencer_txn  # includes our commits; later writers do not extend the wait
            if writer_txn >= target:
                return
            if time.monotonic() >= deadline:
                raise StoreUnavailableError(
                    self.address,
                    f"rows written to {table} not visible after {self.wal_timeout:g} s "
                    f"(writerTxn {writer_txn} < sequencerTxn {target}; the WAL apply job is lagging)",
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


class _Watchdog:
    """Context manager: if the block still runs after ``seconds``, shut the connection's socket down (both ways).

    The blocked read then ends at once (psycopg raises ``OperationalError``, the connection is broken) and
    :attr:`fired` says why. Only a socket call happens on the timer thread, never a psycopg call.
    """

    def __init__(self, conn: Any, seconds: float) -> None:
        self.fired = False
        self._fd = conn.pgconn.socket
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self._fd))
        except OSError:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.close()

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()


def _bind(value: Any) -> Any:
    """A Python value psycopg binds with a type QuestDB understands (ints as int8, times as naive UTC)."""
    from psycopg.types.numeric import Int8

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return Int8(int(value))
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _frame(description: Sequence[Any], rows: list[tuple]) -> pd.DataFrame:
    names = [d.name for d in description]
    columns = list(zip(*rows)) if rows else [()] * len(names)
    data: dict[int, Any] = {}
    for i, (desc, values) in enumerate(zip(description, columns)):
        oid = desc.type_code
        if oid in _INT_OIDS:
            arr = pd.array(list(values), dtype="Int64")
            data[i] = arr if arr.isna().any() else arr.astype("int64")
        elif oid in _FLOAT_OIDS:
            data[i] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif oid in _TS_OIDS:
            ts = pd.to_datetime(pd.Series(list(values), dtype="object"), utc=oid == 1184)
            data[i] = ts.dt.tz_localize(None) if oid == 1184 else ts
            if not len(values):
                data[i] = pd.Series([], dtype="datetime64[ns]")
        else:
            data[i] = pd.Series(list(values), dtype="object")
    out = pd.DataFrame(data, index=pd.RangeIndex(len(rows)))
    out.columns = names
    return out


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
