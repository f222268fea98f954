"""The docs run: every fenced ``python`` block of README.md and docs/en (the
benchmark pages that docs/en/_scripts/benchmark_pages.py generates included)
is executed, one namespace per page, blocks in page order; every
``python tools/...`` and ``bash tools/...`` command in a shell block is parsed
by that tool's own argument parser, and the cheap ones run.

A block that cannot run here is marked in the Markdown, on the last
non-blank line before its fence (see docs/en/contributing.md):

    <!-- skip-test: needs the COCO dataset -->   skipped, with that reason
    <!-- slow-test: compiles with inductor -->   runs in the slow suite only

A skipped block is still compiled and its imports still run. Shell wrappers
(``bash tools/dist_train.sh ...``) run with ``python3``/``srun`` replaced by
a recorder, and the tool command they would start is parsed.
"""
import argparse
import ast
import contextlib
import importlib
import importlib.util
import io
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from glob import glob
from typing import Optional

import pytest

from helpers.paths import REPO_ROOT as ROOT
from helpers.tools import load_tool, parse_tool_args

# written by docs/en/conf.py before a docs build; the test writes its own
GENERATED = 'docs/en/notes/benchmarks'
MARK = re.compile(r'<!--\s*(skip|slow)-test:\s*(.+?)\s*-->\s*$')
FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})\s*(.*)$')
SHELL = {'', 'bash', 'sh', 'shell', 'console'}
TOOL = re.compile(r'(?:^|\s)((?:python3?|bash)\s+tools/.*)$')
# tools whose documented commands also run (seconds), in a scratch folder
RUN = {'tools/make_demo_data.py'}
# shell tools only syntax-checked (``bash -n``): install.sh installs packages
NOT_RUN = {'tools/install.sh'}
# placeholders of numbers (``--shape H W``, ``--wait-time SECONDS``)
NUMBER = re.compile(r'[A-Z]|SECONDS|GPUS|NUM_\w+')


@dataclass
class Block:
    page: str  # path shown in reports
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: Optional[str] = None
    slow: Optional[str] = None


def read_blocks(path: str, page: str) -> list:
    """The fenced code blocks of a Markdown file, with their markers."""
    lines = open(path, encoding='utf-8').read().splitlines()
    blocks, i, last, directives = [], 0, '', []
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and not m.group(3) and directives and \
                m.group(2).startswith(directives[-1]):
            directives.pop()  # the end of a directive
            m = None
        elif m and m.group(3).startswith('{') and \
                not m.group(3).startswith('{code'):
            directives.append(m.group(2))  # ``{note}``: read inside it
            m = None
        if not m:
            last = lines[i] if lines[i].strip() else last
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3)
        end = i + 1
        while end < len(lines) and not re.match(
                rf'^\s*{fence[0]}{{{len(fence)},}}\s*$', lines[end]):
            end += 1
        body = [s[indent:] if not s[:indent].strip() else s.lstrip()
                for s in lines[i + 1:end]]
        words = info.split()
        if words and words[0].startswith('{'):  # ``{code-block} python``
            words = words[1:]
            while body and body[0].startswith(':'):  # its options
                body.pop(0)
        lang = words[0].lower() if words else ''
        block = Block(page, i + 1, lang, '\n'.join(body))
        marker = MARK.search(last)
        if marker:
            setattr(block, marker.group(1), marker.group(2))
        blocks.append(block)
        i, last = end + 1, ''
    return blocks


def generate_benchmark_pages(out_dir: str) -> list:
    """Write the generated benchmark pages (no plots) into ``out_dir``."""
    script = osp.join(ROOT, 'docs/en/_scripts/benchmark_pages.py')
    spec = importlib.util.spec_from_file_location('benchmark_pages', script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, 'save_figure'):  # the plots are not read here
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        module.save_figure = lambda fig, path: plt.close(fig)
    with contextlib.redirect_stderr(io.StringIO()):
        return module.main(['--results', osp.join(ROOT, 'docs/benchmark'),
                            '--out', out_dir])


