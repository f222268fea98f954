"""Checkpoints by URL: download once into a local cache.

:func:`download_checkpoint` turns an ``http(s)://`` URL into a local file:

* the cache is torch hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``,
  by default ``~/.cache/torch/hub/checkpoints``), or ``$MMVHEAT_CACHE_DIR``;
  files are named after the URL's last path component, as torch hub and
  mmengine name them, so copies they downloaded are reused;
* the body goes to a temporary file in the cache folder, is checked
  (length against ``Content-Length``, torch's zip format, and the sha256
  prefix when the name ends in one, e.g. ``-1a2b3c4d.pth``) and only then
  renamed into place: a failed or partial download never leaves a cache
  entry;
* concurrent processes (the ranks of a distributed run) take a file lock, so
  one downloads and the others wait and read the cached file; the lock file
  is removed when the download ends, whether it succeeded or failed;
* ``MMVHEAT_OFFLINE=1`` forbids downloading: a URL must already be cached.

Standard library only (``urllib``).
"""
import contextlib
import hashlib
import http.client
import os
import os.path as osp
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Iterator, Optional

from mmengine.logging import print_log

__all__ = [
    'CACHE_ENV', 'OFFLINE_ENV', 'DownloadError', 'is_url', 'cache_dir',
    'cached_path', 'download_checkpoint'
]

CACHE_ENV = 'MMVHEAT_CACHE_DIR'
OFFLINE_ENV = 'MMVHEAT_OFFLINE'
TIMEOUT_S = 60
_CHUNK = 1 << 20
_HASH_SUFFIX = re.compile(r'-([0-9a-f]{8,64})\.[^.]+$')


class DownloadError(RuntimeError):
    """A checkpoint URL that could not be downloaded (nothing was cached)."""


def is_url(path) -> bool:
    """Whether ``path`` is an ``http://`` or ``https://`` URL."""
    return isinstance(path, str) and path[:8].lower().startswith(
        ('http://', 'https://'))


def cache_dir() -> str:
    """The download cache: ``$MMVHEAT_CACHE_DIR`` if set, else torch hub's
    ``checkpoints`` folder (which follows ``$TORCH_HOME``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return osp.abspath(osp.expanduser(env))
    import torch.hub
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def cached_path(url: str, directory: Optional[str] = None) -> str:
    """Where ``url`` is (or will be) cached.

    Args:
        url (str): An http(s) URL whose path ends in a file name.
        directory (str, optional): Cache folder. Defaults to
            :func:`cache_dir`.
    """
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise DownloadError(f'cannot name a cache file for {url}: the URL '
                            'path does not end in a file name')
    return osp.join(directory or cache_dir(), name)


def _how_to_fix(url: str, dst: str) -> str:
    return (f'Download it by hand (e.g. `wget -O {osp.basename(dst)} '
            f'"{url}"` or a browser), then pass the local path instead of '
            f'the URL, or put the file at {dst}, where it is looked up first '
            f'(cache folder: set {CACHE_ENV} to change it).')


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """An exclusive lock between processes, on a lock file that is removed
    again when the holder is done (success or failure), so no ``.lock`` file
    stays in the cache. A waiter that wakes on a lock file already removed
    takes the lock anew. A no-op where fcntl is missing (downloads still end
    atomically)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the holder removed it: lock the current file
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)  # before unlocking: waiters then start over
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class _Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, name: str, total: Optional[int], enabled: bool):
        self.name, self.total, self.enabled = name, total, enabled
        self.start = self.last = time.monotonic()

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and not final):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6) / 1e6
        if self.total:
            text = (f'{100.0 * done / self.total:5.1f}% '
                    f'{done / 1e6:.1f}/{self.total / 1e6:.1f} MB')
        else:
            text = f'{done / 1e6:.1f} MB'
        sys.stderr.write(f'\rDownloading {self.name}: {text} '
                         f'{rate:.1f} MB/s' + ('\n' if final else ''))
        sys.stderr.flush()


def _fetch(url: str, dst: str, progress: bool) -> None:
    """Download ``url`` to ``dst`` through a checked temporary file."""
    name = osp.basename(dst)
    hash_match = _HASH_SUFFIX.search(name)
    sha = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f'.{name}.', suffix='.part',
                               dir=osp.dirname(dst))
    try:
        with os.fdopen(fd, 'wb') as out:
            request = urllib.request.Request(
                url, headers={'User-Agent': 'mmvheat'})
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                length = resp.headers.get('Content-Length')
                total = int(length) if length and length.isdigit() else None
                print_log(f'Downloading {url} to {dst}' + (
                    f' ({total / 1e6:.1f} MB)' if total else ''),
                          logger='current')
                bar = _Progress(name, total, progress)
                done = 0
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    sha.update(chunk)
                    done += len(chunk)
                    bar.update(done)
                bar.update(done, final=True)
        if total is not None and done != total:
            raise DownloadError(
                f'download of {url} is incomplete: got {done} of {total} '
                'bytes (connection closed early)')
        if not zipfile.is_zipfile(tmp):
            raise DownloadError(
                f'{url} did not return a torch checkpoint ({done} bytes, '
                "not torch's zip format: an error page or a truncated file)")
        if hash_match and not sha.hexdigest().startswith(hash_match.group(1)):
            raise DownloadError(
                f'{url}: sha256 {sha.hexdigest()} does not start with '
                f'{hash_match.group(1)}, the prefix in its file name')
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache
        os.replace(tmp, dst)
    except DownloadError as err:
        raise DownloadError(f'{err}. Nothing was cached. '
                            f'{_how_to_fix(url, dst)}') from None
    except (urllib.error.URLError, http.client.HTTPException,
            OSError) as err:
        reason = getattr(err, 'reason', None) or err
        if isinstance(err, urllib.error.HTTPError):
            reason = f'HTTP {err.code} {err.reason}'
        raise DownloadError(
            f'could not download {url}: {type(err).__name__}: {reason}. '
            f'Nothing was cached. {_how_to_fix(url, dst)}') from err
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def download_checkpoint(url: str,
                        directory: Optional[str] = None,
                        progress: Optional[bool] = None) -> str:
    """The local path of ``url``'s file, downloading it once if needed.

    Args:
        url (str): An ``http://`` or ``https://`` URL.
        directory (str, optional): Cache folder. Defaults to
            :func:`cache_dir`.
        progress (bool, optional): Draw a progress bar on stderr. Defaults
            to None: only when stderr is a terminal.

    Returns:
        str: The cached file.

    Raises:
        DownloadError: The download failed or was incomplete (the message
            names the URL and how to fetch it by hand), or ``MMVHEAT_OFFLINE``
            is set and the file is not cached.
    """
    if not is_url(url):
        raise ValueError(f'not an http(s) URL: {url!r}')
    dst = cached_path(url, directory)
    if osp.isfile(dst):
        return dst
    if os.environ.get(OFFLINE_ENV, '') not in ('', '0'):
        raise DownloadError(
            f'{url} is not in the cache and {OFFLINE_ENV} is set, so it is '
            f'not downloaded. {_how_to_fix(url, dst)}')
    try:
        os.makedirs(osp.dirname(dst), exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f'cannot create the cache folder for {url}: {err}. Set '
            f'{CACHE_ENV} to a writable folder, or download the file by '
            'hand and pass its path.') from err
    if progress is None:
        progress = sys.stderr.isatty()
    with _file_lock(dst + '.lock'):
        if not osp.isfile(dst):  # another process may have fetched it
            _fetch(url, dst, progress)
    return dst
