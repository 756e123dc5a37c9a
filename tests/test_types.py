"""The package type-checks under the strict mypy configuration in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_mypy_is_clean() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"
