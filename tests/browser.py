"""Headless Chromium for the report tests (installed by .ci/run; the tests skip without it unless
``BTLAB_REQUIRE_BROWSER`` is set)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Debian's chromium, or None where it is not installed
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: a script put first in <head>: records every JS error and unhandled rejection in <html data-jserr>
ERROR_TRAP = (
    "<script>(function(){function note(m){var d=document.documentElement;"
    "d.setAttribute('data-jserr',(d.getAttribute('data-jserr')||'')+'|'+m);}"
    "window.addEventListener('error',function(e){note(e.message)});"
    "window.addEventListener('unhandledrejection',function(e){note(String(e.reason))});})();</script>"
)


def run_chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Loads ``url`` in headless Chromium (Debian's, ``--no-sandbox --disable-gpu``) with a private profile."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--hide-scrollbars", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90,
                          env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
