"""Grafana dashboards and alert rules as code, generated into ``deploy/grafana/``.

``build(out_dir)`` writes every registered dashboard (:data:`REGISTRY`, one function per dashboard in
:mod:`btlab.dashboards.boards`) to ``out_dir/dashboards/<uid>.json`` and the alerting provisioning files to
``out_dir/provisioning/alerting/``; ``python -m btlab.dashboards [OUT_DIR]`` does the same (default
``deploy/grafana`` of the repository). The ``bt_health`` table the pipeline dashboard reads is part of the store's
schema (:data:`btlab.store.schema.BT_HEALTH`).

Importing this package imports grafana-foundation-sdk; the CLI should import it only in the command that builds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from btlab.dashboards import boards as _boards  # noqa: F401  (registers the dashboards)
from btlab.dashboards.alerts import RULES, alert_rules_file
from btlab.dashboards.core import REGISTRY, SQL, dashboard, query_variable
from btlab.dashboards.health import BT_HEALTH, HEALTH_METRICS

__all__ = ["BT_HEALTH", "HEALTH_METRICS", "REGISTRY", "RULES", "SQL", "build", "dashboard", "dashboard_json",
           "query_variable", "render", "stale"]

ALERT_RULES_FILE = "btlab-alert-rules.json"


def dashboard_json(uid: str) -> dict[str, Any]:
    """The dashboard ``uid`` as Grafana's dashboard JSON (panel ids numbered 1.. in order). ``KeyError`` if unknown."""
    model = REGISTRY[uid]().build().to_json()
    out = json.loads(json.dumps(model, default=lambda o: o.to_json()))
    for number, panel in enumerate(out.get("panels", []), start=1):
        panel["id"] = number
    return out


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file: ``{path relative to deploy/grafana: text}`` (deterministic: same code, same text)."""
    files = {f"dashboards/{uid}.json": _dump(dashboard_json(uid)) for uid in REGISTRY}
    files[f"provisioning/alerting/{ALERT_RULES_FILE}"] = _dump(alert_rules_file())
    return files


def stale(out_dir: str | Path) -> list[Path]:
    """The generated files under ``out_dir`` that are missing or differ from :func:`render` (e.g. after a hand
    edit), in :func:`render`'s order; empty when every file matches. Writes nothing."""
    root = Path(out_dir)
    return [root / rel for rel, text in render().items()
            if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text]


def build(out_dir: str | Path) -> list[Path]:
    """Write :func:`render`'s files under ``out_dir`` (normally ``deploy/grafana``); returns the paths written.

    Files are replaced whole; other files are left alone. Raises ``OSError`` when ``out_dir`` cannot be written.
    """
    root = Path(out_dir)
    written = []
    for rel, text in render().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
