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


def test_the_rl_study_chooses_the_best_seed_in_sample_and_deflates_it_over_the_seeds(tmp_path):
    """rl_tilt's study on the bundled constituents (2 seeds, a few PPO steps): the chosen seed is the best training
    reward, DSR and PBO are those of the seeds' daily in-sample active returns, and the page shows the row."""
    pytest.importorskip("stable_baselines3", reason="the rl extra (pip install 'btlab[rl]') is not installed")
    from dataclasses import replace

    from btlab.evaluation.walkforward import window_dsr, window_pbo
    from btlab.rl import evaluate

    gen = _generator()
    study = replace(gen.RL_STUDY, seeds=(0, 1), timesteps=64)
    with DuckDBStore(tmp_path / "rl.duckdb") as st:
        gen.import_files(st, study.files)
        o = gen.run_rl_study(study, st, tmp_path)
        assert o.chosen == int(o.seeds["reward"].idxmax())
        actives = {}
        for seed in study.seeds:  # the in-sample runs again, from the saved policies: the same active returns
            ins = evaluate(tmp_path / f"tilt-seed{seed}.zip", start=study.train[0], end=study.train[1],
                           cash=study.cash, allow_overlap=True, store=st, record=False).results["rl_tilt"]
            actives[seed] = gen._rl_figures(ins, "^GSPC")[1]
    trials = np.column_stack([actives[s].to_numpy() for s in study.seeds])
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1) * np.sqrt(252)
    assert o.dsr == pytest.approx(window_dsr(actives[o.chosen].to_numpy(), sharpes, n_trials=2, periods_per_year=252))
    assert o.pbo == pytest.approx(window_pbo(trials))
    assert 0 <= o.dsr <= 1 and 0 <= o.pbo <= 1
    text = gen.render([], o.seconds, 1, o)
    row = next(line for line in text.splitlines() if line.startswith("| rl_tilt |"))
    r = o.seeds.loc[o.chosen]
    assert f"{r['is_sharpe']:.2f} → {r['oos_sharpe']:.2f}" in row and f"| {o.dsr:.2f} | {o.pbo:.2f} |" in row
    assert f"| {o.chosen} (chosen) |" in text and "| untilted basket |" in text
    verdict = re.search(r"\*\*Verdict: (.*)\.\*\*", text)[1]
    assert verdict.startswith(("no edge out of sample", "an edge out of sample"))
