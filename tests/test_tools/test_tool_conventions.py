"""The tools' command lines follow one convention: the config positional,
one flag name per idea (older spellings kept as hidden aliases), help text
on every argument, no ``sys.path`` edits and no blanket warning filters."""
import argparse
import ast
import importlib.util
import os.path as osp

import pytest

from helpers.paths import REPO_ROOT

# tool -> the positional arguments it takes, in order
TOOLS = {
    'tools/train.py': ['config'],
    'tools/test.py': ['config', 'checkpoint'],
    'tools/demo.py': [],
    'tools/make_demo_data.py': [],
    'tools/model_converters/vheat_to_mmvheat.py': ['src', 'dst'],
    'tools/analysis_tools/benchmark.py': [],
    'tools/analysis_tools/benchmark_dct.py': [],
    'tools/analysis_tools/benchmark_stream.py': [],
    'tools/analysis_tools/draw_predictions.py': ['task', 'config',
                                                 'checkpoint'],
    'tools/analysis_tools/get_flops.py': ['config'],
    'tools/analysis_tools/visualize_heat.py': ['config', 'checkpoint'],
}

# (tool, argv with today's names, argv with the older spelling)
OLD_SPELLINGS = [
    ('tools/analysis_tools/get_flops.py', ['--models', 'tiny', 'small'],
     ['--archs', 'tiny', 'small']),
    ('tools/analysis_tools/get_flops.py', ['--sizes', '224', '512'],
     ['--resolutions', '224', '512']),
    ('tools/analysis_tools/get_flops.py', ['cfg.py', '--shape', '64', '64'],
     ['--config', 'cfg.py', '--shape', '64', '64']),
    ('tools/analysis_tools/benchmark.py', ['--sizes', '64', '128'],
     ['--resolutions', '64', '128']),
    ('tools/analysis_tools/benchmark_stream.py', ['--models', 'small'],
     ['--arch', 'small']),
    ('tools/analysis_tools/visualize_heat.py',
     ['cfg.py', '--img', 'x.png', '--shape', '48', '64'],
     ['cfg.py', '--img', 'x.png', '--img-size', '48', '64']),
]

# flags that name one idea in every analysis tool: models to run, and the
# input sizes of a sweep; the older names must not be shown
RETIRED = ('--archs', '--arch', '--resolutions')
# hidden arguments that are no alias: benchmark.py's child-process entry,
# get_flops.py's ``--config`` (merged into the positional after parsing)
HIDDEN_INTERNAL = ('worker', 'config_flag')


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser and its result."""

    def __init__(self, parser, namespace):
        super().__init__()
        self.parser, self.namespace = parser, namespace


def _load(tool: str):
    name = osp.splitext(osp.basename(tool))[0]
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(REPO_ROOT, tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parser(monkeypatch, tool: str) -> argparse.ArgumentParser:
    """The parser of ``tool``: its ``main`` run up to the parsing."""

    def stop(self, args=None, namespace=None):
        raise _Parsed(self, None)

    module = _load(tool)
    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', stop)
    with pytest.raises(_Parsed) as info:
        module.main([])
    monkeypatch.undo()
    return info.value.parser


def _parse(monkeypatch, tool: str, argv) -> argparse.Namespace:
    """``argv`` parsed as ``tool`` parses it (its own ``parse_args`` where
    it has one, with whatever that does after parsing)."""
    module = _load(tool)
    if hasattr(module, 'parse_args'):
        return module.parse_args(argv)
    if hasattr(module, 'build_parser'):
        return module.build_parser().parse_args(argv)
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(self, real(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', stop)
    with pytest.raises(_Parsed) as info:
        module.main(argv)
    monkeypatch.undo()
    return info.value.namespace


@pytest.mark.parametrize('tool', list(TOOLS))
def test_every_argument_has_help(monkeypatch, tool):
    parser = _parser(monkeypatch, tool)
    visible = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings or [action.dest]
        if action.help == argparse.SUPPRESS:
            continue
        assert action.help and action.help.strip(), f'{tool}: {name}'
        visible[action.dest] = name
    hidden = [a for a in parser._actions if a.help == argparse.SUPPRESS]
    for action in hidden:  # an alias of a shown argument, or internal
        assert action.dest in visible or action.dest in HIDDEN_INTERNAL, \
            (tool, action.option_strings)


@pytest.mark.parametrize('tool', list(TOOLS))
def test_positionals_and_names(monkeypatch, tool):
    parser = _parser(monkeypatch, tool)
    positionals = [a.dest for a in parser._actions if not a.option_strings]
    assert positionals == TOOLS[tool]
    shown = {s for a in parser._actions if a.help != argparse.SUPPRESS
             for s in a.option_strings}
    assert not shown & set(RETIRED), tool


@pytest.mark.parametrize('tool,new,old', OLD_SPELLINGS)
def test_old_spellings_are_hidden_aliases(monkeypatch, tool, new, old):
    new_args = _parse(monkeypatch, tool, new)
    old_args = _parse(monkeypatch, tool, old)
    assert vars(new_args) == vars(old_args)
    # and the flag did something: not what the tool takes by default
    base = ['cfg.py', '--img', 'x.png'] if 'visualize' in tool else []
    assert vars(new_args) != vars(_parse(monkeypatch, tool, base))


def _calls(tree, module: str, names):
    """Calls ``module.<name>(...)`` for ``name`` in ``names``."""
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in names):
            owner = node.func.value
            text = ast.unparse(owner)
            if text == module or text.endswith(f'.{module}'):
                yield node


@pytest.mark.parametrize('tool', list(TOOLS))
def test_no_path_edits_or_blanket_warning_filters(tool):
    with open(osp.join(REPO_ROOT, tool)) as f:
        tree = ast.parse(f.read())
    edits = list(_calls(tree, 'sys.path', ('insert', 'append', 'extend')))
    assert not edits, f'{tool} edits sys.path (the package is installed)'
    for call in _calls(tree, 'warnings', ('filterwarnings', 'simplefilter')):
        keywords = {k.arg for k in call.keywords}
        narrowed = len(call.args) > 1 or keywords & {'message', 'category',
                                                     'module'}
        assert narrowed, f'{tool} silences every warning'
