"""``btlab health``: exit 0 only while the service's last heartbeat in bt_health is recent (compose healthcheck)."""

from __future__ import annotations

import pandas as pd

from btlab.store.duckdb import DuckDBStore
from btlab.store.health import HealthWriter
from cliproc import btlab_cli


def test_health_follows_the_last_heartbeat(tmp_path):
    path = tmp_path / "s.duckdb"
    now = pd.Timestamp.now(tz="UTC")
    with DuckDBStore(path) as st:
        HealthWriter(st, "ingest-live", now=lambda: now - pd.Timedelta("5min")).write({}, {})
    stale = btlab_cli("health", "--service", "ingest-live", "--max-age", "60s", store=path)
    assert stale.returncode == 1 and stale.stdout.strip() == f"ingest-live: no heartbeat in the last 60s in {path}"
    assert btlab_cli("health", "--max-age", "10m", store=path).returncode == 0  # 5 minutes old: within 10

    with DuckDBStore(path) as st:
        HealthWriter(st, "ingest-live").write({("reconnects", "binance"): 0}, {"ticks": 0})
    fresh = btlab_cli("health", "--service", "ingest-live", "--max-age", "60s", store=path)
    assert fresh.returncode == 0 and "ingest-live: last heartbeat" in fresh.stdout and "s ago" in fresh.stdout
    other = btlab_cli("health", "--service", "sink", store=path)
    assert other.returncode == 1 and "sink: no heartbeat" in other.stdout


def test_health_checks_its_arguments_and_never_creates_a_store(tmp_path):
    bad = btlab_cli("health", "--max-age", "7q", store=tmp_path / "s.duckdb")
    assert bad.returncode == 1 and "--max-age '7q'" in bad.stderr
    missing = btlab_cli("health", store=tmp_path / "none.duckdb")
    assert missing.returncode == 1 and "none.duckdb" in missing.stderr
    assert not (tmp_path / "none.duckdb").exists() and not (tmp_path / "s.duckdb").exists()
