"""Run a timm script with the vHeat models registered.

timm's own scripts (train.py, validate.py, inference.py, benchmark.py from
the pytorch-image-models repository) only know the models of the modules
they import. This runs one of them as ``__main__`` after
``import mmvheat.timm``, with the remaining arguments::

    python -m mmvheat.timm.run train.py --model vheat_tiny --data-dir DIR ...
    torchrun --nproc_per_node 8 -m mmvheat.timm.run train.py \\
        --model vheat_tiny ...
"""
import os.path as osp
import runpy
import sys
from typing import List, Optional

import mmvheat.timm  # noqa: F401 (registers vheat_tiny/small/base)


def main(argv: Optional[List[str]] = None) -> None:
    """Run ``argv[0]`` as a script with ``argv[1:]`` as its arguments.

    Args:
        argv (list[str], optional): Script and its arguments. Defaults to
            ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(__doc__.strip())
        raise SystemExit(0 if argv else 2)
    script = argv[0]
    if not osp.isfile(script):
        raise SystemExit(f'mmvheat.timm.run: no script {script!r} (expected '
                         'the path of a timm script such as train.py, then '
                         'its arguments)')
    sys.argv = [script] + argv[1:]
    sys.path.insert(0, osp.dirname(osp.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
