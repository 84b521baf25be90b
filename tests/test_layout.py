"""The package layout keeps its promise: imports flow engine → live → store → broker → web."""

import ast
import sys
import tomllib
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
# package -> what it must never import (its own later layers, and servers, sockets, disks)
FORBIDDEN = {
    "engine": ("app.live", "app.store", "app.web", "fastapi", "starlette", "sqlite3"),
    "live": ("app.broker", "app.web", "fastapi", "starlette", "sqlite3", "redis"),
    "store": ("app.broker", "app.web", "fastapi", "starlette", "redis"),
    "broker": ("app.web", "fastapi", "starlette", "sqlite3"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, absolute or relative (resolved against its package)."""
    package = ".".join(path.relative_to(APP.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((APP / package).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package]):
                found.append(f"{path.relative_to(APP.parent)} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package):
    assert violations(package) == []


def test_the_check_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The checker itself: plain, from, dotted and relative imports of a forbidden module."""
    fake = tmp_path / "app" / "engine"
    fake.mkdir(parents=True)
    (fake / "a.py").write_text("import sqlite3\n")
    (fake / "b.py").write_text("from fastapi import APIRouter\n")
    (fake / "c.py").write_text("from ..web import server\n")
    (fake / "d.py").write_text("import app.store.sqlite as s\n")
    (fake / "e.py").write_text("from app.engine import nn\nimport numpy\n")
    monkeypatch.setattr(sys.modules[__name__], "APP", tmp_path / "app")
    assert violations("engine") == [
        "app/engine/a.py imports sqlite3",
        "app/engine/b.py imports fastapi",
        "app/engine/b.py imports fastapi.APIRouter",
        "app/engine/c.py imports app.web",
        "app/engine/c.py imports app.web.server",
        "app/engine/d.py imports app.store.sqlite",
    ]


def test_every_package_is_listed_for_the_wheel():
    """pyproject.toml lists packages by hand (static/ and templates/ are mapped in)."""
    listed = set(
        tomllib.loads((APP.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(APP.parent).parts)
        for top in ("app", "backbeat")
        for p in (APP.parent / top).rglob("__init__.py")
    }
    assert found <= listed
