"""``btlab dashboards build``: writes the generated Grafana files; ``--check`` names the ones that differ."""

from __future__ import annotations

import json

from cliproc import btlab_cli
from realdata import REPO


def test_build_writes_what_is_committed_and_check_names_a_hand_edit(tmp_path):
    out = tmp_path / "grafana"
    done = btlab_cli("dashboards", "build", "--out", str(out))
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(out) for p in out.rglob("*.json"))
    committed = REPO / "deploy" / "grafana"
    assert len(written) >= 5 and all((out / p).read_text() == (committed / p).read_text() for p in written)
    assert f"wrote {out / 'dashboards' / 'btlab-run.json'}" in done.stdout

    ok = btlab_cli("dashboards", "build", "--check", "--out", str(out))
    assert ok.returncode == 0 and "up to date" in ok.stdout, ok.stdout + ok.stderr

    edited = out / "dashboards" / "btlab-runs.json"
    model = json.loads(edited.read_text())
    model["title"] = "edited by hand"
    edited.write_text(json.dumps(model))
    (out / "dashboards" / "btlab-health.json").unlink()
    bad = btlab_cli("dashboards", "build", "--check", "--out", str(out))
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert f"{out / 'dashboards' / 'btlab-runs.json'}: differs from the generated file" in lines
    assert f"{out / 'dashboards' / 'btlab-health.json'}: missing" in lines
    assert sum(".json:" in line for line in lines) == 2 and "2 file(s) out of date" in bad.stdout
    assert json.loads(edited.read_text())["title"] == "edited by hand"  # --check wrote nothing


def test_the_committed_files_are_up_to_date():
    done = btlab_cli("dashboards", "build", "--check", "--out", str(REPO / "deploy" / "grafana"))
    assert done.returncode == 0, done.stdout + done.stderr
