"""The layers check of `make lint` (import-linter): it passes on the code, and it fails as
soon as journeys imports ingestion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_its_layers():
    result = _lint(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "journeys never imports ingestion" in result.stdout
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_journeys_importing_ingestion_breaks_the_check(tmp_path):
    for package in ("cdp", "ingestion", "journeys"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "journeys" / "probe.py").write_text("from ingestion import plan  # noqa\n")

    result = _lint(tmp_path)

    assert result.returncode != 0
    assert "journeys.probe -> ingestion.plan" in result.stdout


def test_the_core_importing_an_app_breaks_the_check(tmp_path):
    """The core registers nothing of the apps' itself: they contribute through its
    registries, so even the Console's pages may not import an app."""
    for package in ("cdp", "ingestion", "journeys"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "cdp" / "admin" / "probe.py").write_text("from journeys import models  # noqa\n")

    result = _lint(tmp_path)

    assert result.returncode != 0
    assert "cdp.admin.probe -> journeys.models" in result.stdout