def collect(root: str = ROOT, generated: Optional[str] = None) -> list:
    """Every block of README.md and docs/en/**/*.md under ``root``, and of
    the pages generated into ``generated``."""
    pages = [osp.join(root, 'README.md')] + sorted(
        glob(osp.join(root, 'docs/en/**/*.md'), recursive=True))
    skip = (osp.join(root, GENERATED) + os.sep,
            osp.join(root, 'docs/en/_build') + os.sep)
    blocks = []
    for path in pages:
        if osp.exists(path) and not path.startswith(skip):
            blocks += read_blocks(path, osp.relpath(path, root))
    for path in sorted(glob(osp.join(generated, '*.md')) if generated
                       else []):
        blocks += read_blocks(
            path, f'{GENERATED}/{osp.basename(path)} (generated)')
    return blocks


def commands(block: Block) -> list:
    """(line, command) for each tool command of a shell block: continued
    lines joined, comments dropped, ``NAME=value`` variables expanded."""
    logical, found, variables = [], [], {}
    for number, line in enumerate(block.code.split('\n'), block.line + 1):
        if logical and logical[-1][1].endswith('\\'):
            logical[-1][1] = logical[-1][1][:-1] + ' ' + line
        else:
            logical.append([number, line])
    for number, line in logical:
        line = re.split(r'(?:^|\s)#', line)[0]
        assign = re.fullmatch(r'\s*(?:export\s+)?(\w+)=("[^"]*"|\S*)\s*',
                              line)
        if assign:
            variables[assign.group(1)] = assign.group(2).strip('"')
        for name, value in variables.items():
            line = re.sub(rf'\$\{{?{name}\b\}}?', value, line)
        match = TOOL.search(line)
        if match:
            found.append((number, match.group(1).strip()))
    return found


def to_argv(command: str) -> list:
    """A synopsis as argv: optional ``[...]`` parts taken, the first of
    ``a | b`` alternatives, CAPITAL placeholders as plain values."""
    command = re.sub(r'\s\|\s[^\]]*', ' ', command)
    command = re.sub(r'(?<=\w)\|[\w-]+', '', command)
    argv = []
    for token in shlex.split(command.replace('[', ' ').replace(']', ' ')):
        if token in ('...', 'ARGS'):
            continue
        if re.fullmatch(r'[A-Z][A-Z0-9_=]*', token):  # a placeholder
            token = '8' if NUMBER.fullmatch(token) else token.lower()
        argv.append(token)
    return argv




def parse_tool(path: str, argv: list) -> argparse.Namespace:
    """``argv`` parsed as the tool at ``path`` parses it
    (:func:`helpers.tools.parse_tool_args`); a rejected argument fails the
    test with the parser's message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parse_tool_args(path, argv)
    except SystemExit as exc:
        if exc.code:
            message = err.getvalue().strip().splitlines()[-1:]
            pytest.fail(f'{path} {shlex.join(argv)}: {message}',
                        pytrace=False)


def check_imports(code: str, name: str) -> None:
    """Compile ``code`` and run its import statements only."""
    tree = ast.parse(code, name)
    imports = [n for n in tree.body if isinstance(n, (ast.Import,
                                                      ast.ImportFrom))]
    exec(compile(ast.Module(imports, []), name, 'exec'), {})


def _config_imports() -> set:
    """The ``custom_imports`` of the repository's configs."""
    found = set()
    for path in glob(osp.join(ROOT, 'configs/**/*.py'), recursive=True):
        for node in ast.parse(open(path).read()).body:
            if (isinstance(node, ast.Assign)
                    and ast.unparse(node.targets[0]) == 'custom_imports'):
                found.add(tuple(ast.literal_eval(
                    node.value.keywords[0].value)))
    return found


def check_config(namespace: dict) -> None:
    """A config snippet imports what the configs import, and its
    ``type='mmvheat.VHeat'`` backbone builds."""
    if 'custom_imports' in namespace:
        imports = namespace['custom_imports']['imports']
        assert tuple(imports) in _config_imports(), \
            f'custom_imports {imports} differ from the configs\''
        for name in imports:
            importlib.import_module(name)
    model = namespace.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if isinstance(backbone, dict) and str(backbone.get('type')).startswith(
            'mmvheat.'):
        from mmvheat.registry import MODELS
        MODELS.build({k: v for k, v in backbone.items() if k != '_delete_'})


def run_python(block: Block, namespace: dict) -> None:
    """Execute a python block in its page's namespace (skip: compile and
    import only)."""
    name = f'{block.page}:{block.line}'
    if block.skip:
        check_imports(block.code, name)
        pytest.skip(f'{name}: {block.skip}')
    exec(compile(block.code, name, 'exec'), namespace)
    check_config(namespace)


