"""Every option of the ``btlab`` command is declared once (btlab.cli.common): one flag, one help text.

Before: --exchange, --symbol, --timeframe, --from/--to, --yes, ... were declared in each command with different
help texts (six variants of --exchange).
"""

from __future__ import annotations

from collections import defaultdict

import typer

from btlab.cli.main import app

#: flags that name two different things, each declared once in btlab.cli.common: the strategy to run
#: (``btlab backtest``) and the recorded strategy name runs are filtered by (``btlab runs list``); where bars come
#: from in a backtest (store or kafka) and where ``ingest history`` pages from (ccxt or cryptocompare); the file
#: or folder written (``dashboards build``: a folder; ``rl train``: the policy file) and the seed of a draw
#: (``sweep run --sample``) or of a training (``rl train``), the rl ones declared in btlab.cli.rl; the metric
#: that ranks a sweep's stored runs (``sweep show/top``) and the one that chooses each walk-forward window's
#: combination (``walkforward``, which also takes an index tracker's tracking_error)
TWO_MEANINGS = {"--strategy": 2, "--source": 2, "--out": 2, "--seed": 2, "--by": 2}


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def option_helps() -> dict[str, dict[str, list[str]]]:
    """``{flag: {help text: [command, ...]}}`` over every command of the btlab app."""
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, command in _commands(typer.main.get_command(app)):
        for param in command.params:
            if getattr(param, "param_type_name", "") != "option":
                continue
            for flag in param.opts:
                if flag.startswith("--"):
                    found[flag][param.help or ""].append(" ".join(path))
    return found


def test_each_option_has_one_help_text():
    helps = option_helps()
    assert len(helps["--exchange"]) >= 1 and len(helps) > 40  # the walk sees the whole app
    varying = {flag: dict(texts) for flag, texts in helps.items() if len(texts) > TWO_MEANINGS.get(flag, 1)}
    assert varying == {}


def test_shared_options_are_shared():
    """--exchange, --symbol, --timeframe, --store, --from, --to reach several commands from one declaration."""
    helps = option_helps()
    for flag, at_least in (("--exchange", 6), ("--symbol", 5), ("--timeframe", 6), ("--store", 12), ("--from", 3),
                           ("--to", 3), ("--yes", 3)):
        (commands,) = helps[flag].values()
        assert len(commands) >= at_least, (flag, commands)
