"""One vocabulary for the command lines of the tools under ``tools/``.

Each flag below means one thing in every tool that has it, and the tools
build it here (``tests/test_tools/test_tool_conventions.py`` checks every
``tools/**/*.py`` against this list):

=================  ========================================================
``--models SPEC``  model specs (:mod:`mmvheat.analysis.specs`)
``--hco-impl I``   the HCO's DCT implementation (``VHeat(hco_impl=...)``);
                   default: the model's own
``--impls I ...``  several implementations, compared side by side
``--shape H W``    one input size
``--sizes S ...``  a sweep of input sizes
``--img-size N``   the backbone's ``img_size`` (its FVE grid), not an input
``--out FILE``     one output file
``--out-dir DIR``  a folder of outputs the tool writes
``--work-dir DIR`` mmengine's work dir (logs, checkpoints, a runner's)
``--data-root D``  where a dataset is
``--debug``        the traceback instead of the one-line error
=================  ========================================================

Older spellings stay as hidden aliases (:func:`hidden_alias`): they parse
to the same arguments and are not shown in ``--help``.
"""
import argparse
import os.path as osp
from typing import Optional, Sequence

DEBUG_ENV = 'MMVHEAT_DEBUG'


def hidden_alias(parser: argparse.ArgumentParser, *flags: str, dest: str,
                 **kwargs) -> argparse.Action:
    """An older spelling of the argument ``dest``: parsed, not shown."""
    return parser.add_argument(*flags, dest=dest, default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS, **kwargs)


def add_debug_arg(parser: argparse.ArgumentParser) -> argparse.Action:
    """``--debug``: :func:`mmvheat.utils.run_tool` shows the traceback of an
    expected failure instead of its one error line."""
    return parser.add_argument(
        '--debug', action='store_true',
        help='show the traceback of an expected failure (a missing or '
        'unreadable file, an offline download, a checkpoint that does not '
        f'fit) instead of one error line; or set {DEBUG_ENV}=1')


def positive_int(text: str) -> int:
    """argparse ``type``: an int of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a positive integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'expected a positive integer, got {value}')
    return value


def add_shape_arg(parser: argparse.ArgumentParser, default=None,
                  help: str = 'input size') -> argparse.Action:
    """``--shape H W``: one input size (height, width)."""
    return parser.add_argument('--shape', nargs=2, type=positive_int,
                               metavar=('H', 'W'), default=default,
                               help=help)


def add_sizes_arg(parser: argparse.ArgumentParser, default,
                  help: str, type=positive_int, nargs: str = '+',
                  metavar: str = 'SIZE') -> argparse.Action:
    """``--sizes S [S ...]``: a sweep of input sizes."""
    return parser.add_argument('--sizes', nargs=nargs, type=type,
                               default=default, metavar=metavar, help=help)


def add_hco_impl_arg(parser: argparse.ArgumentParser,
                     applies_to: str = 'the vHeat models'
                     ) -> argparse.Action:
    """``--hco-impl IMPL``: the HCO's DCT implementation; default None, the
    model's own (a config's ``hco_impl``, else VHeat's default)."""
    from mmvheat.ops import DEFAULT_IMPL, HCO_IMPLS
    return parser.add_argument(
        '--hco-impl', choices=HCO_IMPLS, default=None,
        help=f"the HCO's DCT implementation of {applies_to} (default: the "
        "model's own: the config's hco_impl, else VHeat's default, "
        f"'{DEFAULT_IMPL}')")


def add_out_dir_arg(parser: argparse.ArgumentParser, default: Optional[str],
                    what: str, old: Sequence[str] = (),
                    **kwargs) -> argparse.Action:
    """``--out-dir DIR``: the folder the tool writes ``what`` into; ``old``
    are hidden older spellings of it."""
    default_text = '' if default is None else ' (default: %(default)s)'
    action = parser.add_argument('--out-dir', default=default,
                                 help=f'folder of {what}{default_text}',
                                 **kwargs)
    if old:
        hidden_alias(parser, *old, dest='out_dir')
    return action


def require_file(path: str, what: str) -> str:
    """``path`` if it is a file, else :class:`FileNotFoundError` saying
    ``'{what} not found: {path}'`` (one line, see ``run_tool``)."""
    if not osp.isfile(osp.expanduser(path)):
        raise FileNotFoundError(f'{what} not found: {path}')
    return path
