"""Grid expansion, sampling, constraints and combination ids (btlab.sweep.grid), on the real parameter spaces of the
bundled sma_cross and orb strategies."""

from __future__ import annotations

import pytest

from btlab.backtest.registry import resolve_strategy, strategy_params
from btlab.errors import InvalidArgumentError
from btlab.sweep.grid import Grid, combo_id, make_grid, parse_spec


def _known(name: str) -> list[str]:
    return list(strategy_params(resolve_strategy(name)[1]))


def test_inline_range_list_and_constant_specs():
    assert parse_spec("fast=5:20:5") == ("fast", {"range": [5, 20, 5]})
    assert parse_spec("slow=20,30,60") == ("slow", [20, 30, 60])
    assert parse_spec("stop_pct=0.5") == ("stop_pct", 0.5)
    assert parse_spec("calendar=XNYS") == ("calendar", "XNYS")
    grid = Grid.from_specs(["fast=5:20:5", "slow=20,30"], constraints=["fast < slow"])
    grid.check_params(_known("sma_cross"), "sma_cross")
    # product order (last parameter fastest), constraint filtered: fast 20 / slow 20 is dropped
    assert grid.combinations() == [
        {"fast": 5, "slow": 20}, {"fast": 5, "slow": 30}, {"fast": 10, "slow": 20}, {"fast": 10, "slow": 30},
        {"fast": 15, "slow": 20}, {"fast": 15, "slow": 30}, {"fast": 20, "slow": 30},
    ]
    assert grid.product_size == 8 and len(grid) == 7
    assert Grid.from_mapping(grid.spec).combinations() == grid.combinations()  # the stored spec rebuilds it


