"""``btlab dashboards ...``: the Grafana dashboards and alert rules generated from code (:mod:`btlab.dashboards`)."""

from __future__ import annotations

from pathlib import Path

import typer

from btlab.cli.common import APP_SETTINGS, BtlabGroup, CheckOption, GrafanaDirOption, console, friendly_errors

dashboards_app = typer.Typer(help="Generate the Grafana dashboards and alert rules (dashboards as code).",
                             no_args_is_help=True, cls=BtlabGroup, **APP_SETTINGS)


@dashboards_app.command("build")
@friendly_errors
def build(out: GrafanaDirOption = Path("deploy/grafana"), check: CheckOption = False) -> None:
    """Write the run, runs, market-data and pipeline-health dashboards and the alert rules as Grafana JSON.

    The files are generated from btlab.dashboards (grafana-foundation-sdk): edit the code, not the JSON, and run
    this again; Grafana picks the files up through provisioning. --check compares instead (for CI or a review).

    \b
    Example:
      btlab dashboards build --out deploy/grafana
      btlab dashboards build --check
    """
    from btlab.dashboards import build as write_files
    from btlab.dashboards import stale

    if check:
        differ = stale(out)
        for path in differ:
            console.print(f"{path}: {'differs from the generated file' if path.is_file() else 'missing'}",
                          highlight=False)
        if differ:
            console.print(f"{len(differ)} file(s) out of date: run btlab dashboards build --out {out}",
                          highlight=False)
            raise typer.Exit(1)
        console.print(f"{out}: every generated file is up to date", highlight=False)
        return
    for path in write_files(out):
        console.print(f"wrote {path}", highlight=False)
