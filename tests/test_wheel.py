"""A wheel that works: built from the sources, installed in a fresh venv, serving the page."""

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from app.web.devserver import ServerProcess

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "app", "backbeat", "static", "templates")  # a wheel's
INSTALL_TIMEOUT = 900  # s: pip may fetch the dependencies on a slow, loaded machine


def run(*argv, cwd: Path | None = None, env: dict | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("content-type", ""), r.read().decode()


def sources(tmp_path: Path) -> Path:
    """A clean copy of what a wheel is built from: no build/ left over from an earlier build."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    return src


def serves_the_page(backbeat: Path, tmp_path: Path) -> None:
    """`backbeat` as installed starts, and serves the page, its script and its stylesheet."""
    argv = [backbeat, "--no-browser", "--port", "{port}", "--data", tmp_path / "data"]
    with ServerProcess([str(a) for a in argv], tmp_path, cwd=tmp_path) as server:
        status, kind, page = fetch(f"{server.url}/")
        assert status == 200 and kind.startswith("text/html")
        assert '<script type="module" src="/static/js/main.js' in page
        status, kind, script = fetch(f"{server.url}/static/js/main.js")
        assert status == 200 and "javascript" in kind and "import" in script
        status, kind, css = fetch(f"{server.url}/static/css/backbeat.css")
        assert status == 200 and kind.startswith("text/css") and css.strip()
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("how", ["wheel", "pip install ."])
def test_an_installed_package_serves_the_page_and_its_assets(tmp_path, how):
    src = sources(tmp_path)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    if how == "wheel":
        run(sys.executable, "-m", "pip", "wheel", src, "--no-deps", "-q", "-w", tmp_path / "dist")
        (target,) = (tmp_path / "dist").glob("backbeat-*.whl")
    else:
        target = src  # not editable: the package is copied into the venv
    run(venv / "bin" / "pip", "install", "-q", target)
    where = run(venv / "bin" / "python", "-c", "import app; print(app.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv)  # the installed package, not this checkout
    serves_the_page(venv / "bin" / "backbeat", tmp_path)


def test_pipx_install_gives_a_backbeat_that_serves_the_page(tmp_path):
    """pipx (itself installed from PyPI into a throwaway venv) installs the sources."""
    src, tool = sources(tmp_path), tmp_path / "tool"
    run(sys.executable, "-m", "venv", tool)
    run(tool / "bin" / "pip", "install", "-q", "pipx")
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    run(tool / "bin" / "pipx", "install", src, env=env)
    serves_the_page(tmp_path / "bin" / "backbeat", tmp_path)
