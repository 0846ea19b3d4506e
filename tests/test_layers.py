"""The package layers of DESIGN.md, checked on the source: every import of every module (module level and inside
functions, ``import x`` and ``from x import y``), parsed with ``ast``, so a lazy import cannot hide a cycle.

Encoded: the rules that hold. ``students -> teachers`` is not among them yet: students/data.py, students/cli.py
and students/export.py call ``teachers.smollm2.smollm2_dir`` (the shared SmolLM2 tokenizer's folder) inside
functions; ``test_known_exceptions_are_exactly_these`` pins them so a new one fails.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("operators", "teachers", "curricula", "students", "pipelines")
FORBIDDEN = {
    "operators": {"pipelines", "teachers", "curricula", "students"},
    "teachers": {"students", "curricula", "pipelines"},
    "curricula": {"students", "teachers", "pipelines"},
    "students": {"pipelines"},
}
KNOWN_STUDENTS_TO_TEACHERS = {("students/cli.py", "teachers.smollm2"), ("students/data.py", "teachers.smollm2"),
                              ("students/export.py", "teachers.smollm2")}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every absolute import in ``path``; relative imports resolve in-package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # ``from . import x`` stays inside the package
                continue
            found.append((node.lineno, node.module or ""))
    return found


def crossings(package: str) -> list[tuple[str, int, str]]:
    """(file, line, module) of every import from ``package`` into another of the project's packages."""
    out = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imports(path):
            top = module.split(".")[0]
            if top in PACKAGES and top != package:
                out.append((path.relative_to(REPO).as_posix(), line, module))
    return out


def test_every_package_is_parsed():
    for package in PACKAGES:
        files = list((REPO / package).rglob("*.py"))
        assert len(files) >= 3, package
    assert ("pipelines/runner.py", "operators.fileio") in {(f, m) for f, _, m in crossings("pipelines")}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_rules(package):
    bad = [f"{file}:{line} imports {module}" for file, line, module in crossings(package)
           if module.split(".")[0] in FORBIDDEN[package]]
    assert not bad, f"{package} may not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(bad)


def test_teachers_import_nothing_from_students():
    assert not [c for c in crossings("teachers") if c[2].startswith("students")]


def test_known_exceptions_are_exactly_these():
    found = {(file, module) for file, _, module in crossings("students") if module.startswith("teachers")}
    assert found == KNOWN_STUDENTS_TO_TEACHERS


def test_the_parser_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from students.checkpoint import x\n    import teachers.cache\n"
                      "    from . import sibling\n")
    assert imports(source) == [(1, "os"), (4, "students.checkpoint"), (5, "teachers.cache")]
