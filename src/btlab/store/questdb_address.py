"""QuestDB store addresses: parsing, redaction and the PostgreSQL-wire connection parameters (no network access).

An address is the official client's configuration string (``http::addr=HOST:9000;...``) or
``questdb://HOST[:9000][?...]``; :func:`parse_address` turns it into a :class:`QuestDBConfig` (credentials
included, never shown), :func:`redact_address` makes any address -- malformed ones too -- fit for a message.
Split out of :mod:`btlab.store.questdb` (the backend) so that reading an address needs neither pandas nor a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from btlab.errors import StoreConfigError

DEFAULT_HTTP_PORT = 9000
DEFAULT_PG_PORT = 8812
DEFAULT_PG_USER = "admin"
DEFAULT_PG_PASSWORD = "quest"
DEFAULT_PG_DBNAME = "qdb"

#: btlab-only keys of the client configuration string (removed before the string reaches the ILP client).
PG_KEYS = ("pg_host", "pg_port", "pg_user", "pg_password", "pg_dbname", "pg_sslmode", "pg_sslrootcert", "pg_timeout")
#: btlab-only key: a file holding the password (a compose/Kubernetes secret), used for ``password`` (HTTP basic auth)
#: and, unless ``pg_password`` is given, for ``pg_password``; so the address itself carries no secret.
PASSWORD_FILE_KEY = "password_file"
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
_KNOWN_KEYS = CLIENT_KEYS | set(PG_KEYS) | _FLUSH_KEYS | {"addr", PASSWORD_FILE_KEY}
#: libpq ``sslmode`` values (https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Seconds one PG-wire statement (its result included) may take before btlab gives up on the server (``pg_timeout``).
DEFAULT_PG_TIMEOUT = 300.0
#: Seconds past ``pg_timeout`` the client-side watchdog waits (the server's own ``statement_timeout`` fires first).
_SCHEMES = ("http", "https")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_MASK = "***"
#: Longest address excerpt quoted in a message.
_SHOWN_MAX = 240
_FORMS = (
    "use http::addr=HOST:9000; (optionally username=..;password=..; or password_file=PATH; and pg_host, pg_port, "
    "pg_user, pg_password, "
    "pg_dbname, pg_sslmode, pg_sslrootcert, pg_timeout for the PostgreSQL wire protocol) or "
    "questdb://HOST[:9000][?pg_port=8812&pg_user=..]"
)



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
        text = (f"ILP/HTTP {scheme}://{join_host_port(self.http_host, self.http_port)}, "
                f"PG wire {join_host_port(self.pg_host, self.pg_port)}")
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
      before the string reaches the client, and ``password_file`` (a file whose content, less one trailing newline,
      is the password: ``password`` and, unless given, ``pg_password`` -- for compose secrets, so the address in the
      environment holds none). A literal ``;`` inside a value is written ``;;``. ``auto_flush*`` keys
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
            :func:`redact_address` shows it, and the accepted forms), or its ``password_file`` cannot be read, is
            empty, or comes with a ``password`` too.
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
    if PASSWORD_FILE_KEY in keys:
        pairs = _read_password_file(pairs, shown)
    values = dict(pairs)
    if not values.get("addr"):
        raise StoreConfigError(f"QuestDB address {shown!r} has no addr=HOST:PORT; {_FORMS}")
    host, port = _split_host_port(values["addr"], DEFAULT_HTTP_PORT, shown)
    port_given = _has_port(values["addr"])
    client = [(k, v) for k, v in pairs if k not in PG_KEYS and k not in _FLUSH_KEYS and k != "addr"]
    client_pairs = [("addr", join_host_port(host, port))] + client
    ilp_conf = _render_conf(scheme, client_pairs)
    display = _render_conf(
        scheme,
        [(k, v) for k, v in pairs if k not in SECRET_KEYS and k not in _FLUSH_KEYS],
    )
    config = _config(ilp_conf, host, port, scheme == "https", values, shown, display, port_given)
    _check_client_conf(scheme, client_pairs, shown)
    return config


def _read_password_file(pairs: list[tuple[str, str]], shown: str) -> list[tuple[str, str]]:
    """``pairs`` with ``password_file=PATH`` replaced by ``password`` (and ``pg_password`` when not given) read from
    the file; one trailing newline (``\n`` or ``\r\n``) is dropped, nothing else.

    Raises:
        StoreConfigError: ``password`` given as well, the file cannot be read or is empty (naming the path, never
            quoting the content).
    """
    keys = {k for k, _ in pairs}
    if "password" in keys:
        raise StoreConfigError(f"QuestDB address {shown!r}: give password or password_file, not both")
    path = dict(pairs)[PASSWORD_FILE_KEY]
    try:
        secret = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise StoreConfigError(f"QuestDB address {shown!r}: password_file {_excerpt(path, 120)!r} cannot be read: "
                               f"{reason}") from None
    secret = secret[:-2] if secret.endswith("\r\n") else secret[:-1] if secret.endswith("\n") else secret
    if not secret:
        raise StoreConfigError(f"QuestDB address {shown!r}: password_file {_excerpt(path, 120)!r} is empty")
    out = [(k, v) for k, v in pairs if k != PASSWORD_FILE_KEY] + [("password", secret)]
    if "pg_password" not in keys:
        out.append(("pg_password", secret))
    return out


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
    client: list[tuple[str, str]] = [("addr", join_host_port(host, http_port))]
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
            f"btlab's: {', '.join((*PG_KEYS, PASSWORD_FILE_KEY))}"
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
            return kind + one_line(exc)
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


def join_host_port(host: str, port: int) -> str:
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


def one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
