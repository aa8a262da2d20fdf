"""``python -m btlab.dashboards [OUT_DIR] [--check]``: write (or, with ``--check``, compare) the Grafana files.

OUT_DIR defaults to ``deploy/grafana`` under the current directory. ``--check`` writes nothing and exits 1 naming
the files that differ from what the code generates (e.g. after a hand edit), 0 when all match.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m btlab.dashboards [OUT_DIR] [--check]", file=sys.stderr)
        return 1
    out = Path(args[0] if args else "deploy/grafana")
    from btlab.dashboards import build, stale

    if check:
        differ = stale(out)
        for path in differ:
            print(f"{path}: differs from the generated file (run python -m btlab.dashboards)", file=sys.stderr)
        return 1 if differ else 0
    for path in build(out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
