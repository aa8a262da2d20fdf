"""``btlab health``: is a btlab service alive? (its last heartbeat in ``bt_health``; the compose healthcheck)."""

from __future__ import annotations

import typer

from btlab.cli.common import MaxAgeOption, ServiceOption, StoreOption, console, friendly_errors, open_store_cli


@friendly_errors
def health(service: ServiceOption = "ingest-live", max_age: MaxAgeOption = "60s", store: StoreOption = None) -> None:
    """Exit 0 when SERVICE wrote a heartbeat to bt_health within --max-age, else print why and exit 1.

    btlab services (ingest live today) write a heartbeat every --health-interval seconds; the compose stack uses
    this command as the healthcheck of those services, and the pipeline-health dashboard shows the same rows.

    \b
    Example:
      btlab health --service ingest-live --max-age 60s
    """
    import pandas as pd

    from btlab.model.timebounds import parse_duration

    age = parse_duration(max_age, what="--max-age")
    now = pd.Timestamp.now(tz="UTC")
    with open_store_cli(store, read_only=True) as st:
        beats = st.read_health(service=service, metric="heartbeat", start=now - age)
        if beats.empty:
            console.print(f"{service}: no heartbeat in the last {max_age} in {st.address}", highlight=False)
            raise typer.Exit(1)
        last = beats["ts"].max()
        console.print(f"{service}: last heartbeat {last:%Y-%m-%d %H:%M:%S} UTC "
                      f"({(now - last).total_seconds():.0f} s ago)", highlight=False)
