"""Open a store from its address."""

from __future__ import annotations

from btlab.errors import StoreConfigError
from btlab.store.base import Store

# tcp:: is recognised only so that the QuestDB backend can refuse it clearly (ILP over TCP has no transactions)
QUESTDB_PREFIXES = ("http::", "https::", "tcp::", "tcps::", "questdb://")


def open_store(address: str | None = None) -> Store:
    """Open the store at ``address`` (default: ``BTLAB_STORE``, else the default DuckDB file).

    Address forms:
        * ``path/to/file.duckdb``, ``duckdb:///abs/path.duckdb``, ``:memory:`` -- the embedded DuckDB backend;
        * ``http::addr=HOST:9000;`` (the official QuestDB client configuration string, optionally with
          ``username=...;password=...;`` and btlab's ``pg_port=8812;pg_user=...;pg_password=...;`` for reads),
          or ``questdb://HOST:9000`` -- the QuestDB backend.

    Raises:
        StoreConfigError: the address is malformed.
        StoreUnavailableError: the store cannot be reached; the message names the address.
    """
    if address is None:
        from btlab.settings import store_address

        address = store_address()
    address = address.strip()
    if not address:
        raise StoreConfigError("empty store address")
    if address.startswith(QUESTDB_PREFIXES):
        from btlab.store.questdb import QuestDBStore

        return QuestDBStore.from_address(address)
    if "://" in address and not address.startswith("duckdb://"):
        raise StoreConfigError(
            f"unknown store address {address!r}: use a DuckDB file path, duckdb:///path, or a QuestDB address "
            "such as http::addr=localhost:9000;"
        )
    from btlab.store.duckdb import DuckDBStore

    return DuckDBStore(address.removeprefix("duckdb://"))
