"""The ``bt_health`` table: pipeline figures btlab services write so that Grafana only reads the store.

Layout (to be added to :mod:`btlab.store.schema` and written by ``ingest live`` and later services):

========  =========  ===========================================================================================
column    kind       meaning
========  =========  ===========================================================================================
ts        timestamp  end of the reporting interval (UTC, designated timestamp)
service   symbol     the btlab service writing the row: ``ingest-live`` today; ``replay``, ``sink``, workers later
metric    symbol     one of :data:`HEALTH_METRICS`
subject   symbol     what the figure is about: a table name (``ohlcv``) for ``rows_per_s``, an instrument
                     ``exchange:symbol`` for trade figures, the exchange id for ``reconnects``, ``''`` for
                     ``heartbeat``
value     double     the figure (unit in :data:`HEALTH_METRICS`)
========  =========  ===========================================================================================

Key (dedup): ``ts, service, metric, subject``; QuestDB partition by DAY. Counts are *per interval* (not cumulative),
so a restart never makes them jump and ``sum(value)`` over any time range is the count in that range. A service
writes one ``heartbeat`` row (value 1) per interval even when nothing else happened, so "last heartbeat" is
``max(ts)`` of its ``heartbeat`` rows. The interval is the writer's choice (``ingest live``: every 10 s is intended).
"""

from __future__ import annotations

from btlab.store.schema import Column, Table

#: ``bt_health`` as a :class:`~btlab.store.schema.Table` (same form as the store's tables, for the lead to add to
#: ``TABLES``); the dashboards' SQL is checked against it in tests/dashboards.
BT_HEALTH = Table(
    "bt_health",
    (
        Column("ts", "timestamp"),
        Column("service", "symbol"),
        Column("metric", "symbol"),
        Column("subject", "symbol"),
        Column("value", "double"),
    ),
    key=("ts", "service", "metric", "subject"),
    partition_by="DAY",
)

#: ``metric`` values of ``bt_health``: name -> (unit, meaning). The pipeline dashboard and the alerts read these.
HEALTH_METRICS: dict[str, tuple[str, str]] = {
    "rows_per_s": ("rows/s", "rows written to the table named in subject, averaged over the interval"),
    "late_trades": ("count", "trades that arrived after their bar was final (not merged), in the interval"),
    "quarantined_trades": ("count", "malformed or impossible trades set aside, in the interval"),
    "trade_id_gaps_filled": ("count", "trades fetched over REST to fill trade-id gaps, in the interval"),
    "reconnects": ("count", "stream reconnections (dropped or silent connections), in the interval"),
    "consumer_lag": ("records", "records behind the end of the topic, at the end of the interval"),
    "dead_letters": ("count", "records sent to the dead-letter topic, in the interval"),
    "heartbeat": ("1", "one row per interval while the service runs"),
}

#: Services that write ``bt_health`` today (others add themselves when they exist).
HEALTH_SERVICES: tuple[str, ...] = ("ingest-live",)
