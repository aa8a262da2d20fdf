"""Grafana alert rules for btlab, provisioned from files (deploy/grafana/provisioning/alerting/).

Rules query QuestDB through the provisioned data source (their SQL: ``ALERT_*`` of :mod:`btlab.store.grafana_sql`;
alert queries run in Grafana's backend: the plugin's time macros are expanded there, dashboard variables do not
exist, so the SQL names no variable). Each rule's
query returns one row per instance (string columns become labels, one numeric column the value) and a threshold
expression fires on it. No contact point is provisioned: notifications follow Grafana's default notification
policy to its built-in contact point ``grafana-default-email`` (which sends nothing until SMTP and an address are
configured); every firing alert is listed under Alerting > Alert rules either way. deploy/README.md shows how to
add a contact point and route btlab's alerts (label ``source=btlab``) to it.

Thresholds (seconds or counts) are module constants so that a deployment can change them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import alerting as galert

from btlab.dashboards.boards import HEALTH_UID, MARKET_UID, RUNS_UID
from btlab.dashboards.core import FOLDER_TITLE, QUESTDB_UID, SQL
from btlab.store import grafana_sql as q

#: Bars whose close is older than this (seconds) while the series is live fire "ingest lag".
INGEST_LAG_SECONDS = 120
#: A service without a heartbeat row for this long (seconds) fires "no heartbeat".
HEARTBEAT_SECONDS = 60
#: Late + quarantined trades per instrument over the last 5 minutes above this fire "bad trades".
BAD_TRADES_PER_5M = 50

RULE_GROUP = "btlab"
EVALUATE_EVERY = "1m"


@dataclass(frozen=True)
class AlertRule:
    """One rule: ``sql`` (QuestDB, table format) fires when its value column is ``> threshold``."""

    uid: str
    title: str
    sql: str
    threshold: float
    summary: str
    dashboard_uid: str
    pending: str = "1m"
    no_data: str = "OK"


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "btlab-ingest-lag", "btlab: ingest lag",
        q.ALERT_INGEST_LAG,
        INGEST_LAG_SECONDS,
        f"Series {{{{ $labels.series }}}}: last bar closed {{{{ $values.A }}}} s ago (> {INGEST_LAG_SECONDS} s).",
        MARKET_UID),
    AlertRule(
        "btlab-no-heartbeat", "btlab: no heartbeat",
        q.ALERT_NO_HEARTBEAT,
        HEARTBEAT_SECONDS,
        f"Service {{{{ $labels.service }}}} last wrote a heartbeat {{{{ $values.A }}}} s ago "
        f"(> {HEARTBEAT_SECONDS} s): down or unable to write.",
        HEALTH_UID),
    AlertRule(
        "btlab-run-failed", "btlab: backtest run failed",
        q.ALERT_RUN_FAILED,
        0,
        "Run {{ $labels.run_id }} ({{ $labels.strategy }}) failed in the last hour; see its error on the Runs "
        "dashboard.",
        RUNS_UID, pending="0s"),
    AlertRule(
        "btlab-bad-trades", "btlab: late or quarantined trades",
        q.ALERT_BAD_TRADES,
        BAD_TRADES_PER_5M,
        f"{{{{ $labels.subject }}}} ({{{{ $labels.service }}}}): {{{{ $values.A }}}} late or quarantined trades in "
        f"5 minutes (> {BAD_TRADES_PER_5M}).",
        HEALTH_UID),
)


def _rule(rule: AlertRule) -> dict[str, Any]:
    query = (galert.Query("A").datasource_uid(QUESTDB_UID).model(SQL(rule.sql, table=True))
             .relative_time_range(_relative(600)))
    threshold = {
        "refId": "B", "type": "threshold", "expression": "A",
        "datasource": {"type": "__expr__", "uid": "__expr__"},
        "conditions": [{"evaluator": {"type": "gt", "params": [rule.threshold]}}],
    }
    built = (galert.Rule(rule.title).uid(rule.uid).condition("B").with_query(query)
             .for_val(rule.pending).no_data_state(rule.no_data).exec_err_state("Error")
             .annotations({"summary": rule.summary, "__dashboardUid__": rule.dashboard_uid})
             .labels({"source": "btlab"}).build())
    out = built.to_json()
    data = [_plain(d) for d in out["data"]]
    data.append({"refId": "B", "datasourceUid": "__expr__", "relativeTimeRange": {"from": 0, "to": 0},
                 "model": threshold})
    # The file-provisioning layout of a rule (Grafana docs, "Provision alert rules"): only its documented keys.
    return {"uid": out["uid"], "title": out["title"], "condition": "B", "data": data,
            "noDataState": out["noDataState"], "execErrState": out["execErrState"], "for": out["for"],
            "annotations": out["annotations"], "labels": out["labels"], "isPaused": False}


def _relative(seconds: int):
    from grafana_foundation_sdk.models import alerting as malert

    return malert.RelativeTimeRange(from_val=seconds, to=0)


def _plain(obj: Any) -> Any:
    """Model objects -> plain JSON values (the SDK's models serialize through ``to_json``)."""
    if hasattr(obj, "to_json"):
        return _plain(obj.to_json())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def alert_rules_file() -> dict[str, Any]:
    """The alert rules provisioning file (``apiVersion: 1``, one group ``btlab`` in the folder btlab)."""
    return {"apiVersion": 1, "groups": [{
        "orgId": 1, "name": RULE_GROUP, "folder": FOLDER_TITLE, "interval": EVALUATE_EVERY,
        "rules": [_rule(r) for r in RULES]}]}
