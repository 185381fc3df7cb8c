"""``make mutation``'s list cannot rot: each mutation's text occurs exactly once in its file, the
mutated file still compiles (a syntax error would be "caught" by any test, proving nothing), and the
tests it names exist. Fast (no TensorFlow): it runs in ``make test``, so a change that moves a
mutation's text fails here, not ten minutes into ``make mutation``."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

REPO = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("mutation_check", REPO / "scripts" / "mutation_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


MUTATION_CHECK = _load_script()
MUTATIONS = MUTATION_CHECK.MUTATIONS


def _split_tests(args: tuple[str, ...]) -> tuple[list[str], str | None]:
    """A mutation's pytest arguments -> (test files, the -k expression or None)."""
    files, keyword, it = [], None, iter(args)
    for arg in it:
        if arg == "-k":
            keyword = next(it)
        elif arg.startswith("-"):
            raise AssertionError(f"unexpected pytest option {arg!r}: extend this test to understand it")
        else:
            files.append(arg)
    return files, keyword


def _test_names(path: Path) -> list[str]:
    """The test functions (and test methods) defined in a test file, by name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
    ]


def test_the_mutation_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_applies_once_and_still_compiles(mutation):
    if not mutation.file:  # a shadowed module, no text edit
        assert mutation.hide_dlib and not mutation.old and not mutation.new
        return
    path = REPO / mutation.file
    source = path.read_text()
    count = source.count(mutation.old)
    assert count == 1, (
        f"{mutation.name!r}: its text occurs {count} times in {mutation.file}; "
        f"update scripts/mutation_check.py so it plants the same bug in today's code"
    )
    assert mutation.old != mutation.new
    compile(source.replace(mutation.old, mutation.new, 1), str(path), "exec")


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_each_mutation_names_tests_that_exist(mutation):
    files, keyword = _split_tests(mutation.tests)
    assert files, f"{mutation.name!r} names no test file"
    selected = []
    for rel in files:
        path = REPO / rel
        assert path.is_file(), f"{mutation.name!r} names {rel}, which does not exist"
        names = _test_names(path)
        assert names, f"{rel} defines no test"
        if keyword is None:
            selected += names
        else:  # pytest's own -k matching: a case-insensitive substring of the test's or file's name
            expr = Expression.compile(keyword)
            selected += [n for n in names if expr.evaluate(lambda k, n=n, f=path.name: k.lower() in f"{n} {f}".lower())]
    assert selected, f"{mutation.name!r}: -k {keyword!r} selects no test in {files}"
