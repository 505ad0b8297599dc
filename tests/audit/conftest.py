"""Each audit test keeps its key and checkpoints in a folder of its own."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def audit_dir(tmp_path, monkeypatch):
    """TIDLIG_AUDIT_DIR for this test: a fresh key, no checkpoints yet."""
    folder = tmp_path / "audit"
    monkeypatch.setenv("TIDLIG_AUDIT_DIR", str(folder))
    monkeypatch.delenv("TIDLIG_AUDIT_KEY", raising=False)
    return folder
