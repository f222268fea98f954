"""Ahead-of-time compiled packages: ``torch.export`` + AOTInductor.

The graph of :func:`~.models.export_graph` (a fixed input size, the decay
tables as constants) is exported with :func:`torch.export.export` and
compiled by AOTInductor into one ``.pt2`` package, the weights stored in it
as constants. The package runs without the model's Python code:
``torch._inductor.aoti_load_package(path)(images)`` (a tensor for a
one-output graph; :func:`load_aoti` always gives a list).
"""
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['export_aoti', 'load_aoti']


def export_aoti(graph: nn.Module,
                path: str,
                size: Sequence[int],
                batch: int = 1,
                inductor_configs: Optional[dict] = None) -> str:
    """Export ``graph`` at a fixed (batch, 3, H, W) input and compile it
    into an AOTInductor package at ``path``.

    Args:
        graph (nn.Module): Images in, tensors out (eval mode), e.g. from
            :func:`~.models.export_graph` with a fixed size.
        path (str): The ``.pt2`` file to write.
        size (Sequence[int]): Input (H, W).
        batch (int): Input batch. Defaults to 1.
        inductor_configs (dict, optional): Inductor settings. Defaults to
            None (inductor's defaults).

    Returns:
        str: ``path``.
    """
    example = torch.randn(batch, 3, *size)
    with torch.no_grad():
        program = torch.export.export(graph.eval(), (example, ))
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
