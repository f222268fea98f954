"""Small deterministic datasets in the real on-disk formats.

Coloured shapes (circle, square, triangle, ...) of random size and position,
some overlapping, on textured backgrounds, written as

* COCO instances (:func:`make_coco`): ``train2017/``, ``val2017/``,
  ``annotations/instances_{train,val}2017.json`` with boxes, polygon masks of
  the visible parts, areas and ``iscrowd``;
* ADE20K (:func:`make_ade20k`): ``images/{training,validation}/*.jpg`` and
  ``annotations/{training,validation}/*.png`` (0 = other, shape k = k + 1);
* an ImageNet-style folder (:func:`make_imagenet`): ``{train,val}/<class>/``.

The same configs run on the real datasets by changing ``data_root``. Needs
numpy and OpenCV.
"""
import json
import os
import os.path as osp
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['SHAPES', 'DEMO_TASKS', 'make_coco', 'make_ade20k', 'make_imagenet',
           'make_demo_data']

# name -> BGR colour; each shape has a distinct form and colour.
SHAPES: Dict[str, Tuple[int, int, int]] = {
    'circle': (40, 40, 220),
    'square': (40, 200, 40),
    'triangle': (220, 120, 30),
    'diamond': (30, 200, 220),
}


def _cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - environment guard
        raise ImportError('the demo data needs OpenCV: pip install '
                          'opencv-python') from err
    return cv2


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A textured background: a colour gradient plus noise and stripes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 180, size=3)
    slope = rng.uniform(-40, 40, size=(2, 3))
    img = base + yy[..., None] / h * slope[0] + xx[..., None] / w * slope[1]
    period = rng.uniform(6, 20)
    img += 12 * np.sin((xx + yy * rng.uniform(-1, 1)) / period)[..., None]
    img += rng.normal(0, 10, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_polygon(name: str, cx: float, cy: float, r: float,
                   angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape centred at (cx, cy) with radius r."""
    sides = {'circle': 32, 'square': 4, 'triangle': 3, 'diamond': 4}[name]
    offset = {'square': np.pi / 4, 'diamond': 0.0}.get(name, angle)
    t = offset + np.arange(sides) * 2 * np.pi / sides
    if name == 'diamond':
        radii = np.where(np.arange(sides) % 2 == 0, r, r * 0.6)
    else:
        radii = np.full(sides, r)
    return np.stack([cx + radii * np.cos(t), cy + radii * np.sin(t)], 1)


def _draw_scene(rng: np.random.Generator, size: Tuple[int, int],
                max_objects: int, classes: Sequence[str]):
    """Draw shapes; return the image and per-object (class, visible mask)."""
    cv2 = _cv2()
    h, w = size
    img = _background(rng, h, w)
    masks: List[np.ndarray] = []
    labels: List[int] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        label = int(rng.integers(len(classes)))
        r = rng.uniform(0.12, 0.28) * min(h, w)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        poly = _shape_polygon(classes[label], cx, cy, r,
                              rng.uniform(0, 2 * np.pi))
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        shade = np.array(SHAPES[classes[label]]) + rng.integers(-20, 21, 3)
        img[mask > 0] = np.clip(shade, 0, 255)
        for other in masks:  # the new shape hides what lies below it
            other[mask > 0] = 0
        masks.append(mask)
        labels.append(label)
    keep = [i for i, m in enumerate(masks) if m.sum() >= 16]
    return img, [labels[i] for i in keep], [masks[i] for i in keep]


def _split_sizes(num_train: int, num_val: int) -> Dict[str, int]:
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1, got '
                         f'{num_train}, {num_val}')
    return {'train': num_train, 'val': num_val}


def make_coco(root: str,
              num_train: int = 200,
              num_val: int = 50,
              size: Tuple[int, int] = (128, 128),
              max_objects: int = 3,
              seed: int = 0) -> Dict[str, str]:
    """Write a COCO-format instance segmentation dataset under ``root``.

    Args:
        root (str): Output folder (created).
        num_train (int): Training images. Defaults to 200.
        num_val (int): Validation images. Defaults to 50.
        size (tuple[int, int]): Image (H, W). Defaults to (128, 128).
        max_objects (int): Most shapes per image. Defaults to 3.
        seed (int): Random seed; the same seed gives the same files.
            Defaults to 0.

    Returns:
        dict: Paths of the two annotation files.
    """
    cv2 = _cv2()
    classes = list(SHAPES)
    rng = np.random.default_rng(seed)
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(classes)]
    out = {}
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    ann_id = 1
    for split, count in _split_sizes(num_train, num_val).items():
        folder = f'{split}2017'
        os.makedirs(osp.join(root, folder), exist_ok=True)
        images, annotations = [], []
        for idx in range(count):
            img, labels, masks = _draw_scene(rng, size, max_objects, classes)
            name = f'{idx:06d}.jpg'
            cv2.imwrite(osp.join(root, folder, name), img)
            image_id = idx + 1
            images.append(dict(id=image_id, file_name=name, height=size[0],
                               width=size[1]))
            for label, mask in zip(labels, masks):
                contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                               cv2.CHAIN_APPROX_SIMPLE)
                polys = [c.reshape(-1).astype(float).tolist()
                         for c in contours if len(c) >= 3]
                if not polys:
                    continue
                ys, xs = np.nonzero(mask)
                x0, y0 = float(xs.min()), float(ys.min())
                bw, bh = float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)
                annotations.append(
                    dict(id=ann_id, image_id=image_id,
                         category_id=label + 1, bbox=[x0, y0, bw, bh],
                         area=float(mask.sum()), segmentation=polys,
                         iscrowd=0))
                ann_id += 1
        path = osp.join(root, 'annotations', f'instances_{split}2017.json')
        with open(path, 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
        out[split] = path
    return out


def make_ade20k(root: str,
                num_train: int = 200,
                num_val: int = 50,
                size: Tuple[int, int] = (128, 128),
                max_objects: int = 3,
                seed: int = 0) -> Tuple[str, ...]:
    """Write an ADE20K-layout semantic segmentation dataset under ``root``.

    Label PNGs follow ADE's convention: 0 is "other" (ignored with
    ``reduce_zero_label=True``), shape class k is k + 1.

    Args: as :func:`make_coco`.

    Returns:
        tuple[str]: The class names (in label order after reduction).
    """
    cv2 = _cv2()
    classes = list(SHAPES)
    rng = np.random.default_rng(seed)
    for split, count in _split_sizes(num_train, num_val).items():
        ade_split = 'training' if split == 'train' else 'validation'
        img_dir = osp.join(root, 'images', ade_split)
        ann_dir = osp.join(root, 'annotations', ade_split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for idx in range(count):
            img, labels, masks = _draw_scene(rng, size, max_objects, classes)
            seg = np.zeros(size, np.uint8)
            for label, mask in zip(labels, masks):
                seg[mask > 0] = label + 1
            name = f'ADE_{ade_split}_{idx:08d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img)
            cv2.imwrite(osp.join(ann_dir, name + '.png'), seg)
    return tuple(classes)


def make_imagenet(root: str,
                  num_train: int = 200,
                  num_val: int = 50,
                  size: Tuple[int, int] = (64, 64),
                  seed: int = 0) -> Tuple[str, ...]:
    """Write an ImageNet-style folder: ``{train,val}/<class>/*.JPEG``.

    Each image shows one large shape of its class (distinct form and colour)
    on a textured background; classes are balanced.

    Args: as :func:`make_coco` (no ``max_objects``).

    Returns:
        tuple[str]: The class names (folder names, sorted).
    """
    cv2 = _cv2()
    classes = sorted(SHAPES)
    rng = np.random.default_rng(seed)
    for split, count in _split_sizes(num_train, num_val).items():
        for idx in range(count):
            label = idx % len(classes)
            folder = osp.join(root, split, classes[label])
            os.makedirs(folder, exist_ok=True)
            h, w = size
            img = _background(rng, h, w)
            r = rng.uniform(0.25, 0.4) * min(h, w)
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            poly = _shape_polygon(classes[label], cx, cy, r,
                                  rng.uniform(0, 2 * np.pi))
            shade = np.array(SHAPES[classes[label]]) + rng.integers(-20, 21, 3)
            cv2.fillPoly(img, [np.round(poly).astype(np.int32)],
                         [int(c) for c in np.clip(shade, 0, 255)])
            cv2.imwrite(osp.join(folder, f'{idx:06d}.JPEG'), img)
    return tuple(classes)


# task -> (folder under the demo root, generator, image size,
#          default (train, val) counts); the locations configs/demo/ use.
DEMO_TASKS = {
    'det': ('shapes_coco', make_coco, (128, 128), (300, 60)),
    'seg': ('shapes_ade', make_ade20k, (128, 128), (300, 60)),
    'cls': ('shapes_cls', make_imagenet, (64, 64), (400, 100)),
}


def make_demo_data(root: str = 'data/demo',
                   tasks: Sequence[str] = tuple(DEMO_TASKS),
                   num_train: Optional[int] = None,
                   num_val: Optional[int] = None,
                   seed: int = 0,
                   force: bool = False) -> Dict[str, str]:
    """Create the demo datasets of ``tasks`` under ``root`` unless present.

    Args:
        root (str): Folder holding one sub-folder per task (see
            ``DEMO_TASKS``). Defaults to 'data/demo'.
        tasks (Sequence[str]): Any of 'det', 'seg', 'cls'. Defaults to all.
        num_train (int, optional): Training images per task. Defaults to
            the task's own count.
        num_val (int, optional): Validation images per task. Defaults to
            the task's own count.
        seed (int): Seed of the generators. Defaults to 0.
        force (bool): Regenerate datasets that exist. Defaults to False.

    Returns:
        dict: task -> folder.
    """
    out = {}
    for task in tasks:
        folder, make, size, (n_train, n_val) = DEMO_TASKS[task]
        path = osp.join(root, folder)
        out[task] = path
        if osp.isdir(path) and not force:
            print(f'{task}: {path} exists, kept (--force to regenerate)')
            continue
        shutil.rmtree(path, ignore_errors=True)
        start = time.time()
        make(path, num_train or n_train, num_val or n_val, size=size,
             seed=seed)
        print(f'{task}: wrote {path} in {time.time() - start:.1f} s')
    return out
