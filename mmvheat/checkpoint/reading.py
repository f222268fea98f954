"""Reading and writing checkpoint files, safely.

:func:`read_checkpoint` is the one reader of every path that opens a weight
file: torch's zip format through ``weights_only=True`` (plus the types
mmengine and timm's ``train.py`` write, and an inert stand-in for the yacs
config of the authors' files), or ``.safetensors``. A bad file gives one
message everywhere. :func:`save_weights` writes either format.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from typing import Any, Callable, List, Optional

import numpy as np
import torch

from mmvheat.download import download_checkpoint, is_url

__all__ = [
    'CheckpointError', 'UnsafeCheckpointError', 'InertCfgNode',
    'UNSAFE_ENV', 'read_checkpoint', 'safe_torch_load',
    'mmengine_safe_globals', 'is_safetensors', 'save_weights'
]

UNSAFE_ENV = 'MMVHEAT_UNSAFE_LOAD'


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used as asked (missing, unreadable,
    corrupt, or its format, keys or shapes do not fit)."""


class UnsafeCheckpointError(CheckpointError):
    """A well-formed checkpoint that holds objects outside the allowlist
    (only then is ``MMVHEAT_UNSAFE_LOAD=1`` the way out)."""


class InertCfgNode:
    """Stands in for yacs' ``CfgNode`` when reading the authors' checkpoints.

    Their classification files pickle the trainer's config (a ``CfgNode``, a
    dict subclass) under ``config``. Unpickling "creates" this class, which
    hands back a plain ``OrderedDict``: torch's weights-only unpickler fills
    it with the config's items (and its flags as attributes). No yacs import,
    no yacs code run.
    """

    def __new__(cls, *args, **kwargs) -> 'OrderedDict':
        return OrderedDict()


def _numpy_globals() -> List[Any]:
    """numpy's pickle entry points, under every module name they are
    pickled as (numpy 1 ``numpy.core``, numpy 2 ``numpy._core``)."""
    items: List[Any] = [np.ndarray, np.dtype]
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        items += [(fn, f'numpy.core.multiarray.{name}'),
                  (fn, f'numpy._core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [
            getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')
        ]
    return items


def _history_buffer_getattr() -> Callable:
    """A ``getattr`` that resolves only HistoryBuffer's statistics methods."""
    from mmengine.logging import HistoryBuffer

    default_methods = ('min', 'max', 'current', 'mean')

    def restricted_getattr(obj, name):
        allowed = name in default_methods or (
            name in HistoryBuffer._statistics_methods)
        if obj is HistoryBuffer and allowed:
            return getattr(obj, name)
        raise pickle.UnpicklingError(
            f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint:'
            ' only HistoryBuffer statistics methods are allowed')

    return restricted_getattr


def mmengine_safe_globals() -> List[Any]:
    """The types mmengine puts into its checkpoints (and the
    ``argparse.Namespace`` of timm's ``train.py``, an attribute bag), for
    ``torch.serialization.safe_globals``."""
    from mmengine.logging import HistoryBuffer
    return [
        HistoryBuffer, (_history_buffer_getattr(), 'builtins.getattr'),
        (InertCfgNode, 'yacs.config.CfgNode'), argparse.Namespace
    ] + _numpy_globals()


def _pickle_problem(filename: str) -> Optional[str]:
    """Why the pickle inside a torch zip file is malformed, or None.

    Walks the opcodes of ``*/data.pkl`` without executing them
    (``pickletools``): a truncated stream, an unknown opcode or a ``GLOBAL``
    whose names are not Python identifiers mean a corrupt file, not an
    unsafe one.
    """
    import pickletools
    try:
        with zipfile.ZipFile(filename) as archive:
            names = [n for n in archive.namelist()
                     if n.endswith('data.pkl')]
            if not names:
                return 'the zip archive holds no data.pkl'
            data = archive.read(names[0])
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name == 'GLOBAL':
                parts = str(arg).split(' ')
                if len(parts) != 2 or not all(
                        part and all(p.isidentifier()
                                     for p in part.split('.'))
                        for part in parts):
                    return f'malformed global {arg!r} in its pickle'
    except Exception as err:  # zipfile.BadZipFile, ValueError, CRC errors
        return f'{type(err).__name__}: {err}'
    return None


def safe_torch_load(filename: str, map_location=None) -> Any:
    """``torch.load`` with ``weights_only=True`` plus mmengine's types.

    Args:
        filename (str): A local checkpoint path.
        map_location: As for ``torch.load``. Defaults to None.

    Returns:
        The loaded object.

    Raises:
        UnsafeCheckpointError: The file is a well-formed checkpoint that
            holds objects outside the allowlist (and ``MMVHEAT_UNSAFE_LOAD=1``
            is not set); the message names them.
        CheckpointError: The allowlisted unpickler failed on a malformed
            pickle (a corrupt file): no advice to load it unsafely.
    """
    if not hasattr(torch.serialization, 'safe_globals'):
        # torch < 2.5: no allowlists; torch.load's default (full unpickling
        # before 2.6) is what mmengine expects.
        return torch.load(filename, map_location=map_location)
    if os.environ.get(UNSAFE_ENV, '') == '1':
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    with torch.serialization.safe_globals(mmengine_safe_globals()):
        try:
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
        except pickle.UnpicklingError as err:
            problem = _pickle_problem(filename)
            if problem is not None:
                raise CheckpointError(
                    f'its pickle is malformed ({problem}): the file is '
                    'corrupt') from err
            found = re.findall(r'GLOBAL ([\w.]+)', str(err))
            raise UnsafeCheckpointError(
                f'Could not load {filename!r} safely (weights_only=True): '
                'it is a well-formed checkpoint, but it holds objects '
                'outside the types mmengine writes'
                + (f' ({", ".join(sorted(set(found)))})' if found else '')
                + f'.\nIf you trust this file, set {UNSAFE_ENV}=1 to load it '
                'with full unpickling.') from err


def _looks_like(path: str) -> str:
    """A hint on what a non-checkpoint file holds, from its first bytes."""
    try:
        with open(path, 'rb') as f:
            head = f.read(64)
    except OSError:
        return ''
    if not head:
        return ' (the file is empty)'
    text = head.decode('utf-8', 'replace')
    if head.lstrip()[:1] in (b'<', b'{') or text.isprintable() or all(
            c.isprintable() or c.isspace() for c in text):
        return f' (it starts with text: {text[:40]!r})'
    return ''


def read_checkpoint(path: str, map_location='cpu',
                    url: Optional[str] = None) -> dict:
    """Load a checkpoint file or URL safely (``weights_only=True``).

    The one reader of every path that opens a checkpoint (tools/test.py,
    ``--resume``, ``load_from``, ``init_cfg``, the converter, the ONNX
    exporter, timm), so a bad file gives the same message everywhere:

    * missing: :class:`FileNotFoundError` naming the path;
    * ``.safetensors`` (recognised by its header, whatever the name): read
      as ``{'state_dict': tensors, 'meta': its metadata}``;
    * neither torch's zip format nor safetensors (text, an HTML page, a
      truncated download, a file of torch < 1.6): :class:`CheckpointError`;
    * a zip whose pickle or tensor data are corrupt: :class:`CheckpointError`
      (never advising ``MMVHEAT_UNSAFE_LOAD``);
    * a well-formed file holding objects outside the allowlist:
      :class:`UnsafeCheckpointError`, which names them and is the only one
      that mentions ``MMVHEAT_UNSAFE_LOAD``.

    A bad file in the download cache is named with its URL and the command
    that removes it (it is not deleted: the next run downloads it again once
    it is gone).

    Args:
        path (str): A local file, or an ``http(s)://`` URL: downloaded once
            into the cache (see :mod:`mmvheat.download`), then read as a
            local file.
        map_location: As for ``torch.load``. Defaults to 'cpu'.
        url (str, optional): The URL a local ``path`` was downloaded from
            (for messages). Defaults to None.

    Returns:
        dict: The file's top-level dict.
    """
    path = str(path)
    if is_url(path):
        url, path = path, download_checkpoint(path)
    path = osp.expanduser(path)
    origin, fix = '', ''
    if url:
        origin = f' (the cached download of {url})'
        fix = (f'\nRemove it with `rm "{path}"` and run again to download '
               'it afresh.')
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    if is_safetensors(path):
        return _read_safetensors(path, origin, map_location)
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f'could not read {path}{origin} as a torch checkpoint: it is not '
            f"in torch's zip format{_looks_like(path)} nor .safetensors; a "
            'truncated or corrupt download, an error page, or a file of '
            f'torch < 1.6 (re-save that with a current torch){fix}')
    try:
        ckpt = safe_torch_load(path, map_location=map_location)
    except UnsafeCheckpointError as err:
        raise UnsafeCheckpointError(
            str(err).replace(repr(path), repr(path) + origin, 1)) \
            from err.__cause__
    except Exception as err:  # truncated, corrupt or not a torch file
        kind = '' if isinstance(err, CheckpointError) else \
            f'{type(err).__name__}: '
        first = str(err).splitlines()[0] if str(err) else ''
        raise CheckpointError(
            f'could not read {path}{origin} as a torch checkpoint: '
            f'{kind}{first}{fix}') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}{origin} holds a '
                              f'{type(ckpt).__name__}, not a checkpoint dict')
    return ckpt


