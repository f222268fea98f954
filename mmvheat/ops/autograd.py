"""When in-place or recomputing fast paths are safe."""
import torch


def needs_autograd(*tensors: torch.Tensor) -> bool:
    """True when autograd records ops on any of ``tensors`` (so they must
    not be overwritten in place)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
