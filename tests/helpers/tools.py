"""The repository's tools as modules: their argument parsers, without
running them (tests/test_tools/test_tool_conventions.py and the docs'
command check, tests/test_docs/test_doc_snippets.py)."""
import argparse
import importlib.util
import os.path as osp

import pytest

from .paths import REPO_ROOT

_TOOLS = {}


def load_tool(path: str):
    """The tool at ``path`` (relative to the repository) as a module,
    imported once."""
    if path not in _TOOLS:
        name = 'tool_' + osp.splitext(path)[0].replace('/', '_')
        spec = importlib.util.spec_from_file_location(
            name, osp.join(REPO_ROOT, path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[path] = module
    return _TOOLS[path]


class _Parsed(Exception):
    """Raised instead of going on after the parse: the parser and what it
    returned."""

    def __init__(self, parser, namespace):
        super().__init__()
        self.parser, self.namespace = parser, namespace


def _run_main_to_parse(path: str, argv: list, parse: bool) -> _Parsed:
    real = argparse.ArgumentParser.parse_args

    def stop(self, args=None, namespace=None):
        raise _Parsed(self, real(self, args, namespace) if parse else None)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, 'parse_args', stop)
        try:
            load_tool(path).main(argv)
        except _Parsed as parsed:
            return parsed
    raise AssertionError(f'{path}: main() never parsed its arguments')


def tool_parser(path: str) -> argparse.ArgumentParser:
    """The parser of the tool at ``path``: its ``main`` run up to the
    parse."""
    return _run_main_to_parse(path, [], parse=False).parser


def parse_tool_args(path: str, argv: list) -> argparse.Namespace:
    """``argv`` parsed as the tool at ``path`` parses it: its own
    ``parse_args`` or ``build_parser`` where it has one (with whatever that
    does after parsing), else its ``main`` up to the parse. A bad argument
    exits as argparse does (``SystemExit``)."""
    module = load_tool(path)
    if hasattr(module, 'parse_args'):
        return module.parse_args(argv)
    if hasattr(module, 'build_parser'):
        return module.build_parser().parse_args(argv)
    return _run_main_to_parse(path, argv, parse=True).namespace
