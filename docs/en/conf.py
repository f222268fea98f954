# Sphinx configuration of the mmvheat documentation (MyST Markdown).
#
# Build (from the repository root):
#   pip install -r requirements/docs.txt
#   sphinx-build -W -b html docs/en docs/en/_build/html
#
# The build needs no network (no intersphinx, a theme installed from PyPI)
# and nothing beyond requirements/docs.txt: the libraries mmvheat imports are
# mocked for autodoc (autodoc_mock_imports below).
# Before reading the sources it regenerates the benchmark pages from the
# committed results under docs/benchmark/ (see _scripts/benchmark_pages.py),
# so those pages never drift from the data.
import inspect
import os
import os.path as osp
import re
import runpy
import sys

from sphinx.ext.autodoc.mock import _MockObject, ismock
from sphinx.util import inspect as sphinx_inspect

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
# notes/benchmarks/summary.md is generated for notes/benchmarks.md to
# include, not a page of its own.
exclude_patterns = ['_build', '_scripts', 'Thumbs.db', '.DS_Store',
                    'notes/benchmarks/summary.md']
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
# The API pages document mmvheat's own code, which imports torch, mmengine,
# timm and the deployment and task libraries. Those are mocked (always, so
# every environment renders the same pages): the build needs only
# requirements/docs.txt, and signatures and docstrings come from mmvheat's
# source as they are.
autodoc_mock_imports = [
    'torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg',
    'mmpretrain', 'timm', 'onnx', 'onnxruntime', 'onnxscript', 'cv2',
    'numpy', 'PIL',
]

html_theme = 'furo'
html_title = f'mmvheat {version}'
html_static_path = []
html_theme_options = {
    'navigation_with_keys': True,
}


# Two limits of autodoc's mocks, handled here so that the API pages read as
# they do with the real libraries installed:
# - a mocked decorator (``@MODELS.register_module()``, ``@torch.no_grad()``,
#   ``@torch.jit.ignore``, timm's ``@register_model``) would replace the
#   class or function it decorates with a mock, hiding its methods and its
#   source link: mocks called with one class or function hand it back;
# - a class deriving from a mocked base (``nn.Module``, ``BaseModule``)
#   inherits the mock's ``__new__(*args, **kwargs)``, which autodoc would
#   show as the class's signature: the class's own ``__init__`` is shown.
_mock_call = _MockObject.__call__


def _mock_call_as_decorator(self, *args, **kwargs):
    if (len(args) == 1 and not kwargs and not ismock(args[0])
            and (inspect.isfunction(args[0]) or inspect.isclass(args[0]))):
        return args[0]
    return _mock_call(self, *args, **kwargs)


_MockObject.__call__ = _mock_call_as_decorator


def _signature_over_mocked_base(app, what, name, obj, options, signature,
                                return_annotation):
    if what != 'class' or not inspect.isclass(obj) or not issubclass(
            obj, _MockObject):
        return None
    sig = inspect.Signature()
    for cls in obj.__mro__:
        if cls is _MockObject:
            break
        if '__init__' in vars(cls):
            sig = inspect.signature(cls.__init__)
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
            break
    # autodoc.typehints, which runs next, reads the types from it too.
    obj.__signature__ = sig
    return sphinx_inspect.stringify_signature(
        sig, show_annotation=False,
        show_return_annotation=False), return_annotation


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
    # before autodoc.typehints records the types of the signature
    app.connect('autodoc-process-signature', _signature_over_mocked_base,
                priority=100)
    app.connect('autodoc-process-docstring', _escape_docstring)
