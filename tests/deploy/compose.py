"""deploy/docker-compose.yml as Compose reads it: ``${VAR}`` interpolation, then the Compose specification's parser.

No Docker engine runs here, so the tests check the file with a real Compose implementation's parser (the
``compose_spec`` Rust library through its Python bindings: unknown keys, bad values and types are errors) after
the interpolation Compose does (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``$$``),
and run the btlab services' commands on this machine with container paths mapped to their mounted host paths.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from realdata import REPO

DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
#: the variables deploy/.env must give (compose refuses to start without them), with test values
REQUIRED_ENV = {"QDB_ADMIN_PASSWORD": "test-admin-pw", "QDB_READONLY_PASSWORD": "test-ro-pw",
                "GRAFANA_ADMIN_PASSWORD": "test-grafana-pw"}
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-|:\?|\?)([^}]*))?\}")


class MissingVariable(KeyError):
    """A ``${VAR:?...}`` whose variable is unset or empty: compose refuses to start."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` (a parsed YAML tree) with Compose's interpolation applied to every string in it."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            if m.group(0) == "$$":
                return "$"
            name, op, arg = m.groups()
            if op in (":-", ":?") and env.get(name) or op in ("-", "?", None) and name in env:
                return env[name]
            if op in (":-", "-"):
                return arg
            if op in (":?", "?"):
                raise MissingVariable(f"{name}: {arg}")
            return ""
        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def variables() -> set[str]:
    """Every variable the compose file reads (outside comments), secrets' source variables included."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    names: set[str] = {s["environment"] for s in doc.get("secrets", {}).values() if "environment" in s}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            names.update(m.group(1) for m in _VAR.finditer(value) if m.group(1))
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
    walk(doc)
    return names


def load(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file interpolated with ``env`` (default: :data:`REQUIRED_ENV`), anchors and merge keys resolved,
    and accepted by the Compose specification's parser (``compose_spec.PyCompose``; raises its error otherwise)."""
    from compose_spec import PyCompose

    env = REQUIRED_ENV if env is None else env
    doc = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    for name, secret in doc.get("secrets", {}).items():  # a secret made from a variable needs the variable
        if "environment" in secret and not env.get(secret["environment"]):
            raise MissingVariable(f"{secret['environment']}: secret {name} has no value")
    PyCompose.from_yaml(yaml.safe_dump(doc))
    return doc


def container_root(service: dict[str, Any], root: Path) -> Path:
    """Build the service's view of its mounts under ``root`` (a symlink per bind mount, host paths relative to
    deploy/ as compose resolves them); returns its working directory there."""
    for volume in service.get("volumes", []):
        host, target = volume.split(":")[:2]
        if not host.startswith((".", "/")):
            continue  # a named volume: nothing of the repository
        link = root / target.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((DEPLOY / host).resolve())
    work = root / service.get("working_dir", "/").lstrip("/")
    work.mkdir(parents=True, exist_ok=True)
    return work


def host_args(args: list[str], root: Path) -> list[str]:
    """``args`` with absolute container paths moved under ``root`` (see :func:`container_root`)."""
    return [str(root / a.lstrip("/")) if a.startswith("/work/") else a for a in args]
