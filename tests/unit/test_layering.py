"""The layering rules are enforced by ruff's banned-api, and the tree obeys them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = [
    sys.executable,
    "-m",
    "ruff",
    "check",
    "--no-cache",
    "--select",
    "TID251",
    "--output-format",
    "concise",
]


@pytest.mark.parametrize(
    ("package", "line", "banned"),
    [
        ("services", "import flask", "flask"),
        ("services", "import requests", "requests"),
        ("services", "from graph import client", "graph"),
        ("services", "import msal", "msal"),
        ("services", "from google.auth import jwt", "google"),
        ("services", "import webhooks", "webhooks"),
        ("graph", "import flask", "flask"),
        ("graph", "import gmail", "gmail"),
        ("gmail", "from graph import x", "graph"),
        ("addin", "import webhooks", "webhooks"),
        ("webhooks", "from addin import auth", "addin"),
    ],
)
def test_ruff_refuses_a_banned_import(package: str, line: str, banned: str) -> None:
    # --stdin-filename makes ruff apply that folder's config without a file being written.
    result = subprocess.run(
        [*RUFF, "--stdin-filename", f"{package}/probe.py", "-"],
        cwd=ROOT, input=f"{line}\n", capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert f"`{banned}` is banned" in result.stdout


def test_the_tree_obeys_the_layering() -> None:
    packages = [str(ROOT / p) for p in ("services", "graph", "gmail", "addin", "webhooks")]
    result = subprocess.run(RUFF + packages, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
