"""Ahead-of-time compiled packages: ``torch.export`` + AOTInductor.

The graph of :func:`~.models.export_graph` is exported with
:func:`torch.export.export` and compiled by AOTInductor into one ``.pt2``
package, the weights stored in it as constants: at a fixed input size (the
decay tables as constants), or with named dynamic dims H and W
(:func:`~.graph.image_dims`; the graph computes the tables). The package
runs without the model's Python code:
``torch._inductor.aoti_load_package(path)(images)`` (a tensor for a
one-output graph; :func:`load_aoti` always gives a list).
"""
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

from .graph import image_dims

__all__ = ['export_aoti', 'load_aoti']


def export_aoti(graph: nn.Module,
                path: str,
                size: Sequence[int],
                batch: int = 1,
                inductor_configs: Optional[dict] = None,
                max_size: Optional[int] = None) -> str:
    """Export ``graph`` at a (batch, 3, H, W) input and compile it into an
    AOTInductor package at ``path``.

    Args:
        graph (nn.Module): Images in, tensors out (eval mode), e.g. from
            :func:`~.models.export_graph` (with a fixed size, or without
            one for ``max_size``).
        path (str): The ``.pt2`` file to write.
        size (Sequence[int]): Input (H, W) of the example (the only size
            the package takes without ``max_size``).
        batch (int): Input batch. Defaults to 1.
        inductor_configs (dict, optional): Inductor settings. Defaults to
            None (inductor's defaults).
        max_size (int, optional): Take any H and W from
            :data:`~.graph.EXPORT_MIN_SIZE` (33) to ``max_size`` (named
            dims, :func:`~.graph.image_dims`); the graph must not be
            deployed (a deployed vHeat refuses dynamic shapes). Defaults to
            None (the fixed ``size``).

    Returns:
        str: ``path``.
    """
    example = torch.randn(batch, 3, *size)
    shapes = None if max_size is None else (image_dims(max_size), )
    with torch.no_grad():
        program = torch.export.export(graph.eval(), (example, ),
                                      dynamic_shapes=shapes)
    return torch._inductor.aoti_compile_and_package(
        program, package_path=path, inductor_configs=inductor_configs)


def load_aoti(path: str) -> Callable[[torch.Tensor], List[torch.Tensor]]:
    """The compiled package at ``path`` as a callable on image tensors that
    returns the exported graph's outputs as a list (a package of a
    one-tensor graph returns that tensor itself)."""
    package = torch._inductor.aoti_load_package(path)

    def run(images: torch.Tensor) -> List[torch.Tensor]:
        out = package(images)
        return [out] if isinstance(out, torch.Tensor) else list(out)

    return run
