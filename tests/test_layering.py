"""The package's import graph: model code never imports analysis code or
the optional integrations (mmvheat.timm), and there are no import cycles
(imports inside functions included)."""
import ast
import os

from helpers.paths import REPO_ROOT

PACKAGE = os.path.join(REPO_ROOT, 'mmvheat')
MODEL_CODE = ('mmvheat.ops', 'mmvheat.models', 'mmvheat.checkpoint',
              'mmvheat.download',
              'mmvheat.registry', 'mmvheat.compat')
# What model code (and `import mmvheat`) must never reach.
NOT_FROM_MODEL_CODE = ('mmvheat.analysis', 'mmvheat.timm')


def module_name(path: str) -> str:
    rel = os.path.relpath(path, REPO_ROOT)[:-3].replace(os.sep, '.')
    return rel[:-len('.__init__')] if rel.endswith('.__init__') else rel


def import_graph() -> dict:
    """mmvheat module -> the mmvheat modules it imports anywhere in it."""
    files = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith('.py'):
                path = os.path.join(root, name)
                files[module_name(path)] = path
    graph = {}
    for mod, path in files.items():
        package = mod if path.endswith('__init__.py') else mod.rpartition(
            '.')[0]
        deps = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split('.')
                    base = base[:len(base) - node.level + 1]
                    target = '.'.join(base + [node.module] * bool(
                        node.module))
                else:
                    target = node.module
                # `from pkg import sub` imports the submodule pkg.sub
                subs = {f'{target}.{a.name}' for a in node.names} & set(files)
                deps |= subs or {target}
        graph[mod] = {d for d in deps if d in files}
    return graph


def reachable(graph: dict, start: str) -> set:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_model_code_never_imports_analysis_code():
    graph = import_graph()
    assert 'mmvheat.analysis.flops' in graph  # the walk found the package
    assert 'mmvheat.timm.vheat' in graph
    for mod in graph:
        if mod.startswith(MODEL_CODE) or mod == 'mmvheat':
            bad = {d for d in reachable(graph, mod)
                   if d.startswith(NOT_FROM_MODEL_CODE)}
            assert not bad, f'{mod} reaches {sorted(bad)}'


def test_no_import_cycles():
    graph = import_graph()
    cycles = [mod for mod in graph if mod in reachable(graph, mod)]
    assert not cycles, cycles
