"""The tools' command lines follow one convention, checked for every
``tools/**/*.py`` (found by a glob: a new tool must be listed in ``TOOLS``
or this file fails): the config positional, one vocabulary
(:mod:`mmvheat.utils.cli`: each flag name one meaning in every tool, older
spellings kept as hidden aliases), help text on every argument, ``--debug``
and one-line errors (``run_tool``) everywhere, no ``sys.path`` edits and
no blanket warning filters."""
import argparse
import ast
import glob
import os.path as osp

import pytest

from helpers.paths import REPO_ROOT
from helpers.tools import parse_tool_args, tool_parser
from mmvheat.analysis.specs import model_spec
from mmvheat.ops import HCO_IMPLS

# tool -> (the positional arguments it takes, in order; the vocabulary
# flags it shows)
TOOLS = {
    'tools/train.py': (['config'], {'--work-dir'}),
    'tools/test.py': (['config', 'checkpoint'],
                      {'--work-dir', '--out', '--out-dir'}),
    'tools/demo.py': ([], {'--work-dir', '--data-root'}),
    'tools/make_demo_data.py': ([], {'--data-root'}),
    'tools/model_converters/vheat_to_mmvheat.py': (['src', 'dst'],
                                                   {'--img-size'}),
    'tools/analysis_tools/benchmark.py': ([], {'--models', '--sizes',
                                               '--out-dir'}),
    'tools/analysis_tools/benchmark_dct.py': ([], {'--sizes', '--impls',
                                                   '--out-dir'}),
    'tools/analysis_tools/benchmark_stream.py': ([], {'--models',
                                                      '--img-size'}),
    'tools/analysis_tools/draw_predictions.py': (
        ['task', 'config', 'checkpoint'], {'--data-root', '--out-dir'}),
    'tools/analysis_tools/get_flops.py': (
        ['config'], {'--models', '--sizes', '--shape', '--hco-impl'}),
    'tools/analysis_tools/visualize_heat.py': (['config', 'checkpoint'],
                                               {'--shape', '--out-dir'}),
    'tools/deployment/benchmark_detector.py': (['config', 'checkpoint'],
                                               {'--shape', '--out-dir'}),
    'tools/deployment/int8_report.py': (['config', 'checkpoint'],
                                        {'--data-root', '--out-dir'}),
    'tools/deployment/pytorch2aoti.py': (['config', 'checkpoint'],
                                         {'--shape', '--out'}),
    'tools/deployment/pytorch2onnx.py': (['config', 'checkpoint'],
                                         {'--shape', '--out'}),
    'tools/deployment/test_onnx.py': (['config', 'file'], {'--out'}),
}


def _text(action) -> str:
    return (action.help or '').lower()


# flag -> what its argparse action must look like wherever it is shown
# (its one meaning; see mmvheat/utils/cli.py)
VOCABULARY = {
    # model specs (mmvheat.analysis.specs), never arch names or cases
    '--models': lambda a: a.type is model_spec and a.nargs == '+',
    # the HCO's DCT implementation; default: the model's own
    '--hco-impl': lambda a: (tuple(a.choices) == HCO_IMPLS
                             and a.default is None
                             and "the model's own" in _text(a)),
    # several implementations, compared
    '--impls': lambda a: set(a.choices) <= set(HCO_IMPLS) and a.nargs == '+',
    # one input size: H W (visualize_heat also takes one shorter side)
    '--shape': lambda a: ((a.nargs == 2 and a.metavar == ('H', 'W'))
                          or (a.nargs == '+' and ' h w' in _text(a))),
    # a sweep of input sizes
    '--sizes': lambda a: a.nargs in ('+', '*'),
    # the backbone's img_size (FVE grid), one int
    '--img-size': lambda a: a.nargs is None and a.type is not None,
    # one output file
    '--out': lambda a: a.nargs is None and 'file' in _text(a),
    # a folder of outputs
    '--out-dir': lambda a: a.nargs is None and 'folder' in _text(a),
    # mmengine's work dir
    '--work-dir': lambda a: a.nargs is None and 'mmengine' in _text(a),
    # where a dataset is
    '--data-root': lambda a: a.nargs is None and 'dataset' in _text(a),
}

