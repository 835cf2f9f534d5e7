"""Security battery, deployment checks: where a project lives must not hide findings."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from robaccia.checks import check_project

SETTINGS = types.SimpleNamespace(
    DEBUG=False,
    SECRET_KEY="k" * 8 + "abcdefghijklmnopqrstuvwxyz0123",
    MAX_BODY_SIZE=4096,
    MAX_FIELDS=64,
)


@pytest.mark.parametrize("parent", ["plain", ".hidden", "tests", ".venv/tests"])
def test_autoescape_off_found_wherever_the_project_lives(tmp_path: Path, parent: str) -> None:
    root = tmp_path / parent / "project"
    (root / "views").mkdir(parents=True)
    (root / "views" / "pages.py").write_text("env = Environment(autoescape=False)\n")
    # Files in the project's own dot-folders and tests/ are still skipped.
    (root / ".venv").mkdir()
    (root / ".venv" / "lib.py").write_text("Environment(autoescape=False)\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("Environment(autoescape=False)\n")
    findings = check_project(root, SETTINGS)
    assert [f.id for f in findings] == ["R003"], findings
    assert "views/pages.py" in findings[0].message


@pytest.mark.parametrize("listed", ["names", "classes"])
def test_protective_middleware_counts_by_name_or_class(tmp_path: Path, listed: str) -> None:
    from robaccia import middleware

    names = ["ErrorPages", "AllowedHosts", "SecurityHeaders", "FlashMessages", "CSRFProtection"]
    entries = [f"robaccia.middleware.{n}" if listed == "names" else getattr(middleware, n) for n in names]
    settings = types.SimpleNamespace(**vars(SETTINGS), MIDDLEWARE=entries)
    assert [f for f in check_project(tmp_path, settings, app=object()) if f.id == "R005"] == []
    settings.MIDDLEWARE = entries[1:]  # no ErrorPages
    lacking = [f.message for f in check_project(tmp_path, settings, app=object()) if f.id == "R005"]
    assert lacking == ["MIDDLEWARE lacks robaccia.middleware.ErrorPages: errors reach the server's own pages."]
