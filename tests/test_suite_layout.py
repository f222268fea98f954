"""The suite's own layout: ``conftest.py`` holds only pytest fixtures and
hooks, shared helpers live in the ``helpers`` package, and no test imports
conftest or another test file."""
import ast
import os

from helpers.paths import REPO_ROOT

TESTS = os.path.join(REPO_ROOT, 'tests')


def parse(path: str) -> ast.Module:
    with open(path) as f:
        return ast.parse(f.read(), path)


def is_fixture(decorator: ast.expr) -> bool:
    """``@pytest.fixture`` or ``@pytest.fixture(...)``."""
    if isinstance(decorator, ast.Call):
        decorator = decorator.func
    return (isinstance(decorator, ast.Attribute)
            and decorator.attr == 'fixture'
            and isinstance(decorator.value, ast.Name)
            and decorator.value.id == 'pytest')


def suite_files() -> list:
    found = []
    for folder, dirs, files in os.walk(TESTS):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        found += [os.path.join(folder, f) for f in files if f.endswith('.py')]
    return sorted(found)


def test_conftest_defines_only_fixtures_and_hooks():
    tree = parse(os.path.join(TESTS, 'conftest.py'))
    strays = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            strays.append(node.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not (node.name.startswith('pytest_')
                    or any(is_fixture(d) for d in node.decorator_list)):
                strays.append(node.name)
    assert not strays, (f'conftest.py defines {strays}: helpers belong in '
                        'tests/helpers/')


def test_nothing_imports_conftest_or_a_test_file():
    bad = []
    for path in suite_files():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split('.')[0]
                if top == 'conftest' or top.startswith('test_'):
                    bad.append(f'{os.path.relpath(path, TESTS)}:'
                               f'{node.lineno} imports {name}')
    assert not bad, bad