def is_safetensors(path: str) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte
    little-endian header length, then that many bytes of JSON."""
    try:
        with open(path, 'rb') as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    length = struct.unpack('<Q', head[:8])[0]
    return head[8:9] == b'{' and 8 + length <= size


def _read_safetensors(path: str, origin: str, map_location) -> dict:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError:  # pragma: no cover - timm requires it
        raise CheckpointError(
            f'{path} is a .safetensors file; reading it needs the '
            '`safetensors` package (pip install safetensors)') from None
    try:
        with safe_open(path, framework='pt') as f:
            meta = dict(f.metadata() or {})
            tensors = OrderedDict((k, f.get_tensor(k)) for k in f.keys())
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f'could not read {path}{origin} as .safetensors: {err}') from err
    if map_location not in (None, 'cpu') and not callable(map_location):
        tensors = OrderedDict(
            (k, v.to(map_location)) for k, v in tensors.items())
    return dict(state_dict=tensors, meta=meta)


def save_weights(state_dict: dict, path: str,
                 meta: Optional[dict] = None) -> str:
    """Write weights as an mmengine checkpoint (``state_dict`` and
    ``meta``), or as ``.safetensors`` when ``path`` ends so (``meta``
    values then go into its string metadata, JSON-encoded).

    Args:
        state_dict (dict): Tensors by key.
        path (str): Output file; its folder is created.
        meta (dict, optional): Provenance. Defaults to None.

    Returns:
        str: ``path``.
    """
    os.makedirs(osp.dirname(osp.abspath(path)) or '.', exist_ok=True)
    tensors = OrderedDict((k, v.detach().contiguous())
                          for k, v in state_dict.items())
    if str(path).endswith('.safetensors'):
        from safetensors.torch import save_file
        # safetensors refuses tensors sharing memory: own copies
        save_file({k: v.clone() for k, v in tensors.items()}, str(path),
                  metadata={k: json.dumps(v) for k, v in (meta or {}).items()})
    else:
        torch.save(dict(state_dict=tensors, meta=meta or {}), str(path))
    return str(path)