def test_float_range_is_inclusive_and_clean():
    grid = Grid.from_specs(["stop_pct=0.1:0.5:0.1", "range_minutes=5:60:5"])
    assert grid.values["stop_pct"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert grid.values["range_minutes"] == list(range(5, 61, 5))
    grid.check_params(_known("orb"), "orb")


def test_yaml_file_with_constraints_sampling_and_inline_override(tmp_path):
    path = tmp_path / "orb.yaml"
    path.write_text(
        "params:\n"
        "  range_minutes: {range: [5, 60, 5]}\n"
        "  stop_pct: [0.25, 0.5, 1.0]\n"
        "  take_profit_pct: [0.5, 1.0, 2.0]\n"
        "  flat_at_end: true\n"
        "constraints: ['stop_pct <= take_profit_pct', 'range_minutes * 2 <= 100']\n"
        "sample: 20\n"
        "seed: 7\n"
    )
    grid = Grid.from_yaml(path)
    grid.check_params(_known("orb"), "orb")
    full = Grid.from_mapping({k: v for k, v in grid.spec.items() if k not in ("sample", "seed")}).combinations()
    assert len(full) == 10 * 8  # range_minutes <= 50: 10 values; stop <= take profit: 8 of 9 pairs
    assert all(c["stop_pct"] <= c["take_profit_pct"] and c["flat_at_end"] is True for c in full)
    picked = grid.combinations()
    assert len(picked) == 20 and len({tuple(c.values()) for c in picked}) == 20  # without replacement
    assert all(c in full for c in picked)
    assert [full.index(c) for c in picked] == sorted(full.index(c) for c in picked)  # deterministic order
    assert Grid.from_yaml(path).combinations() == picked  # same seed, same sample
    other = Grid.from_mapping({**grid.spec, "seed": 8}).combinations()
    assert other != picked
    narrowed = Grid.from_yaml(path, extra=["range_minutes=15"])
    assert {c["range_minutes"] for c in narrowed.combinations()} == {15} and len(narrowed) == 8
    assert make_grid(str(path), ["stop_pct=0.5"]).values["stop_pct"] == [0.5]


@pytest.mark.parametrize("specs, match", [
    (["fast=5:20:0"], "step must be > 0"),
    (["fast=20:5:5"], "below start"),
    (["fast=5:x:5"], "three numbers"),
    (["fast"], "expected name="),
    (["fast=1,,2"], "empty item"),
    (["fast=5:20:5", "fast=3"], "given twice"),
    (["fast=1:3000000:1"], "cap"),
])
def test_bad_inline_specs_name_the_spec(specs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        Grid.from_specs(specs)


@pytest.mark.parametrize("constraint, match", [
    ("fast < slowest", "unknown name 'slowest'"),
    ("__import__('os').system('true') == 0", "not allowed"),
    ("fast.real < slow", "not allowed"),
    ("fast ** 2 < slow", "not allowed"),
    ("fast <", "not an expression"),
    ("fast + slow", "must be a comparison"),
    ("fast < 'a'", "not a number"),
])
def test_constraints_are_whitelisted_and_named(constraint, match):
    with pytest.raises(InvalidArgumentError, match=f"constraint .*{match}"):
        Grid.from_specs(["fast=5:20:5", "slow=20,30"], constraints=[constraint])


def test_boolean_and_chained_constraints():
    grid = Grid.from_specs(["fast=5:30:5", "slow=20,30,60"],
                           constraints=["5 < fast < slow and not slow == 60", "fast * 2 <= slow or fast == 25"])
    assert grid.combinations() == [{"fast": 10, "slow": 20}, {"fast": 10, "slow": 30}, {"fast": 15, "slow": 30},
                                  {"fast": 25, "slow": 30}]


def test_empty_grid_after_constraints_is_an_error():
    with pytest.raises(InvalidArgumentError, match="no combination satisfies"):
        Grid.from_specs(["fast=30,40", "slow=10,20"], constraints=["fast < slow"])


def test_unknown_parameter_names_the_strategy_params():
    grid = Grid.from_specs(["fast=5:20:5", "slwo=30"])
    with pytest.raises(InvalidArgumentError, match="strategy sma_cross has no parameter.* slwo; its parameters: "
                                                   "fast, slow"):
        grid.check_params(_known("sma_cross"), "sma_cross")
    with pytest.raises(InvalidArgumentError, match="range_minuts"):
        Grid.from_specs(["range_minuts=5:10:5"]).check_params(_known("orb"), "orb")


def test_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  fast: [5, 10\n  slow: 30\n")
    with pytest.raises(InvalidArgumentError, match=r"bad\.yaml, line \d+: not valid YAML"):
        Grid.from_yaml(bad)
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        Grid.from_yaml(tmp_path / "missing.yaml")
    odd = tmp_path / "odd.yaml"
    odd.write_text("params:\n  fast: {range: [5, 10]}\n")
    with pytest.raises(InvalidArgumentError, match=r"odd\.yaml: params.fast: range must be"):
        Grid.from_yaml(odd)
    typo = tmp_path / "typo.yaml"
    typo.write_text("params: {fast: [5]}\nconstraint: ['fast < 3']\n")
    with pytest.raises(InvalidArgumentError, match="unknown key.* constraint"):
        Grid.from_yaml(typo)


def test_combo_id_is_stable_and_sensitive():
    config = {"cash": 10_000.0, "commission": 0.001, "size_pct": 95.0}
    a = combo_id("sma_cross", {"fast": 5, "slow": 30}, "abc", "vector", config)
    assert a == combo_id("sma_cross", {"slow": 30, "fast": 5}, "abc", "vector", dict(reversed(list(config.items()))))
    assert len(a) == 12 and all(ch in "0123456789abcdef" for ch in a)
    others = {
        combo_id("sma_cross", {"fast": 5, "slow": 31}, "abc", "vector", config),
        combo_id("sma_cross", {"fast": 5, "slow": 30}, "abd", "vector", config),
        combo_id("sma_cross", {"fast": 5, "slow": 30}, "abc", "backtrader", config),
        combo_id("sma_cross", {"fast": 5, "slow": 30}, "abc", "vector", {**config, "cash": 1.0}),
        combo_id("orb", {"fast": 5, "slow": 30}, "abc", "vector", config),
    }
    assert a not in others and len(others) == 5
