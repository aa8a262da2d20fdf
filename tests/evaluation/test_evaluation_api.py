"""The evaluation statistics are part of btlab's public API, imported lazily."""

from __future__ import annotations

import subprocess
import sys

import btlab
import btlab.evaluation


def test_exported_from_btlab():
    for name in ("deflated_sharpe_ratio", "probabilistic_sharpe_ratio", "expected_max_sharpe", "pbo",
                 "DeflatedSharpe", "PBOResult"):
        assert name in btlab.__all__ and name in btlab.evaluation.__all__
        assert getattr(btlab, name) is getattr(btlab.evaluation, name)


def test_importing_btlab_does_not_import_evaluation():
    code = "import sys, btlab; assert 'btlab.evaluation' not in sys.modules; btlab.pbo; " \
           "assert 'btlab.evaluation' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
