"""Reading, resizing and normalising the image to visualise."""
import os.path as osp
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    'IMAGENET_MEAN', 'IMAGENET_STD', 'load_image', 'normalization',
    'image_to_tensor'
]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _target_size(orig: Tuple[int, int],
                 img_size: Union[None, int, Sequence[int]]) -> Tuple[int, int]:
    h, w = orig
    if img_size is None:
        return h, w
    sizes = [int(img_size)] if isinstance(img_size, (int, np.integer)) \
        else [int(s) for s in img_size]
    if len(sizes) == 1:
        if sizes[0] == 0:
            return h, w
        if sizes[0] < 0:
            raise ValueError(f'img_size must be >= 0, got {sizes[0]}')
        scale = sizes[0] / min(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    if len(sizes) == 2 and min(sizes) > 0:
        return sizes[0], sizes[1]
    raise ValueError('img_size must be one int (shorter side, aspect kept; '
                     f'0 keeps the image) or two positive ints (H, W), got '
                     f'{img_size!r}')


def load_image(path: str,
               img_size: Union[None, int, Sequence[int]] = None) -> np.ndarray:
    """Read an image as RGB and resize it.

    Args:
        path (str): Image file.
        img_size (int | Sequence[int], optional): One int: the shorter side,
            aspect ratio kept (0 keeps the size); two ints: a fixed (H, W).
            Defaults to None (keep the size).

    Returns:
        np.ndarray: uint8 RGB image (H, W, 3).

    Raises:
        FileNotFoundError: When ``path`` is not a file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    from PIL import Image
    with Image.open(path) as img:
        img = img.convert('RGB')
        h, w = _target_size((img.height, img.width), img_size)
        if (h, w) != (img.height, img.width):
            img = img.resize((w, h), Image.BICUBIC)
        return np.asarray(img, dtype=np.uint8).copy()


def normalization(cfg: Mapping) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Mean and std (RGB, 0-255 scale) from a config's data preprocessor.

    Args:
        cfg (Config | dict): The full config; ``model.data_preprocessor`` or
            a top-level ``data_preprocessor`` is read.

    Returns:
        tuple: (mean, std); the ImageNet values when the config has none.
    """
    for pre in (cfg.get('model', {}).get('data_preprocessor'),
                cfg.get('data_preprocessor')):
        if pre and pre.get('mean') is not None and pre.get('std') is not None:
            return tuple(pre['mean']), tuple(pre['std'])
    return IMAGENET_MEAN, IMAGENET_STD


def image_to_tensor(
        image: np.ndarray,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        device: Optional[Union[str, torch.device]] = None) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> normalised float (1, 3, H, W).

    Args:
        image (np.ndarray): uint8 RGB image.
        mean (Sequence[float]): Per-channel mean (RGB, 0-255).
            Defaults to the ImageNet mean.
        std (Sequence[float]): Per-channel std. Defaults to the ImageNet std.
        device (str | torch.device, optional): Target device.
            Defaults to None (CPU).

    Returns:
        torch.Tensor: The normalised batch of one.
    """
    x = torch.from_numpy(np.ascontiguousarray(image)).float()
    x = (x - torch.tensor(mean)) / torch.tensor(std)
    return x.permute(2, 0, 1).unsqueeze(0).to(device)
