"""The folder tree reads as the pipeline, and imports run one way, down it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Each stage may import the stages before it and audit; flows, tidlig and web sit on top.
PIPELINE = ["audit", "sources", "validate", "link", "features", "models", "rules", "routing", "casework"]
ON_TOP = ["flows", "web", "tidlig"]


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PIPELINE + ON_TOP)


def test_the_pipeline_folders_exist():
    for package in PIPELINE + ON_TOP:
        assert (ROOT / package / "__init__.py").exists(), package
    assert (ROOT / "prefect.yaml").exists()


def test_imports_run_down_the_pipeline():
    wrong = []
    for position, package in enumerate(PIPELINE):
        allowed = set(PIPELINE[: position + 1]) | {"audit"}
        for path in (ROOT / package).rglob("*.py"):
            for imported in _imported_packages(path) - allowed:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)

