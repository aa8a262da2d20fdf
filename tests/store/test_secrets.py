"""No secret in any message: store addresses with passwords and tokens, through the Python API and the command.

Also: the run result reopens its store with the private configuration (not the redacted address), PG-wire TLS and
timeout parameters, a server that never answers, and ``.env`` kept out of git.

A small PG-wire endpoint (:class:`PgWireEndpoint`, a plain socket server speaking the PostgreSQL v3 start-up
protocol) stands in for a QuestDB server where one is needed: the real libpq/psycopg client talks to it.
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import socket
import struct
import subprocess
import threading
import time
import traceback

import pytest

import btlab
from btlab.errors import StoreConfigError, StoreUnavailableError
from btlab.store import open_store
from btlab.store.duckdb import DuckDBStore
from btlab.store.questdb_address import parse_address, pg_connect_params
from cliproc import assert_one_line, btlab_cli
from realdata import REPO, btc_1h


PW = "S3CRETpw"  # HTTP basic-auth password
TOK = "T0KENvalue"  # bearer token
TOKX = "TOKX9secret"
TOKY = "TOKY9secret"
PGPW = "PGpw7secret"  # PG wire password
ROOTPW = "ROOTS5secret"
TAIL = "SECRETTAIL"  # the part of a password after an undoubled ';' (or '?')
TAILKEY = "tailkey"  # a password part that looks like a key
SECRETS = (PW, TOK, TOKX, TOKY, PGPW, ROOTPW, TAIL, TAILKEY)

#: Every way an address can be refused, each holding credentials. (address, what the message must say)
BAD_ADDRESSES = [
    (f"http::addr=h:9000;username=admin;password={PW};pg_port=abc;", "pg_port must be a number"),  # the issue's
    (f"http::addr=h:9000;password={PW};pg_port=70000;", "pg_port 70000 out of range"),
    (f"http::addr=h:notaport;password={PW};", "addr port must be a number"),
    (f"http::addr=h:70000;token={TOK};", "addr port 70000 out of range"),
    (f"http::addr=:9000;password={PW};", "addr has no host"),
    (f"http::addr=h:9000;password={PW};password={PW}x;", "given twice: password"),
    (f"http::addr=h:9000;addr=g:9000;token={TOK};", "given twice: addr"),
    (f"http::addr=h:9000;password=ab;cd{TAIL};pg_port=1;", "';' inside a value is written ';;'"),
    (f"http::addr=h:9000;password=ab;{TAILKEY}={TAIL};", "';' inside a value is written ';;'"),
    (f"http::addr=h:9000;password={PW};garbage", "expected key=value after password="),
    (f"http::addr=h:9000;=value;password={PW};", "expected key=value after addr="),
    (f"http::username=admin;password={PW};", "has no addr=HOST:PORT"),
    (f"tcp::addr=h:9009;username=admin;token={TOK};", "transport 'tcp' is not supported"),
    (f"tcps::addr=h:9009;token={TOK};token_x={TOKX};token_y={TOKY};", "transport 'tcps' is not supported"),
    (f"http::addr=h:9000;pasword={PW};", "unknown key(s) pasword"),
    (f"http::addr=h:9000;password={PW};retry_timeout=abc;", "key retry_timeout: Invalid value"),
    (f"http::addr=h:9000;token={TOK};request_min_throughput=-1;", "key request_min_throughput"),
    (f"http::addr=h:9000;username=a;password={PW};max_buf_size=10;", "key max_buf_size"),
    (f"http::addr=h:9000;password={PW};protocol_version=9;", "key protocol_version"),
    (f"https::addr=h:9000;password={PW};tls_roots=/nonexistent/ca.pem;", "key tls_roots"),
    (f"http::addr=h:9000;token={TOK};token_x={TOKX};token_y={TOKY};bind_interface=0.0.0.0;", "key bind_interface"),
    (f"http::addr=h:9000;tls_roots_password={ROOTPW};", "key tls_roots_password"),
    (f"http::addr=h:9000;pg_password={PGPW};pg_timeout=soon;", "pg_timeout must be a number of seconds"),
    (f"https::addr=h:9000;password={PW};pg_sslmode=maybe;", "pg_sslmode must be one of"),
    (f"https::addr=h:9000;password={PW};pg_sslrootcert=/nonexistent/ca.pem;", "pg_sslrootcert"),
    (f"questdb://admin:{PW}@h:abc", "malformed host or port"),
    (f"questdb://admin:{PW}@h:99999", "malformed host or port"),
    (f"questdb://admin:{PW}@h/db", "unexpected path"),
    (f"questdb://admin:{PW}@h?pg_prot=8812", "unknown parameter(s) pg_prot"),
    (f"questdb://admin:{PW}@h?tls=maybe", "tls must be true or false"),
    (f"questdb://h?pg_password={PGPW}&pg_port=x", "pg_port must be a number"),
    (f"questdb://h?pg_password={PGPW}&pg_password={PGPW}2", "given twice: pg_password"),
    (f"questdb://admin:{PW}@h?pg_password={PGPW}&pg_timeout=0", "pg_timeout must be a number of seconds"),
    (f"questdb://admin:ab?cd{TAIL}@h", "'@' after the host"),
    (f"questdb://admin:ab#cd{TAIL}@h:9000", "'@' after the host"),
    (f"questdb://admin:{PW}@", "has no host"),
    (f"postgres://admin:{PW}@h/db", "unknown store address"),
    (f"htp::addr=h:9000;password={PW};", "unknown store address"),
]


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


# ---- the Python API -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("address", "says"), BAD_ADDRESSES)
def test_a_refused_address_names_no_secret(address, says, caplog):
    caplog.set_level("DEBUG")
    with pytest.raises(StoreConfigError) as info:
        open_store(address)
    exc = info.value
    message = str(exc)
    assert says in message
    assert "\n" not in message and len(message) < 1200
    _assert_no_secret(message)
    _assert_no_secret(repr(exc))
    _assert_no_secret("".join(traceback.format_exception(exc)))  # what `btlab --debug` prints
    _assert_no_secret(caplog.text)


def test_the_redacted_address_shows_the_structure():
    with pytest.raises(StoreConfigError) as info:
        open_store(f"http::addr=h:9000;username=admin;password={PW};pg_port=abc;")
    assert "'http::addr=h:9000;username=admin;password=***;pg_port=abc;'" in str(info.value)
    with pytest.raises(StoreConfigError) as info:
        open_store(f"questdb://admin:{PW}@h:abc?pg_password={PGPW}&pg_user=reader")
    assert "'questdb://admin:***@h:abc?pg_password=***&pg_user=reader'" in str(info.value)


def test_a_valid_address_keeps_its_credentials_private(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = parse_address(f"https::addr=db:9443;username=ingest;password={PW};token={TOK};pg_password={PGPW};"
                        f"pg_sslrootcert={ca};")
    assert PW in cfg.ilp_conf and TOK in cfg.ilp_conf and cfg.pg_password == PGPW  # the real values, for use
    for text in (repr(cfg), cfg.display, cfg.resolved):
        _assert_no_secret(text)
    assert cfg.scrub(f"server said: bad password {PW} / {PGPW}") == "server said: bad password *** / ***"
    url = parse_address(f"questdb://bob:{PW}@db:9443?tls=true&pg_password={PGPW}&pg_user=reader")
    assert PW in url.ilp_conf and url.pg_password == PGPW
    assert url.display == "questdb://bob@db:9443?tls=true&pg_user=reader"
    _assert_no_secret(repr(url))


def test_password_file_gives_both_passwords_and_keeps_them_private(tmp_path):
    """password_file=PATH (a compose secret): the file's content is the HTTP and the PG-wire password, the address
    holds none, ';' inside needs no doubling, one trailing newline is dropped; pg_password given wins for PG wire."""
    secret = tmp_path / "qdb_admin_password"
    secret.write_text(f"{PW};{TAIL}\n")
    cfg = parse_address(f"http::addr=db:9000;username=admin;password_file={secret};pg_user=admin;")
    assert cfg.pg_password == f"{PW};{TAIL}" and f"password={PW};;{TAIL};" in cfg.ilp_conf
    assert pg_connect_params(cfg)["password"] == f"{PW};{TAIL}"
    for text in (repr(cfg), cfg.display, cfg.resolved):
        _assert_no_secret(text)
    assert cfg.scrub(f"login failed for {PW};{TAIL}") == "login failed for ***"
    own = parse_address(f"http::addr=db:9000;password_file={secret};pg_password={PGPW};")
    assert own.pg_password == PGPW and f"password={PW};;{TAIL};" in own.ilp_conf


@pytest.mark.parametrize("content, says", [(None, "cannot be read"), ("", "is empty"), ("\n", "is empty")])
def test_a_bad_password_file_is_one_line_naming_the_file(tmp_path, content, says):
    secret = tmp_path / "pw"
    if content is not None:
        secret.write_text(content)
    address = f"http::addr=db:9000;password_file={secret};"
    with pytest.raises(StoreConfigError, match=f"password_file '{secret}' {says}"):
        parse_address(address)
    proc = btlab_cli("runs", "list", store=address)
    assert_one_line(proc, code=1)
    assert str(secret) in proc.stderr


def test_password_and_password_file_together_are_refused(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text(PW)
    with pytest.raises(StoreConfigError, match="password or password_file, not both") as err:
        parse_address(f"http::addr=db:9000;password={PGPW};password_file={secret};")
    _assert_no_secret(str(err.value))


# ---- the command ----------------------------------------------------------------------------------------------
CLI_CASES = [a for a, _ in BAD_ADDRESSES[:1]] + [
    f"http::addr=h:9000;password={PW};password={PW}x;",
    f"http::addr=h:9000;password=ab;cd{TAIL};pg_port=1;",
    f"http::addr=h:9000;pasword={PW};",
    f"http::addr=127.0.0.1:9;password={PW};retry_timeout=abc;",  # was exit 2 (unreachable), or a traceback
    f"tcp::addr=h:9009;username=admin;token={TOK};",
    f"questdb://admin:ab?cd{TAIL}@h",
    f"postgres://admin:{PW}@h/db",
]


@pytest.mark.parametrize("address", CLI_CASES)
def test_a_refused_address_is_one_line_without_secret_in_the_command(address):
    proc = btlab_cli("runs", "list", store=address)  # BTLAB_STORE, as compose sets it
    assert_one_line(proc, code=1)
    _assert_no_secret(proc.stdout + proc.stderr)


def test_debug_output_names_no_secret():
    address = f"http::addr=h:9000;username=admin;password={PW};pg_port=abc;"
    proc = btlab_cli("--debug", "runs", "list", "--store", address)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    _assert_no_secret(proc.stdout + proc.stderr)


# ---- PG wire: TLS and timeouts --------------------------------------------------------------------------------
def test_pg_connect_params_from_addresses(tmp_path):
    import psycopg

    from btlab.store.questdb_address import pg_connect_params

    plain = pg_connect_params(parse_address(f"http::addr=db:9000;pg_password={PGPW};"), connect_timeout=5)
    assert {k: plain[k] for k in ("host", "port", "user", "password", "dbname")} == {
        "host": "db", "port": 8812, "user": "admin", "password": PGPW, "dbname": "qdb"}
    assert "sslmode" not in plain and "sslrootcert" not in plain  # libpq's default: prefer
    assert plain["connect_timeout"] == 5
    assert plain["tcp_user_timeout"] == 300_000 and plain["options"] == "-c statement_timeout=300000"
    assert (plain["keepalives"], plain["keepalives_idle"], plain["keepalives_interval"], plain["keepalives_count"]) \
        == (1, 10, 5, 3)

    tls = pg_connect_params(parse_address("https::addr=db:9443;"))
    assert (tls["sslmode"], tls["sslrootcert"]) == ("verify-full", "system")
    off = pg_connect_params(parse_address("https::addr=db:9443;pg_sslmode=disable;"))
    assert off["sslmode"] == "disable" and "sslrootcert" not in off
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    own = pg_connect_params(parse_address(f"https::addr=db:9443;pg_sslrootcert={ca};pg_timeout=2.5;"),
                            connect_timeout=0.3)
    assert (own["sslmode"], own["sslrootcert"]) == ("verify-full", str(ca))
    assert own["tcp_user_timeout"] == 2500 and own["options"] == "-c statement_timeout=2500"
    assert own["connect_timeout"] == 2  # libpq's minimum
    url = pg_connect_params(parse_address("questdb://db?tls=true&pg_sslmode=verify-ca&pg_timeout=10"))
    assert url["sslmode"] == "verify-ca" and "sslrootcert" not in url and url["tcp_user_timeout"] == 10_000
    for params in (plain, tls, off, own, url):  # libpq itself accepts every parameter and value
        psycopg.conninfo.conninfo_to_dict(psycopg.conninfo.make_conninfo("", **params))


class PgWireEndpoint:
    """A local TCP server for PG-wire clients. ``mode``:

    * ``"mute"``: accepts and never sends a byte;
    * ``"silent"``: completes the start-up (AuthenticationOk, ReadyForQuery), then never answers a query;
    * ``"password"``: asks for a clear-text password, records it in :attr:`passwords`, refuses the login.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.passwords: list[str] = []
        self.options: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def __enter__(self) -> "PgWireEndpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    @staticmethod
    def _message(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("!i", len(payload) + 4) + payload

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.mode != "mute":
                self._startup(conn)
            while conn.recv(65536):  # read whatever comes, answer nothing
                pass
        except (EOFError, OSError):
            pass

    def _startup(self, conn: socket.socket) -> None:
        while True:
            (length,) = struct.unpack("!i", self._read(conn, 4))
            body = self._read(conn, length - 4)
            if struct.unpack("!i", body[:4])[0] in (80877103, 80877104):  # SSLRequest, GSSENCRequest: no
                conn.sendall(b"N")
                continue
            break
        fields = body[4:].split(b"\0")
        self.options.append(dict(zip(fields[0::2], fields[1::2])).get(b"options", b"").decode())
        if self.mode == "password":
            conn.sendall(self._message(b"R", struct.pack("!i", 3)))  # AuthenticationCleartextPassword
            self._read(conn, 1)
            (length,) = struct.unpack("!i", self._read(conn, 4))
            self.passwords.append(self._read(conn, length - 4).rstrip(b"\0").decode())
            conn.sendall(self._message(b"E", b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"))
            conn.close()
            raise EOFError
        out = self._message(b"R", struct.pack("!i", 0))
        for key, value in ((b"server_version", b"12.3"), (b"client_encoding", b"UTF8"),
                           (b"integer_datetimes", b"on"), (b"standard_conforming_strings", b"on")):
            out += self._message(b"S", key + b"\0" + value + b"\0")
        out += self._message(b"K", struct.pack("!ii", 1, 2)) + self._message(b"Z", b"I")
        conn.sendall(out)


def test_a_server_that_never_answers_a_query_ends_in_one_line_exit_2():
    with PgWireEndpoint("silent") as server:
        address = (f"http::addr=127.0.0.1:{server.port};pg_port={server.port};pg_timeout=1;username=admin;"
                   f"password={PW};pg_password={PGPW};")
        started = time.monotonic()
        proc = btlab_cli("runs", "list", store=address, timeout=60)  # hung forever before pg_timeout existed
        elapsed = time.monotonic() - started
        assert server.options == ["-c statement_timeout=1000"]  # QuestDB's own limit is asked for too
    line = assert_one_line(proc, code=2)
    assert f"PostgreSQL wire at 127.0.0.1:{server.port}: no answer within 1 s (pg_timeout)" in line
    _assert_no_secret(proc.stdout + proc.stderr)
    assert elapsed < 30


def test_a_server_that_accepts_and_never_speaks_ends_in_one_line_exit_2():
    with PgWireEndpoint("mute") as server:
        address = f"http::addr=127.0.0.1:{server.port};pg_port={server.port};password={PW};pg_password={PGPW};"
        proc = btlab_cli("runs", "list", store=address, timeout=60)
    line = assert_one_line(proc, code=2)
    assert "connection timeout expired" in line
    _assert_no_secret(proc.stdout + proc.stderr)


def test_api_timeout_error_names_no_secret():
    with PgWireEndpoint("silent") as server:
        address = f"http::addr=127.0.0.1:{server.port};pg_port={server.port};pg_timeout=1;pg_password={PGPW};"
        with pytest.raises(StoreUnavailableError) as info:
            open_store(address, read_only=True)
    assert "no answer within 1 s" in str(info.value)
    _assert_no_secret(str(info.value) + repr(info.value))


# ---- the run result ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A DuckDB store with real BTC/USDT 1h bars and one recorded sma_cross run."""
    path = tmp_path_factory.mktemp("secrets") / "store.duckdb"
    with DuckDBStore(path) as st:
        st.write_bars(btc_1h(), exchange="binance", symbol="BTC/USDT", timeframe="1h", source="test")
        result = btlab.run_backtest("sma_cross", store=st, start="2020-01-01", end="2020-06-30")
    return path, result


def test_report_reopens_the_duckdb_store_the_run_was_recorded_in(recorded, tmp_path):
    path, result = recorded
    assert result.store_address == str(path)
    out = btlab.write_report(result, tmp_path / "run.html")  # the store was closed: reopened read-only from the result
    assert out.exists() and result.run_id in out.read_text()


def test_report_reopens_questdb_with_the_private_configuration(recorded, tmp_path):
    """Before: result.report() reopened the redacted address, so the server was sent QuestDB's default password."""
    _, result = recorded
    with PgWireEndpoint("password") as server:
        cfg = parse_address(f"http::addr=127.0.0.1:{server.port};pg_port={server.port};username=admin;"
                            f"password={PW};pg_password={PGPW};")
        on_questdb = dataclasses.replace(result, store_address=cfg.display, _reopen=cfg)
        with pytest.raises(StoreUnavailableError) as info:
            btlab.write_report(on_questdb, tmp_path / "run.html")
    assert server.passwords and set(server.passwords) == {PGPW}  # the real password reached the server
    assert "password authentication failed" in str(info.value)
    _assert_no_secret(str(info.value))
    _assert_no_secret(repr(on_questdb))
    picklable = dataclasses.replace(on_questdb, strategy=None)
    for secret in (PW, PGPW):
        assert secret.encode() not in pickle.dumps(picklable)  # the private configuration stays in the process
    assert pickle.loads(pickle.dumps(picklable)).store_address == cfg.display


def test_the_run_row_does_not_record_the_store_address(recorded):
    path, result = recorded
    with DuckDBStore(path, read_only=True) as st:
        row = st.get_run(result.run_id)
    assert str(path) not in repr(row) and "duckdb" not in repr(row).lower()


# ---- settings and .env --------------------------------------------------------------------------------------------
def test_settings_repr_hides_the_store_address():
    from btlab.settings import Settings

    settings = Settings(store=f"http::addr=h:9000;username=admin;password={PW};")
    assert PW not in repr(settings) and PW not in str(settings)
    assert settings.store_address.endswith(f"password={PW};")


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_dotenv_is_ignored_by_git():
    """btlab reads ./.env (secrets such as BTLAB_STORE with a password): git must never pick it up."""
    for path in (".env", "deploy/.env"):
        proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, capture_output=True, timeout=30)
        assert proc.returncode == 0, f"{path} is not git-ignored"

