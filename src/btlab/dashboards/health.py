"""The ``bt_health`` table the pipeline-health dashboard and the alerts read.

Its layout and metric names are part of the store's schema contract (:data:`btlab.store.schema.BT_HEALTH`,
:data:`~btlab.store.schema.HEALTH_METRICS`); services write it with :class:`btlab.store.health.HealthWriter`.
Re-exported here for the dashboard code.
"""

from __future__ import annotations

from btlab.store.schema import BT_HEALTH, HEALTH_METRICS, HEALTH_SERVICES

__all__ = ["BT_HEALTH", "HEALTH_METRICS", "HEALTH_SERVICES"]