def record_shell(script: str, argv: list, workdir: str) -> list:
    """Run a shell tool with ``python3``, ``$PYTHON`` and ``srun`` recording
    their arguments; the ``tools/*.py`` command lines they would run."""
    bin_dir = osp.join(workdir, 'recorder')
    calls = osp.join(bin_dir, 'calls')
    os.makedirs(calls, exist_ok=True)
    stub = osp.join(bin_dir, 'python3')
    with open(stub, 'w') as f:
        f.write(f'#!/bin/sh\nprintf "%s\\0" "$@" > $(mktemp -p {calls})\n')
    os.chmod(stub, 0o755)
    for alias in ('python', 'srun'):
        if not osp.exists(osp.join(bin_dir, alias)):
            os.symlink(stub, osp.join(bin_dir, alias))
    for name in os.listdir(calls):
        os.remove(osp.join(calls, name))
    env = dict(os.environ, PYTHON=stub,
               PATH=bin_dir + os.pathsep + os.environ['PATH'])
    proc = subprocess.run(['bash', osp.join(ROOT, script)] + argv, env=env,
                          cwd=workdir, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f'{script}: {proc.stderr}'
    found = []
    for name in os.listdir(calls):
        args = open(osp.join(calls, name)).read().split('\0')[:-1]
        for i, arg in enumerate(args):
            rel = osp.relpath(arg, ROOT) if osp.isabs(arg) else arg
            if rel.startswith('tools/') and rel.endswith('.py'):
                found.append((rel, args[i + 1:]))
    return found


def check_command(command: str, workdir: str) -> str:
    """Parse (and where cheap, run) one ``python/bash tools/...`` command;
    returns what was done."""
    argv = to_argv(command)
    interpreter, script, args = argv[0], argv[1], argv[2:]
    assert osp.isfile(osp.join(ROOT, script)), f'no such tool: {script}'
    if interpreter != 'bash':
        parse_tool(script, args)
        if script in RUN:
            old = os.getcwd()
            os.chdir(workdir)
            try:
                load_tool(script).main(args)
            finally:
                os.chdir(old)
            return 'run'
        return 'parsed'
    subprocess.run(['bash', '-n', osp.join(ROOT, script)], check=True)
    if script in NOT_RUN:
        return 'parsed'
    started = record_shell(script, args, workdir)
    assert started, f'{script} started no tool'
    for tool, tool_args in started:
        parse_tool(tool, tool_args)
    return 'run'


# ---------------------------------------------------------------- the tests

# MMVHEAT_DOCS_ROOT: collect another tree instead (the meta-test's pages)
DOCS_ROOT = os.environ.get('MMVHEAT_DOCS_ROOT', ROOT)
_PAGES_DIR = tempfile.TemporaryDirectory(prefix='mmvheat-doc-pages-')
if DOCS_ROOT == ROOT:
    generate_benchmark_pages(_PAGES_DIR.name)
BLOCKS = collect(DOCS_ROOT, generated=_PAGES_DIR.name)
NAMESPACES = {}


def _param(block, *values, line=None):
    marks = [pytest.mark.slow] if block.slow else []
    return pytest.param(block, *values, marks=marks,
                        id=f'{block.page}:{line or block.line}')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    """A scratch folder where ``configs/`` and ``docs/`` resolve."""
    path = tmp_path_factory.mktemp('docs')
    for name in ('configs', 'docs'):
        os.symlink(osp.join(ROOT, name), path / name)
    return str(path)


@pytest.mark.parametrize(
    'block', [_param(b) for b in BLOCKS if b.lang == 'python'])
def test_python_block(block, workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    namespace = NAMESPACES.setdefault(block.page, {'__name__': '__main__'})
    run_python(block, namespace)


@pytest.mark.parametrize('block,command', [
    _param(b, c, line=line) for b in BLOCKS if b.lang in SHELL
    for line, c in commands(b)])
def test_tool_command(block, command, workdir):
    if block.skip:
        to_argv(command)
        pytest.skip(f'{block.page}:{block.line}: {block.skip}')
    check_command(command, workdir)


def test_the_docs_have_snippets():
    if DOCS_ROOT != ROOT:
        pytest.skip('collecting another tree')
    pages = {b.page for b in BLOCKS}
    assert 'README.md' in pages and any('(generated)' in p for p in pages)
    assert sum(b.lang == 'python' for b in BLOCKS) >= 10
    assert sum(len(commands(b)) for b in BLOCKS if b.lang in SHELL) >= 40


def test_backbone_argument_table():
    """The argument table of the configs guide names VHeat's arguments."""
    import inspect

    from mmvheat.models import VHeat
    text = open(osp.join(ROOT, 'docs/en/user_guides/configs.md')).read()
    table = text.split('| argument |', 1)[1].split('\n\n', 1)[0]
    documented = re.findall(r'^\| `(\w+)` \|', table, re.M)
    assert sorted(documented) == sorted(inspect.signature(VHeat).parameters)


# ------------------------------------------------ the collector, tested


GUIDE = '''# A new guide

```python
x = 1
```

<!-- skip-test: needs the COCO dataset -->

```python
import os
open('data/coco/missing.json')
```

- a list item:

  ```python
  assert x == 1
  raise ValueError('broken snippet')
  ```

````{note}
```python
y = 2
```
````

```{figure} plot.png
A caption.
```

<!-- skip-test: needs a GPU -->
```bash
nvidia-smi && python tools/train.py CONFIG
```

```bash
M="--sizes 64 128"
python tools/analysis_tools/benchmark.py $M \\
    --modes infer [--dtypes fp32]  # a comment
bash tools/dist_train.sh CONFIG 2 [--amp]
python tools/train.py CONFIG --no-such-flag
```
'''


def test_collector_finds_runs_and_fails(tmp_path, monkeypatch):
    page = tmp_path / 'docs/en/user_guides/new.md'
    page.parent.mkdir(parents=True)
    page.write_text(GUIDE)
    blocks = collect(str(tmp_path))
    python = [b for b in blocks if b.lang == 'python']
    assert [b.line for b in python] == [3, 9, 16, 22]
    assert len(blocks) == 6  # the figure is no code block
    assert {b.page for b in blocks} == {'docs/en/user_guides/new.md'}
    assert python[1].skip == 'needs the COCO dataset'
    assert not python[0].skip and not python[2].skip
    namespace = {}
    run_python(python[0], namespace)
    with pytest.raises(pytest.skip.Exception, match='COCO'):
        run_python(python[1], namespace)
    # the broken block fails (it is not skipped), after the page's first
    with pytest.raises(ValueError, match='broken snippet'):
        run_python(python[2], namespace)
    broken = Block('x.md', 1, 'python', 'from mmvheat import no_such_name')
    broken.skip = 'needs a GPU'
    with pytest.raises(ImportError):  # a skipped block's imports still run
        run_python(broken, {})

    gpu, shell = [b for b in blocks if b.lang == 'bash']
    assert gpu.skip == 'needs a GPU' and not shell.skip
    found = commands(shell)
    assert [line for line, _ in found] == [38, 40, 41]
    assert to_argv(found[0][1]) == [
        'python', 'tools/analysis_tools/benchmark.py', '--sizes', '64',
        '128', '--modes', 'infer', '--dtypes', 'fp32']
    assert check_command(found[0][1], str(tmp_path)) == 'parsed'
    assert check_command(found[1][1], str(tmp_path)) == 'run'
    with pytest.raises(pytest.fail.Exception, match='no-such-flag'):
        check_command(found[2][1], str(tmp_path))


def test_a_broken_snippet_fails_the_run(tmp_path):
    """The same guide through pytest: the broken block is reported failed,
    the marked one skipped with its reason."""
    page = tmp_path / 'docs/en/user_guides/new.md'
    page.parent.mkdir(parents=True)
    page.write_text(GUIDE)
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', __file__, '-q', '-rfs', '-p',
         'no:cacheprovider', '-k', 'test_python_block'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, MMVHEAT_DOCS_ROOT=str(tmp_path)))
    out = proc.stdout
    assert proc.returncode == 1, out
    assert 'FAILED' in out and 'new.md:16' in out and 'broken snippet' in out
    assert 'SKIPPED' in out and 'needs the COCO dataset' in out
    assert '1 failed, 2 passed, 1 skipped' in out, out