# spellings no tool shows (older or competing names of the ideas above)
RETIRED = ('--archs', '--arch', '--resolutions', '--resolution', '--root',
           '--config', '--img-shape', '--input-size', '--input-shape',
           '--size', '--impl', '--output', '--output-dir', '--outdir',
           '--save-dir', '--result-dir')
# hidden arguments that are no alias: benchmark.py's child-process entry,
# get_flops.py's ``--config`` (merged into the positional after parsing)
HIDDEN_INTERNAL = ('worker', 'config_flag')

# (tool, arguments both parses share, argv with today's names, argv with
# an older spelling)
OLD_SPELLINGS = [
    ('tools/analysis_tools/get_flops.py', [], ['--models', 'vheat-t',
                                               'vheat-s'],
     ['--archs', 'tiny', 'small']),
    ('tools/analysis_tools/get_flops.py', [], ['--models', 'vheat-b'],
     ['--models', 'base']),
    ('tools/analysis_tools/get_flops.py', [], ['--sizes', '224', '512'],
     ['--resolutions', '224', '512']),
    ('tools/analysis_tools/get_flops.py', [], ['cfg.py', '--shape', '64',
                                               '64'],
     ['--config', 'cfg.py', '--shape', '64', '64']),
    ('tools/analysis_tools/get_flops.py', [], ['--tasks', 'det', 'seg'],
     ['--tasks']),
    ('tools/analysis_tools/benchmark.py', [], ['--sizes', '64', '128'],
     ['--resolutions', '64', '128']),
    ('tools/analysis_tools/benchmark_stream.py', [], ['--models', 'vheat-s'],
     ['--arch', 'small']),
    ('tools/analysis_tools/benchmark_stream.py', [], ['--models', 'vheat-s'],
     ['--models', 'small']),
    ('tools/analysis_tools/benchmark_dct.py', [], ['--cases', 'deploy224'],
     ['--models', 'deploy224']),
    ('tools/analysis_tools/visualize_heat.py', ['cfg.py', '--img', 'x.png'],
     ['--shape', '48', '64'], ['--img-size', '48', '64']),
    ('tools/make_demo_data.py', [], ['--data-root', 'd'], ['--root', 'd']),
    ('tools/deployment/benchmark_detector.py', ['cfg.py'],
     ['--out-dir', 'd'], ['--work-dir', 'd']),
    ('tools/deployment/int8_report.py', ['cfg.py', 'w.pth'],
     ['--out-dir', 'd'], ['--work-dir', 'd']),
]


def _shown(parser) -> dict:
    """Option string -> action, for the options ``--help`` shows."""
    return {s: a for a in parser._actions if a.help != argparse.SUPPRESS
            for s in a.option_strings}


def test_every_tool_is_listed():
    """Every Python tool under tools/ is checked here: one added without
    an entry in TOOLS fails this test."""
    found = {osp.relpath(p, REPO_ROOT).replace(osp.sep, '/') for p in
             glob.glob(osp.join(REPO_ROOT, 'tools', '**', '*.py'),
                       recursive=True)}
    assert found == set(TOOLS), (sorted(found - set(TOOLS)),
                                 sorted(set(TOOLS) - found))


@pytest.mark.parametrize('tool', list(TOOLS))
def test_every_argument_has_help(tool):
    parser = tool_parser(tool)
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
def test_positionals_and_vocabulary(tool):
    """The positionals, then the vocabulary: the flags of VOCABULARY the
    tool shows are exactly those listed for it, each with its one meaning,
    and no retired spelling is shown."""
    positionals, vocabulary = TOOLS[tool]
    parser = tool_parser(tool)
    assert [a.dest for a in parser._actions
            if not a.option_strings] == positionals
    shown = _shown(parser)
    assert set(shown) & set(VOCABULARY) == vocabulary, tool
    for flag in vocabulary:
        assert VOCABULARY[flag](shown[flag]), (tool, flag, shown[flag])
    assert not set(shown) & set(RETIRED), tool
    assert '--debug' in shown, f'{tool} has no --debug'


