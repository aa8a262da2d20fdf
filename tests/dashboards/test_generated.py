"""The committed Grafana files are exactly what btlab.dashboards generates, and Grafana's provisioning finds them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from realdata import REPO

from btlab.dashboards import REGISTRY, build, dashboard_json, render

GRAFANA = REPO / "deploy" / "grafana"


def test_committed_files_equal_the_generated_ones():
    stale = [rel for rel, text in render().items()
             if not (GRAFANA / rel).is_file() or (GRAFANA / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"regenerate with `python -m btlab.dashboards` (then commit): {stale}"
    committed = {p.relative_to(GRAFANA).as_posix() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == {rel for rel in render() if rel.startswith("dashboards/")}, "a dashboard file nobody generates"


def test_check_mode_fails_on_a_hand_edit(tmp_path):
    """``python -m btlab.dashboards --check`` passes on fresh files and fails, naming the file, after a hand edit."""
    out = tmp_path / "grafana"
    build(out)
    cmd = [sys.executable, "-m", "btlab.dashboards", str(out), "--check"]
    assert subprocess.run(cmd, capture_output=True, text=True).returncode == 0
    edited = out / "dashboards" / "btlab-run.json"
    board = json.loads(edited.read_text())
    board["panels"][0]["title"] = "edited in the UI"
    edited.write_text(json.dumps(board, indent=2, sort_keys=True) + "\n")
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 1 and "btlab-run.json" in done.stderr, done.stderr


def test_generation_is_deterministic():
    assert render() == render()


def test_provisioning_loads_the_generated_files():
    """The dashboard provider reads the folder docker-compose mounts deploy/grafana/dashboards at; the alerting
    files sit in the provisioning folder Grafana reads (provisioning/alerting); every target uses btlab-questdb."""
    compose = (REPO / "deploy" / "docker-compose.yml").read_text()
    provider = (GRAFANA / "provisioning" / "dashboards" / "btlab.yaml").read_text()
    mount = re.search(r"- \./grafana/dashboards:(\S+?):ro", compose)
    assert mount and re.search(rf"path: {re.escape(mount.group(1))}\s", provider)
    assert "- ./grafana/provisioning:/etc/grafana/provisioning:ro" in compose
    assert "uid: btlab-questdb" in (GRAFANA / "provisioning" / "datasources" / "questdb.yaml").read_text()
    assert {rel.split("/")[1] for rel in render() if rel.startswith("provisioning/")} == {"alerting"}
    for uid in REGISTRY:
        board = dashboard_json(uid)
        assert board["uid"] == uid and board["timezone"] == "utc"
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        for panel in (p for p in board["panels"] if p["type"] != "row"):  # a row only groups panels
            assert panel["datasource"] == {"type": "questdb-questdb-datasource", "uid": "btlab-questdb"}, panel
            assert panel.get("description"), f"{uid}: panel {panel['title']!r} has no description"


def test_dashboards_link_to_each_other():
    """Each dashboard links to the btlab folder's dashboards; the runs table opens a run with its data range."""
    for uid in REGISTRY:
        links = dashboard_json(uid)["links"]
        assert any(link["type"] == "dashboards" and link["tags"] == ["btlab"] for link in links), uid
    runs = dashboard_json("btlab-runs")
    overrides = runs["panels"][0]["fieldConfig"]["overrides"]
    url = next(p["value"][0]["url"] for o in overrides if o["matcher"]["options"] == "run_id"
               for p in o["properties"] if p["id"] == "links")
    assert url.startswith("/d/btlab-run?var-run_id=${__data.fields.run_id}&from=${__data.fields.from_ms}")
    run = dashboard_json("btlab-run")
    assert run["templating"]["list"][0]["name"] == "run_id" and "ORDER BY ts DESC" in \
        run["templating"]["list"][0]["query"]
    assert run["refresh"] == "10s"


def test_alert_rules_cover_the_issue():
    rules = json.loads((GRAFANA / "provisioning" / "alerting" / "btlab-alert-rules.json").read_text())
    titles = {r["title"] for g in rules["groups"] for r in g["rules"]}
    assert titles == {"btlab: ingest lag", "btlab: no heartbeat", "btlab: backtest run failed",
                      "btlab: late or quarantined trades"}
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["condition"] == "B" and [d["refId"] for d in rule["data"]] == ["A", "B"]
        assert rule["data"][0]["datasourceUid"] == "btlab-questdb"
        assert rule["data"][1]["model"]["type"] == "threshold"
        assert rule["labels"] == {"source": "btlab"} and rule["annotations"]["summary"]


