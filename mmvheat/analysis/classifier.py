"""A minimal ImageNet-style classifier around any backbone (the model the
benchmark's training step and the FLOPs count use)."""
import torch
import torch.nn as nn


class Classifier(nn.Module):
    """Backbone, global average pool and a linear head (the train step's
    model; ImageNet's 1000 classes)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = backbone
        with torch.no_grad():
            dim = self._pool(backbone(torch.zeros(1, 3, 64, 64))).shape[1]
        self.fc = nn.Linear(dim, num_classes)

    @staticmethod
    def _pool(feats) -> torch.Tensor:
        x = feats[-1] if isinstance(feats, (tuple, list)) else feats
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self._pool(self.backbone(x)))
