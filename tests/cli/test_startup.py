"""Start-up: the CLI and ``import btlab`` load no heavy module; the store address is resolved without
pydantic-settings exactly as Settings resolves it. (Times are measured by benchmarks/bench_startup.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "numpy", "backtrader", "plotly", "ccxt", "confluent_kafka", "polars", "pydantic_settings")


def _loaded_after(code: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd,
                         env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("code", ["import btlab", "import btlab.cli.main", "from btlab import BtlabError",
                                  "import btlab.backtest.runs, btlab.cli.tables, btlab.store.duckdb",
                                  "from btlab.model import Timeframe"])
def test_no_heavy_module_at_import(code):
    assert _loaded_after(code) == []


def test_runs_list_runs_without_pandas(tmp_path):
    """The whole of ``btlab runs list`` (store opened, rows read, table printed) without pandas or numpy."""
    from btlab.store.duckdb import DuckDBStore

    DuckDBStore(tmp_path / "s.duckdb").close()  # an empty store (a missing one is an error: nothing to list)
    code = (
        "import sys\n"
        f"sys.argv = ['btlab', 'runs', 'list', '--store', {str(tmp_path / 's.duckdb')!r}]\n"
        "from btlab.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
    )
    assert _loaded_after(code) == []


def test_lazy_names_still_work():
    import btlab
    import btlab.model

    assert btlab.open_store is not None and btlab.Store.__name__ == "Store"
    assert btlab.__version__
    assert btlab.model.Timeframe.parse("1h").value == "1h"


@pytest.mark.parametrize(
    ("env", "dotenv"),
    [
        ({}, None),
        ({"BTLAB_STORE": "/data/x.duckdb"}, None),
        ({"BTLAB_HOME": "/data/home"}, None),
        ({"btlab_store": "/data/lower.duckdb"}, None),
        ({"BTLAB_STORE": ""}, None),
        ({}, "BTLAB_STORE=/from/dotenv.duckdb\n"),
        ({"BTLAB_STORE": "/env/wins.duckdb"}, "BTLAB_STORE=/from/dotenv.duckdb\n"),
        ({}, "BTLAB_HOME=/dotenv/home\n"),
    ],
)
def test_store_address_fast_path_agrees_with_settings(tmp_path, env, dotenv):
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BTLAB_")}
    clean.update(env, HOME=str(tmp_path / "home"), XDG_DATA_HOME="")
    code = ("from btlab.settings import store_address, get_settings\n"
            "print(store_address()); print(get_settings().store_address)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env=clean).stdout.splitlines()
    assert out[0] == out[1], out
    if dotenv is None:  # answered without loading pydantic-settings
        assert _loaded_after("from btlab.settings import store_address; store_address()", cwd=tmp_path,
                             env=clean) == []
