"""The code's shape: the pure core imports no vendor library, each vendor library lives in
one adapter, and modules depend one way (rounds -> sync -> dataset)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "labeler"
PURE = (
    "calibration",
    "planned",
    "routing",
    "prompts",
    "costs",
    "injection",
    "simulation",
    "consensus",
    "verdicts",
    "errors",
)
VENDORS = {"argilla": "review", "openai": "judge", "datasets": "export"}


def imports(module: str) -> set[str]:
    """Every module ``module`` imports, at the top or inside functions."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("module", PURE)
def test_the_core_is_pure(module: str) -> None:
    allowed = {"numpy", "__future__"}
    for name in imports(module):
        top = name.split(".")[0]
        assert top in allowed or top == "labeler" or top in _stdlib(), (module, name)


def _stdlib() -> set[str]:
    import sys

    return set(sys.stdlib_module_names)


def test_each_vendor_library_has_one_adapter() -> None:
    users: dict[str, set[str]] = {v: set() for v in VENDORS}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for name in imports(module):
            top = name.split(".")[0]
            if top in users:
                users[top].add(module)
    assert users["openai"] == {"judge"}
    assert users["argilla"] == {"review"}
    assert users["datasets"] <= {"export", "pairs"}  # output, and Hugging Face sources
    # Unicode's confusables table is read (as package data) in one module only
    readers = {p.stem for p in PACKAGE.rglob("*.py") if "confusable_homoglyphs" in p.read_text()}
    assert readers == {"confusables"}


def test_rounds_and_sync_depend_one_way() -> None:
    assert "labeler.rounds" not in imports("sync")
    assert "labeler.rounds" not in imports("dataset")
    assert "labeler.sync" not in imports("dataset")


def test_no_two_modules_import_each_other() -> None:
    modules = {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    }
    deps = {
        m: {name.removeprefix("labeler.") for name in imports(m) if name.startswith("labeler.")}
        for m in modules
    }
    circles = sorted(
        {tuple(sorted((a, b))) for a, ds in deps.items() for b in ds if a in deps.get(b, ())}
    )
    assert circles == []
