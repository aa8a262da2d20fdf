"""Open a store from its address."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Union

from btlab.errors import StoreConfigError
from btlab.store.base import Store

if TYPE_CHECKING:
    from btlab.store.questdb_address import QuestDBConfig

# tcp:: is recognised only so that the QuestDB backend can refuse it clearly (ILP over TCP has no transactions)
QUESTDB_PREFIXES = ("http::", "https::", "tcp::", "tcps::", "questdb://")
#: ``name::`` -- a client configuration string of an unknown transport (never a DuckDB path)
_CONF_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_+.-]*::")

#: What :func:`open_store` opens: an address, or a store's private configuration (see :func:`reopen_target`).
StoreTarget = Union[str, "QuestDBConfig"]


def open_store(address: StoreTarget | None = None, *, read_only: bool = False) -> Store:
    """Open the store at ``address`` (default: ``BTLAB_STORE``, else the default DuckDB file).

    ``address`` may also be what :func:`reopen_target` returned for an open store (for QuestDB, its
    :class:`~btlab.store.questdb_address.QuestDBConfig`, credentials included): the same store is opened again.

    ``read_only=True`` is for commands that only read (listing runs, coverage, reports): nothing is created (no
    file, no folder, no table) and nothing can be written; a DuckDB file must already exist. Several read-only
    openers and one writer share a DuckDB file by turns (see :class:`~btlab.store.duckdb.DuckDBStore`; they wait
    up to ``BTLAB_LOCK_TIMEOUT`` seconds for each other).

    Address forms:
        * ``path/to/file.duckdb``, ``duckdb:///abs/path.duckdb``, ``:memory:`` -- the embedded DuckDB backend;
        * ``http::addr=HOST:9000;`` (the official QuestDB client configuration string, optionally with
          ``username=...;password=...;`` and btlab's ``pg_port=8812;pg_user=...;pg_password=...;`` for reads),
          or ``questdb://HOST:9000`` -- the QuestDB backend.

    Raises:
        StoreConfigError: the address is malformed, names an existing file that is not a DuckDB database, or a
            ``BTLAB_*`` setting (e.g. ``BTLAB_LOCK_TIMEOUT``) is invalid. No message quotes a password or token
            (:func:`btlab.store.questdb_address.redact_address`).
        StoreNotFoundError: ``read_only`` and there is no store at the address.
        StoreUnavailableError: the store cannot be reached (or its file stays locked by another process:
            :class:`~btlab.errors.StoreLockedError`, naming it); the message names the address.
    """
    from btlab.settings import lock_timeout, store_address

    if address is None:
        address = store_address()
    if not isinstance(address, str):
        from btlab.store.questdb import QuestDBStore
        from btlab.store.questdb_address import QuestDBConfig

        if not isinstance(address, QuestDBConfig):
            raise TypeError(f"open_store takes an address string, not {type(address).__name__}")
        return QuestDBStore(address, read_only=read_only)
    address = address.strip()
    if not address:
        raise StoreConfigError("empty store address")
    if address.startswith(QUESTDB_PREFIXES):
        from btlab.store.questdb import QuestDBStore

        return QuestDBStore.from_address(address, read_only=read_only)
    if ("://" in address and not address.startswith("duckdb://")) or _CONF_PREFIX.match(address):
        from btlab.store.questdb_address import redact_address

        raise StoreConfigError(
            f"unknown store address {redact_address(address)!r}: use a DuckDB file path, duckdb:///path, or a "
            "QuestDB address such as http::addr=localhost:9000;"
        )
    from btlab.store.duckdb import DuckDBStore

    return DuckDBStore(address.removeprefix("duckdb://"), read_only=read_only, lock_timeout=lock_timeout())


def reopen_target(store: Store) -> StoreTarget:
    """What :func:`open_store` takes to open ``store`` again: its DuckDB path, or for QuestDB its private
    :class:`~btlab.store.questdb_address.QuestDBConfig` (credentials included; its ``repr`` shows none). Keep it inside
    the process: never print, log or store it -- ``store.address`` is the form for people."""
    questdb = sys.modules.get("btlab.store.questdb")  # not loaded: the store cannot be a QuestDB one
    if questdb is not None and isinstance(store, questdb.QuestDBStore):
        return store.config
    return store.address
