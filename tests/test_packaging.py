"""Packaging: the layout of the checkout, the console script, and the built wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SKELETON = sorted(
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "robaccia" / "templates").rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)


def test_layout() -> None:
    for path in ("robaccia/__init__.py", "robaccia/wsgicollection.py", "robaccia/wsgidispatcher.py",
                 "robaccia/py.typed", "robaccia/templates/project/dispatcher.py-tpl",
                 "bin/robaccia-admin", "setup.py", "pyproject.toml", "tests/support.py"):
        assert (ROOT / path).is_file(), path
    assert (ROOT / "robaccia" / "templates" / "project").is_dir()


def test_pyproject_holds_the_metadata_and_setup_py_is_a_shim() -> None:
    project = PYPROJECT["project"]
    assert project["name"] == "robaccia"
    assert project["requires-python"] == ">=3.11"
    assert project["scripts"] == {"robaccia-admin": "robaccia.cli:main"}
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    pytest_options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "slow: long-running end-to-end tests" in pytest_options["markers"]
    code = [line for line in (ROOT / "setup.py").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    assert code == ["from setuptools import setup", "setup()"]


def test_bin_robaccia_admin_is_a_thin_launcher() -> None:
    launcher = ROOT / "bin" / "robaccia-admin"
    text = launcher.read_text()
    assert text.startswith("#!/usr/bin/env python")
    assert "from robaccia.cli import main" in text
    assert len(text.splitlines()) < 20
    assert os.access(launcher, os.X_OK)


@pytest.mark.parametrize("command", [
    [sys.executable, str(ROOT / "bin" / "robaccia-admin"), "--help"],
    [str(Path(sys.executable).parent / "robaccia-admin"), "--help"],
    [sys.executable, "-m", "robaccia", "--help"],
], ids=["bin-launcher", "console-script", "python-m"])
def test_robaccia_admin_help(command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    assert "robaccia -- command line tool for the robaccia web framework." in result.stdout
    assert result.stderr == ""


def test_skeleton_is_complete() -> None:
    for path in ("robaccia/templates/project/dispatcher.py-tpl",
                 "robaccia/templates/project/gitignore-tpl",
                 "robaccia/templates/project/static/robaccia.css",
                 "robaccia/templates/addview/view.py-tpl",
                 "robaccia/templates/addmodelview/model.py-tpl"):
        assert path in SKELETON
    for engine in ("genshi", "jinja2"):
        for page in ("project/layout.html", "project/index.html", "addview/list.html",
                     "addmodelview/get_new_form.html"):
            assert f"robaccia/templates/{engine}/{page}" in SKELETON


def _build(source: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "build", "--wheel", *options, "--outdir", str(out),
                           str(source)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_wheel_contains_the_skeleton_templates_and_entry_point(tmp_path: Path) -> None:
    # Build from a copy: nothing is written into the checkout (build/, *.egg-info).
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "robaccia", source / "robaccia", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "dist"
    result = _build(source, out)
    if result.returncode != 0:
        # Without an index to fetch build requirements from, use the venv's setuptools.
        result = _build(source, out, "--no-isolation", "--skip-dependency-check")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(out.glob("robaccia-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = set(wheel.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()

    for path in SKELETON:
        assert path in names, path
    for path in ("robaccia/py.typed", "robaccia/__init__.py", "robaccia/cli.py",
                 "robaccia/wsgicollection.py", "robaccia/wsgidispatcher.py",
                 "robaccia/templates/project/dispatcher.py-tpl",
                 "robaccia/templates/project/static/robaccia.css",
                 "robaccia/templates/genshi/project/layout.html",
                 "robaccia/templates/jinja2/project/layout.html"):
        assert path in names, path
    # NOTE: pyproject.toml lists the packages: a subpackage left off it would be missing here.
    for path in sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "robaccia").rglob("*.py")
                       if "__pycache__" not in p.parts):
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "bin/"))]
    assert "[console_scripts]\nrobaccia-admin = robaccia.cli:main" in entry_points
    assert "Name: robaccia\n" in metadata
    assert "Requires-Python: >=3.11" in metadata
