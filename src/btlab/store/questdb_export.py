"""Bulk reads from QuestDB through its own export endpoint ``/exp`` (HTTP), decoded column-wise by pyarrow.

Why: over PostgreSQL wire psycopg builds one Python object per value (8 million for a million bars), while ``/exp``
streams the result in one go and pyarrow turns it into columns in C. QuestDB documents ``/exp``
(https://questdb.com/docs/query/rest-api/#exp---export-data: ``GET /exp?query=..``, CSV by default, ``fmt=parquet``
for Parquet, https://questdb.com/docs/query/export-parquet/; HTTP basic auth or ``Authorization: Bearer`` token; a
malformed query answers 400 with a JSON ``error``). btlab asks for Parquet and decodes whatever comes back by its
first bytes: Parquet (``PAR1``) or the documented CSV (a header line of quoted names, ISO timestamps such as
``"2024-01-01T00:00:00.000000Z"``), so a server that does not know ``fmt=parquet`` still answers usefully.

``/exp`` has no bind variables: the query text holds its values. So only values that cannot leave a SQL string
literal (:func:`btlab.store.questdb_sql.export_bars_sql`) are ever put there; any other read goes over PG wire with
bound parameters.
"""

from __future__ import annotations

import base64
import io
import ssl
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from btlab.store.questdb_address import QuestDBConfig, _segments, join_host_port

if TYPE_CHECKING:
    import pandas as pd

#: QuestDB's null of a ``LONG`` column (``Long.MIN_VALUE``), should an export carry it as a number.
LONG_NULL = -(2**63)
#: Bytes read from the response at a time (the deadline is checked between reads).
READ_BYTES = 1 << 20
PARQUET_MAGIC = b"PAR1"
#: Column kinds of a bar read (the columns :meth:`QuestDBStore.read_bars` selects, in order).
BAR_EXPORT_COLUMNS = {"ts": "timestamp", "open": "double", "high": "double", "low": "double", "close": "double",
                      "volume": "double", "trades": "long", "vwap": "double"}


class ExportError(Exception):
    """``/exp`` did not deliver a usable answer (HTTP error, refused connection, undecodable body); the message
    holds no credential. The caller reads over PG wire instead."""


class ExportTimeout(ExportError):
    """``/exp`` did not deliver the whole answer within the deadline."""


def http_auth(config: QuestDBConfig) -> tuple[dict[str, str], ssl.SSLContext | None]:
    """The ``Authorization`` header and TLS context for QuestDB's HTTP endpoint, from the address's client keys:
    ``username``/``password`` (basic auth), ``token`` (bearer), ``tls_verify=unsafe_off``, ``tls_roots`` (a PEM
    file of trusted roots; otherwise the system's). Returns ``(headers, context)``; context None for ``http``."""
    values = {s.key: s.value for s in _segments(config.ilp_conf.partition("::")[2]) if s.key}
    headers: dict[str, str] = {}
    if values.get("token"):
        headers["Authorization"] = f"Bearer {values['token']}"
    elif values.get("username"):
        pair = f"{values['username']}:{values.get('password', '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    if not config.tls:
        return headers, None
    context = ssl.create_default_context(cafile=values.get("tls_roots") or None)
    if values.get("tls_verify") == "unsafe_off":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return headers, context


def fetch_export(config: QuestDBConfig, sql: str, timeout: float) -> bytes:
    """``GET /exp?query=<sql>&fmt=parquet`` on the address's HTTP endpoint; returns the whole body.

    Raises:
        ExportTimeout: the body did not arrive within ``timeout`` seconds (each read waits at most that long too).
        ExportError: any other failure (HTTP status >= 400, connection refused, TLS): message scrubbed.
    """
    headers, context = http_auth(config)
    scheme = "https" if config.tls else "http"
    url = (f"{scheme}://{join_host_port(config.http_host, config.http_port)}/exp?"
           + urlencode({"query": sql, "fmt": "parquet"}))
    request = urllib.request.Request(url, headers=headers, method="GET")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            while chunk := response.read(READ_BYTES):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise ExportTimeout(f"/exp: no complete answer within {timeout:g} s")
    except ExportError:
        raise
    except TimeoutError:
        raise ExportTimeout(f"/exp: no answer within {timeout:g} s") from None
    except urllib.error.HTTPError as exc:
        raise ExportError(f"/exp: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ExportTimeout(f"/exp: no answer within {timeout:g} s") from None
        raise ExportError(config.scrub(f"/exp: {type(reason).__name__}: {reason}")[:200]) from None
    return b"".join(chunks)


def decode_export(body: bytes, columns: dict[str, str] = BAR_EXPORT_COLUMNS) -> pd.DataFrame:
    """An ``/exp`` answer (Parquet or CSV, told by its first bytes) as a frame of ``columns`` (name -> kind, in
    order): ``timestamp`` -> ``datetime64[ns, UTC]`` (a timestamp without zone is UTC, QuestDB's only zone),
    ``double`` -> float64 (nulls NaN), ``long`` -> nullable ``Int64`` (nulls, and QuestDB's null sentinel
    :data:`LONG_NULL`, as ``<NA>``); a ``RangeIndex``.

    Raises:
        ExportError: the body is neither, or lacks a column.
    """
    import pyarrow as pa

    try:
        if body[:4] == PARQUET_MAGIC:
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(body))
        else:
            import pyarrow.csv as pacsv

            types = {"timestamp": pa.timestamp("ns", tz="UTC"), "double": pa.float64(), "long": pa.int64()}
            table = pacsv.read_csv(io.BytesIO(body), convert_options=pacsv.ConvertOptions(
                column_types={name: types[kind] for name, kind in columns.items()}, include_columns=list(columns),
                null_values=["", "null", "NaN"], strings_can_be_null=True, quoted_strings_can_be_null=True))
        return _frame(table, columns)
    except (pa.ArrowException, KeyError, ValueError) as exc:
        raise ExportError(f"/exp: unreadable answer ({type(exc).__name__}: {str(exc)[:120]})") from None


def _frame(table: object, columns: dict[str, str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    data = {}
    for name, kind in columns.items():
        col = table.column(name)  # type: ignore[attr-defined]
        if kind == "timestamp":
            if pa.types.is_timestamp(col.type) and col.type.tz is None:
                col = pc.assume_timezone(col, "UTC")
            ts = col.cast(pa.timestamp("ns", tz="UTC")).to_pandas()
            data[name] = pd.Series(ts.array, dtype="datetime64[ns, UTC]")
        elif kind == "double":
            data[name] = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        else:
            values = col.cast(pa.int64())
            mask = np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            ints = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
            mask |= ints == LONG_NULL
            data[name] = pd.arrays.IntegerArray(np.where(mask, 0, ints), mask)
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))  # type: ignore[attr-defined]
