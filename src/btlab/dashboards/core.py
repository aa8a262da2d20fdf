"""The building blocks every btlab dashboard uses: the QuestDB data source, SQL targets, variables, the registry.

Panels query QuestDB through Grafana's QuestDB data source plugin (``questdb-questdb-datasource``), provisioned
with the fixed uid ``btlab-questdb`` (deploy/grafana/provisioning/datasources/questdb.yaml). A target is raw SQL
(``queryType: sql``) in QuestDB's dialect with the plugin's macros, expanded by the plugin's backend:

- ``$__timeFilter(ts)`` -> ``ts >= cast(<from µs> as timestamp) AND ts <= cast(<to µs> as timestamp)``
- ``$__fromTime`` / ``$__toTime`` -> ``cast(<µs> as timestamp)``
- ``$__sampleByInterval`` -> Grafana's interval as a SAMPLE BY unit (``1d``, ``5h``, ``20s``, ``1T``)
- ``$__conditionalAll(condition, $var)`` -> ``condition``, or ``1=1`` when the variable selects All (front end)

The SQL itself lives in :mod:`btlab.store.grafana_sql` (every SQL statement of btlab is in ``store/``); the
dashboards only name it. Values reach the SQL only through Grafana variables: a single-valued variable is
substituted as its raw text (so the SQL quotes it: ``'$run_id'``), a multi-valued one as ``'a','b'`` (so
``IN ($symbol)``).

To add a panel, add its query to :mod:`btlab.store.grafana_sql` (tests/dashboards/test_dashboard_sql.py fails on a
query no board uses, tests/test_sql_in_store.py on SQL written anywhere else).

To add a dashboard, write a function returning a :class:`~grafana_foundation_sdk.builders.dashboard.Dashboard`
builder and decorate it with :func:`dashboard`; :func:`btlab.dashboards.build` writes every registered one.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gdash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as mdash
from grafana_foundation_sdk.models.common import DataSourceRef

#: Type id of Grafana's QuestDB data source plugin and the uid btlab provisions it under.
QUESTDB_PLUGIN = "questdb-questdb-datasource"
QUESTDB_UID = "btlab-questdb"
QUESTDB = DataSourceRef(type_val=QUESTDB_PLUGIN, uid=QUESTDB_UID)

#: Folder (uid) the dashboards are provisioned into (provisioning/dashboards/btlab.yaml) and alerts live in.
FOLDER_UID = "btlab"
FOLDER_TITLE = "btlab"


class Format(IntEnum):
    """The plugin's result formats (``format`` of a target)."""

    TIMESERIES = 0
    TABLE = 1


class SQLQuery(cogvariants.Dataquery):
    """A QuestDB plugin target: raw SQL (``queryType: sql``) with the plugin's ``format``."""

    def __init__(self, ref_id: str, sql: str, fmt: Format) -> None:
        self.ref_id = ref_id
        self.sql = sql
        self.format = fmt

    def to_json(self) -> dict[str, Any]:
        """The target as the plugin stores it in dashboard JSON."""
        return {
            "refId": self.ref_id,
            "datasource": QUESTDB.to_json(),
            "queryType": "sql",
            "rawSql": self.sql,
            "format": int(self.format),
        }


class SQL(cogbuilder.Builder[SQLQuery]):
    """Builder of a :class:`SQLQuery` (the SDK has none for the QuestDB plugin).

    ``SQL(sql)`` is a time-series target; ``SQL(sql, table=True)`` a table target (any columns).
    """

    def __init__(self, sql: str, *, table: bool = False, ref_id: str = "A") -> None:
        self._query = SQLQuery(ref_id, " ".join(sql.split()), Format.TABLE if table else Format.TIMESERIES)

    def build(self) -> SQLQuery:
        return self._query


def query_variable(name: str, sql: str, *, label: str | None = None, multi: bool = False,
                   include_all: bool = False, hide: bool = False, description: str | None = None,
                   refresh_on_time: bool = False) -> gdash.QueryVariable:
    """A variable filled by QuestDB: the first column is the value, an optional second column the text shown.

    Options keep the order the SQL gives (no sorting), so Grafana's default -- the first option -- is the first
    row (e.g. the newest run). ``refresh_on_time`` re-runs the query when the time range changes (else on load).
    """
    var = (gdash.QueryVariable(name)
           .label(label or name)
           .datasource(QUESTDB)
           .query(" ".join(sql.split()))
           .refresh(mdash.VariableRefresh.ON_TIME_RANGE_CHANGED if refresh_on_time
                    else mdash.VariableRefresh.ON_DASHBOARD_LOAD)
           .sort(mdash.VariableSort.DISABLED)
           .multi(multi)
           .include_all(include_all))
    if hide:
        var = var.hide(mdash.VariableHide.HIDE_VARIABLE)
    if description:
        var = var.description(description)
    return var


def dashboard_link(title: str, uid: str, *, keep_vars: bool = False) -> gdash.DashboardLink:
    """A link in the dashboard's header to another btlab dashboard (keeps the time range)."""
    return (gdash.DashboardLink(title).type(mdash.DashboardLinkType.LINK).url(f"/d/{uid}")
            .keep_time(True).include_vars(keep_vars).target_blank(False).icon("dashboard"))


def new_dashboard(uid: str, title: str, description: str) -> gdash.Dashboard:
    """A btlab dashboard: UTC, read-only (provisioned), tagged ``btlab``, linking to every other btlab dashboard."""
    board = (gdash.Dashboard(title).uid(uid).description(description).tags(["btlab"]).timezone("utc")
             .readonly().tooltip(mdash.DashboardCursorSync.CROSSHAIR)
             .link(gdash.DashboardLink("btlab").type(mdash.DashboardLinkType.DASHBOARDS).tags(["btlab"])
                   .as_dropdown(True).keep_time(False).include_vars(False)))
    return board


#: ``uid -> builder function`` of every dashboard, in registration order.
REGISTRY: dict[str, Callable[[], gdash.Dashboard]] = {}


def dashboard(uid: str) -> Callable[[Callable[[], gdash.Dashboard]], Callable[[], gdash.Dashboard]]:
    """Register a dashboard builder under ``uid`` (the file is ``<uid>.json``). Raises ``ValueError`` on a reuse."""

    def register(fn: Callable[[], gdash.Dashboard]) -> Callable[[], gdash.Dashboard]:
        if uid in REGISTRY:
            raise ValueError(f"dashboard uid {uid!r} registered twice")
        REGISTRY[uid] = fn
        return fn

    return register


def field_override(name: str, **props: Any) -> tuple[str, list[mdash.DynamicConfigValue]]:
    """``(field name, properties)`` for ``override_by_name``: ``custom_drawStyle="points"`` -> ``custom.drawStyle``."""
    return name, [mdash.DynamicConfigValue(id_val=k.replace("_", "."), value=v) for k, v in props.items()]
