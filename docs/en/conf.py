# Sphinx configuration of the mmvheat documentation (MyST Markdown).
#
# Build (from the repository root):
#   pip install -r requirements/docs.txt
#   sphinx-build -W -b html docs/en docs/en/_build/html
#
# The build needs no network: no intersphinx, a theme installed from PyPI.
# Before reading the sources it regenerates the benchmark pages from the
# committed results under docs/benchmark/ (see _scripts/benchmark_pages.py),
# so those pages never drift from the data.
import os
import os.path as osp
import re
import runpy
import sys

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(HERE))
# Document the checkout being built, not another installed copy.
sys.path.insert(0, ROOT)

_version = runpy.run_path(osp.join(ROOT, 'mmvheat', 'version.py'))

project = 'mmvheat'
author = 'mmvheat contributors'
copyright = '2026, mmvheat contributors'  # noqa: A001
version = _version['__version__']
release = version

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]

source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build', '_scripts', 'Thumbs.db', '.DS_Store']
templates_path = []

# MyST: anchors for headings (so `page.md#section` links resolve), fenced
# directives with colons, and $...$ maths.
myst_enable_extensions = ['colon_fence', 'dollarmath', 'deflist']
myst_heading_anchors = 3

# autodoc: Google-style docstrings (Args:, Returns:), members in source order.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
}
# Names in docstrings that autodoc cannot resolve are a nit, not an error.
nitpicky = False

html_theme = 'furo'
html_title = f'mmvheat {version}'
html_static_path = []
html_theme_options = {
    'navigation_with_keys': True,
}


def _generate_benchmark_pages(app, config):
    """Regenerate the benchmark pages and plots before any source is read."""
    script = osp.join(HERE, '_scripts', 'benchmark_pages.py')
    namespace = runpy.run_path(script)
    namespace['main']([
        '--results', osp.join(ROOT, 'docs', 'benchmark'),
        '--out', osp.join(HERE, 'notes', 'benchmarks'),
    ])


# Docstrings write maths as plain text (``|out - ref| / |ref|``, ``B*H``),
# which reStructuredText reads as substitutions and emphasis. Escape those
# characters outside inline literals, literal blocks and doctests, so the
# docstrings render as written without changing the code.
_LITERAL = re.compile(r'(``.+?``)')
_STAR = re.compile(r"(?<=[\w')\]])\*(?=[\w('(\[])")


def _escape_plain_maths(text):
    parts = _LITERAL.split(text)
    for i in range(0, len(parts), 2):  # even items are outside ``...``
        parts[i] = _STAR.sub(r'\\*', parts[i].replace('|', r'\|'))
    return ''.join(parts)


def _escape_docstring(app, what, name, obj, options, lines):
    literal_indent = None
    expect_literal, prev_indent = False, 0
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        if expect_literal and stripped:
            expect_literal = False
            if indent > prev_indent:
                literal_indent = prev_indent
                continue
        if not stripped or stripped.startswith(('>>>', '...', '| ', '.. ')):
            continue
        if stripped.endswith('::'):
            expect_literal, prev_indent = True, indent
        lines[i] = line[:indent] + _escape_plain_maths(stripped)


def setup(app):
    # Headless plots: no display is needed to draw them.
    os.environ.setdefault('MPLBACKEND', 'Agg')
    app.connect('config-inited', _generate_benchmark_pages)
    app.connect('autodoc-process-docstring', _escape_docstring)
