"""Ahead-of-time compiled packages: ``torch.export`` + AOTInductor.

The graph of :func:`~.models.export_graph` (a fixed input size, the decay
tables as constants) is exported with :func:`torch.export.export` and
compiled by AOTInductor into one ``.pt2`` package, with inductor's
``freezing`` (weights folded into the graph and prepacked for the CPU's
matrix products). The package runs without the model's Python code:
``torch._inductor.aoti_load_package(path)(images)``.
"""
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn

__all__ = ['INDUCTOR_CONFIGS', 'export_aoti', 'load_aoti']

# Weights folded into the graph and prepacked (what torch.compile's
# freezing does for an in-process model).
INDUCTOR_CONFIGS = dict(freezing=True)


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
            None (:data:`INDUCTOR_CONFIGS`).

    Returns:
        str: ``path``.
    """
    example = torch.randn(batch, 3, *size)
    with torch.no_grad():
        program = torch.export.export(graph.eval(), (example, ))
    configs = INDUCTOR_CONFIGS if inductor_configs is None else \
        inductor_configs
    return torch._inductor.aoti_compile_and_package(
        program, package_path=path, inductor_configs=configs)


def load_aoti(path: str) -> Callable:
    """The compiled package at ``path`` as a callable on image tensors
    (it returns what the exported graph returned, as a list)."""
    return torch._inductor.aoti_load_package(path)
