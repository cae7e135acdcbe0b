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
    "parity",
    "looks",
    "split",
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


MODULE_LINES = 600  # lines of code (docstrings, comments and blank lines excluded)
CLASS_LINES = 350


def _code_lines(node: ast.AST, source: str) -> set[int]:
    """Line numbers of ``node`` that hold code: not blank, not comments, not docstrings."""
    docs: set[int] = set()
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docs.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines = source.splitlines()
    start = getattr(node, "lineno", 1)
    end = getattr(node, "end_lineno", None) or len(lines)
    return {
        i
        for i in range(start, end + 1)
        if lines[i - 1].strip() and not lines[i - 1].strip().startswith("#") and i not in docs
    }


def test_no_room_outgrows_a_reader() -> None:
    """Issue 20: no module outside the CLI holds more than MODULE_LINES lines of code and
    no class more than CLASS_LINES, so each stage of the data's path stays readable."""
    too_big = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        source = path.read_text()
        tree = ast.parse(source)
        if not module.startswith("cli/") and len(_code_lines(tree, source)) > MODULE_LINES:
            too_big.append((module, len(_code_lines(tree, source))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and len(_code_lines(node, source)) > CLASS_LINES:
                too_big.append((f"{module}:{node.name}", len(_code_lines(node, source))))
    assert not too_big, too_big


def test_the_size_rule_counts_code_not_prose() -> None:
    source = 'def f():\n    """Doc.\n\n    More."""\n    # a comment\n\n    return 1\n'
    assert _code_lines(ast.parse(source), source) == {1, 7}
