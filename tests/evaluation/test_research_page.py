"""research/run.py (the generator of docs/RESEARCH.md) on its orb study: the page states what the walk-forward
found -- the windows, the choices, IS vs OOS, buy and hold, and a verdict that follows the page's rule from the
windows' DSR and PBO (medians recomputed here with numpy)."""

from __future__ import annotations

import importlib.util
import re
import sys

import numpy as np
import pytest

from btlab.store.duckdb import DuckDBStore
from realdata import REPO


def _generator():
    spec = importlib.util.spec_from_file_location("btlab_research_run", REPO / "research" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    gen = _generator()
    study = next(s for s in gen.STUDIES if s.name == "orb")
    with DuckDBStore(tmp_path_factory.mktemp("research_page") / "r.duckdb") as st:
        gen.import_files(st, study.files)
        outcome = gen.run_study(study, st, workers=1)
    return gen, outcome, gen.render([outcome], outcome.seconds, 1)


def test_the_page_reports_the_walk_forward_it_ran(page):
    gen, o, text = page
    side = o.result.side_by_side
    row = next(line for line in text.splitlines() if line.startswith("| orb |"))
    assert f"{side.loc['sharpe', 'in_sample']:.2f} → {side.loc['sharpe', 'out_of_sample']:.2f}" in row
    assert f"{o.benchmark.sharpe:.2f} / " in row
    for w, params in zip(o.run.windows, o.result.windows["params"]):
        start = f"| {w.window.index + 1} | {' .. '.join(w.window.train)}"
        line = next(x for x in text.splitlines() if x.startswith(start))
        assert all(f"{k}={params[k]}" in line for k in ("range_minutes", "stop_pct", "take_profit_pct"))
    assert "rl_tilt" in text and "btlab walkforward --strategy orb" in text


def test_the_verdict_follows_the_rule(page):
    gen, o, text = page
    dsr = float(np.median(o.result.windows["dsr"].dropna()))
    pbo = float(np.median(o.result.windows["pbo"].dropna()))
    oos = o.result.side_by_side.loc["sharpe", "out_of_sample"]
    edge = oos > 0 and dsr >= gen.DSR_BAR and pbo < gen.PBO_BAR
    verdict = re.search(r"\*\*Verdict: (.*)\.\*\*", text)[1]
    assert verdict.startswith("an edge out of sample" if edge else "no edge out of sample")
    assert f"{dsr:.2f}" in verdict or edge