@pytest.mark.parametrize('tool', list(TOOLS))
def test_one_line_errors_through_run_tool(tool):
    """Every tool runs as ``sys.exit(run_tool(main, '<its file name>'))``
    (the deployment tools also name ``DeployError``):
    a missing file, an unreadable checkpoint or a wrong option ends with
    one error line, not a traceback (tests/test_tools/
    test_tidy_errors.py runs them)."""
    with open(osp.join(REPO_ROOT, tool)) as f:
        tree = ast.parse(f.read())
    guards = [node for node in tree.body if isinstance(node, ast.If)
              and ast.unparse(node.test) == "__name__ == '__main__'"]
    assert len(guards) == 1, tool
    body = [ast.unparse(stmt) for stmt in guards[0].body]
    call = f"sys.exit(run_tool(main, '{osp.basename(tool)}'"
    if tool.startswith('tools/deployment/'):
        # the deployment code's own error is reported as one line too
        assert body == ['from mmvheat.deployment import DeployError',
                        call + ', errors=(DeployError,)))'], (tool, body)
    else:
        assert body == [call + '))'], (tool, body)


@pytest.mark.parametrize('tool,base,new,old', OLD_SPELLINGS)
def test_old_spellings_are_hidden_aliases(tool, base, new, old):
    new_args = parse_tool_args(tool, base + new)
    old_args = parse_tool_args(tool, base + old)
    assert vars(new_args) == vars(old_args)
    # and the flag did something: not what the tool takes by default
    assert vars(new_args) != vars(parse_tool_args(tool, base))
    if old[0] != new[0]:  # a renamed flag (not an old value spelling)
        assert old[0] not in _shown(tool_parser(tool))


def test_get_flops_defaults_to_the_models_implementation():
    """get_flops counts what the model computes unless told otherwise;
    its help says how to get the paper's dense count."""
    from mmvheat.models import VHeat
    from mmvheat.ops import DEFAULT_IMPL
    tool = 'tools/analysis_tools/get_flops.py'
    assert VHeat(dict(depths=[1, 1, 1, 1], dims=8)).hco_impl == DEFAULT_IMPL
    assert parse_tool_args(tool, []).hco_impl is None  # the model's own
    action = _shown(tool_parser(tool))['--hco-impl']
    assert '--hco-impl matmul' in action.help
    assert f"'{DEFAULT_IMPL}'" in action.help


# older spellings the docs must not show (hidden aliases still parse, so
# the docs test, which parses every documented command, cannot see them);
# the changelog names them when it says what was renamed
RETIRED_IN_DOCS = ('--resolutions', '--archs', '--arch ', '--impls dense',
                   ':dense', 'make_demo_data.py --root', '--img-size 224',
                   'benchmark_dct.py --models')


def test_docs_use_current_spellings():
    pages = [osp.join(REPO_ROOT, 'README.md'),
             osp.join(REPO_ROOT, 'docs/en/_scripts/benchmark_pages.py')]
    pages += [p for p in glob.glob(osp.join(REPO_ROOT, 'docs', 'en', '**',
                                            '*.md'), recursive=True)
              if osp.basename(p) != 'changelog.md'
              and '/notes/benchmarks/' not in p.replace(osp.sep, '/')]
    found = []
    for page in pages:
        with open(page, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                found += [f'{osp.relpath(page, REPO_ROOT)}:{number}: {old}'
                          for old in RETIRED_IN_DOCS if old in line]
    assert not found, '\n'.join(found)


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