def test_every_health_metric_has_a_pipeline_panel():
    """Each metric of the bt_health contract (ingest, sink, replay figures) is drawn on the pipeline board."""
    from btlab.store.schema import HEALTH_METRICS

    board = dashboard_json("btlab-health")
    queries = [t["rawSql"] for p in board["panels"] for t in p.get("targets", [])]
    for metric in HEALTH_METRICS:
        assert any(f"metric = '{metric}'" in q for q in queries), f"no panel reads bt_health metric {metric!r}"
    titles = [p["title"] for p in board["panels"]]
    assert titles.index("Streams") < titles.index("Consumer lag per topic and group (records)")


def test_sweep_board_reads_every_metric_it_offers_and_links_runs():
    """The sweep board: its metric variable's options are each a bt_runs column the CASE reads (higher is better),
    x/y list the sweep's parameters, and the top table links to the run dashboard (the run and its -full re-run)."""
    from btlab.dashboards.boards import RUN_UID, SWEEP_UID
    from btlab.store.grafana_sql import SWEEP_METRIC
    from btlab.store.schema import TABLES
    from btlab.sweep.top import LOWER_IS_BETTER

    board = dashboard_json(SWEEP_UID)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["sweep_id", "metric", "x", "y"]
    offered = variables["metric"]["query"].split(",")
    assert offered[0] == "sharpe" and not set(offered) & LOWER_IS_BETTER
    for metric in offered:
        assert metric in TABLES["bt_runs"].column_names and f"WHEN '{metric}' THEN {metric}" in SWEEP_METRIC
    assert "'[0]'" in variables["x"]["query"].split("UNION ALL")[0]
    assert "'[1]'" in variables["y"]["query"].split("UNION ALL")[0]
    panels = {p["title"]: p for p in board["panels"]}
    assert list(panels) == ["Progress", "$metric over $x and $y", "Distribution of $metric",
                            "Top combinations by $metric", "Failed combinations"]
    heat = panels["$metric over $x and $y"]["targets"][0]["rawSql"]
    assert "json_extract(cast(params AS varchar), '.$x')::double" in heat and "max(metric)" in heat
    links = [link["url"] for o in panels["Top combinations by $metric"]["fieldConfig"]["overrides"]
             if o["matcher"]["options"] == "run_id" for p in o["properties"] for link in p["value"]]
    assert links[0].startswith(f"/d/{RUN_UID}?var-run_id=${{__data.fields.run_id}}&")
    assert links[1].startswith(f"/d/{RUN_UID}?var-run_id=${{__data.fields.run_id}}-full&")


def test_run_board_draws_the_state_machines_as_a_state_timeline():
    """The run board's states panel: a Grafana state-timeline over bt_states of the chosen run, split into one lane
    per machine (partition by values on ``machine``, the lane named by that label), regimes coloured. Its SQL is
    checked by QuestDB's parser with every other panel (test_panel_sql.py) and run on a real regime_fsm run in
    tests/backtest/test_regime_fsm.py."""
    from btlab.dashboards.boards import STATES_SQL

    board = dashboard_json("btlab-run")
    panel = next(p for p in board["panels"] if p["title"] == "State machines")
    assert panel["type"] == "state-timeline"
    assert [t["rawSql"] for t in panel["targets"]] == [STATES_SQL] and panel["targets"][0]["format"] == 1
    assert "FROM bt_states WHERE run_id = '$run_id'" in STATES_SQL and "$__timeFilter" not in STATES_SQL
    assert panel["transformations"] == [{"id": "partitionByValues",
                                         "options": {"fields": ["machine"], "keepFields": False}}]
    assert panel["fieldConfig"]["defaults"]["displayName"] == "${__field.labels.machine}"
    colours = panel["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert {k: v["color"] for k, v in colours.items()} == {"bullish": "green", "neutral": "yellow", "bearish": "red"}
    titles = [p["title"] for p in board["panels"]]
    assert titles.index("Price with entries and exits") + 1 == titles.index("State machines")
