"""Run the installed ``btlab`` command in a subprocess, as a user does: real exit codes, real stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def btlab_cli(
    *args: str, store: Path | str | None = None, extra_env: dict[str, str] | None = None, columns: str | None = "200",
    input: str | None = None, timeout: float = 300,
) -> "subprocess.CompletedProcess[str]":
    """Run ``btlab ARGS...`` with ``store`` as ``BTLAB_STORE`` (an outer ``BTLAB_STORE`` is never inherited).

    ``columns``: the terminal width rich sees (None: unset); ``input``: text on stdin (default: empty, so a
    confirmation prompt reads end of input).
    """
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BTLAB_STORE", None)
    env.pop("COLUMNS", None)
    env.update(extra_env or {})
    if columns is not None:
        env["COLUMNS"] = columns
    if store is not None:
        env["BTLAB_STORE"] = str(store)
    exe = Path(sys.executable).with_name("btlab")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=timeout,
                          input=input if input is not None else "")


def error_lines(proc: "subprocess.CompletedProcess[str]") -> list[str]:
    """The non-blank lines on stderr."""
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_one_line(proc: "subprocess.CompletedProcess[str]", code: int = 1) -> str:
    """Assert a one-line ``error: ...`` on stderr, no traceback, exit ``code``; return the line."""
    lines = error_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]
