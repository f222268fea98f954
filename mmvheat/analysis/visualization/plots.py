"""Matplotlib figures of the heat analyses (Agg canvas, no pyplot state)."""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from .features import area_ratio, channel_norm, pca_rgb
from .heat import spatial_spread

__all__ = [
    'plot_impulse_responses', 'plot_conductivity', 'plot_features', 'plot_erf',
    'save_figure'
]

PANEL = 2.4  # inches per panel side


def _np(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(
        x, torch.Tensor) else np.asarray(x)


def _colorbar(fig: Figure, im, ax, label: Optional[str] = None) -> None:
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.formatter = ScalarFormatter(useOffset=False)
    cbar.formatter.set_powerlimits((-4, 4))
    cbar.update_ticks()
    cbar.ax.tick_params(labelsize=7)
    cbar.ax.yaxis.get_offset_text().set_fontsize(7)
    if label:
        cbar.set_label(label, fontsize=7)


def _clean(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig: Figure, path: str, dpi: int = 100) -> str:
    """Write ``fig`` as a PNG.

    Args:
        fig (Figure): The figure.
        path (str): Output file.
        dpi (int): Resolution. Defaults to 100.

    Returns:
        str: ``path``.
    """
    fig.savefig(path, dpi=dpi)
    return path


def plot_impulse_responses(responses: Dict[Tuple[int, int], torch.Tensor],
                           points: Dict[Tuple[int, int], Sequence[Tuple[int,
                                                                        int]]],
                           what: str = 'mean over channels',
                           scale: str = 'linear',
                           floor: float = 1e-4) -> Figure:
    """Impulse responses of the heat filter: one row per block, one column
    per source point (circled).

    Args:
        responses (dict): (stage, block) -> (P, H, W) responses.
        points (dict): (stage, block) -> the P source cells (y, x).
        what (str): How channels were reduced, for the title.
            Defaults to 'mean over channels'.
        scale (str): 'linear' (the response) or 'log' (log10 of
            |response| / max |response|, which shows faint long-range
            conduction). Defaults to 'linear'.
        floor (float): Smallest relative value on the log scale.
            Defaults to 1e-4.

    Returns:
        Figure: The figure.
    """
    if scale not in ('linear', 'log'):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
    blocks = list(responses)
    cols = max(len(points[b]) for b in blocks)
    aspect = max(m.shape[-2] / m.shape[-1] for m in responses.values())
    fig = Figure(figsize=(PANEL * cols + 0.6,
                          ((PANEL - 0.6) * aspect + 0.7) * len(blocks) + 0.5),
                 layout='constrained')
    axes = fig.subplots(len(blocks), cols, squeeze=False)
    for r, (stage, block) in enumerate(blocks):
        maps = responses[(stage, block)]
        h, w = maps.shape[-2:]
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(points[(stage, block)]):
                ax.axis('off')
                continue
            y, x = points[(stage, block)][c]
            resp = _np(maps[c])
            if scale == 'log':
                rel = np.abs(resp) / max(np.abs(resp).max(), 1e-30)
                im = ax.imshow(np.log10(np.maximum(rel, floor)),
                               cmap='inferno',
                               vmin=math.log10(floor),
                               vmax=0,
                               interpolation='nearest')
            else:
                im = ax.imshow(resp, cmap='inferno', interpolation='nearest')
            ax.plot(x, y, 'o', mfc='none', mec='cyan', ms=10, mew=1)
            spread = spatial_spread(maps[c], (y, x))
            ax.set_title(
                f'S{stage}.B{block}: source ({y}, {x})\n'
                f'rms spread {spread:.2f} cells',
                fontsize=8)
            _clean(ax)
            _colorbar(fig, im, ax,
                      'log10 |r| / max' if scale == 'log' else None)
        axes[r, 0].set_ylabel(f'stage {stage}, block {block}\n{h}x{w} grid',
                              fontsize=8)
    shown = 'log10 |response|' if scale == 'log' else 'response'
    fig.suptitle(
        'Heat-conduction filter (DCT -> learned decay -> IDCT): '
        f'impulse {shown}, {what}',
        fontsize=10)
    return fig


def plot_conductivity(kmaps: Dict[Tuple[int, int], torch.Tensor],
                      what: str = 'mean over channels',
                      max_cols: int = 6) -> Figure:
    """Learned conductivity k per frequency of every given block; each
    stage starts a new row, long stages wrap after ``max_cols`` panels.

    Args:
        kmaps (dict): (stage, block) -> (H, W) map of k.
        what (str): How channels were reduced, for the title.
            Defaults to 'mean over channels'.
        max_cols (int): Panels per row. Defaults to 6.

    Returns:
        Figure: The figure.
    """
    stages: Dict[int, List[int]] = {}
    for stage, block in kmaps:
        stages.setdefault(stage, []).append(block)
    cols = min(max_cols, max(len(b) for b in stages.values()))
    layout = []  # (row, col, stage, block)
    row = 0
    for stage in sorted(stages):
        for n, block in enumerate(sorted(stages[stage])):
            layout.append((row + n // cols, n % cols, stage, block))
        row += math.ceil(len(stages[stage]) / cols)
    aspect = max(k.shape[0] / k.shape[1] for k in kmaps.values())
    fig = Figure(figsize=(PANEL * cols + 0.6,
                          ((PANEL - 0.6) * aspect + 0.8) * row + 0.8),
                 layout='constrained')
    axes = fig.subplots(row, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    for r, c, stage, block in layout:
        ax = axes[r, c]
        ax.axis('on')
        k = _np(kmaps[(stage, block)])
        im = ax.imshow(k, cmap='magma', interpolation='nearest')
        ax.set_title(
            f'stage {stage}, block {block} ({k.shape[0]}x'
            f'{k.shape[1]})\nmean {k.mean():.2g}, max '
            f'{k.max():.2g}',
            fontsize=8)
        ax.set_xlabel('freq. along W', fontsize=7)
        ax.set_ylabel('freq. along H', fontsize=7)
        ax.tick_params(labelsize=6)
        _colorbar(fig, im, ax)
    fig.suptitle(
        f'Learned conductivity k = ReLU(to_k(FVE)) per frequency, '
        f'{what}\n(DC at top-left; larger k = that frequency decays '
        'faster = more smoothing)',
        fontsize=10)
    return fig


def _extent(image: np.ndarray) -> Tuple[float, float, float, float]:
    h, w = image.shape[:2]
    return (-0.5, w - 0.5, h - 0.5, -0.5)


def plot_features(image: np.ndarray,
                  norms: Sequence[Tuple[int, torch.Tensor]],
                  features: Sequence[Tuple[int, torch.Tensor]],
                  alpha: float = 0.6) -> Figure:
    """Stage outputs over the image: channel L2 norm (top row) and the PCA
    projection to RGB (bottom row).

    Args:
        image (np.ndarray): uint8 RGB (H, W, 3) the features come from.
        norms (Sequence[tuple[int, torch.Tensor]]): (stage, (C, h, w))
            features for the norm maps (best taken before the output norm,
            after which every position has the same norm).
        features (Sequence[tuple[int, torch.Tensor]]): (stage, (C, h, w))
            features for the PCA maps.
        alpha (float): Opacity of the overlays. Defaults to 0.6.

    Returns:
        Figure: The figure.
    """
    cols = len(features) + 1
    aspect = image.shape[0] / image.shape[1]
    width = 2.9
    fig = Figure(figsize=(width * cols, 2 * (width - 0.5) * aspect + 1.2),
                 layout='constrained')
    axes = fig.subplots(2, cols, squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(f'input {image.shape[0]}x{image.shape[1]}',
                         fontsize=8)
    _clean(axes[0, 0])
    axes[1, 0].axis('off')
    ext = _extent(image)
    for n, ((stage, raw), (_, feat)) in enumerate(zip(norms, features), 1):
        c, h, w = raw.shape
        ax = axes[0, n]
        ax.imshow(image)
        im = ax.imshow(_np(channel_norm(raw)),
                       cmap='jet',
                       alpha=alpha,
                       extent=ext,
                       interpolation='bilinear')
        ax.set_title(
            f'stage {stage} ({c} ch, {h}x{w}):\n'
            'L2 norm over channels',
            fontsize=8)
        _clean(ax)
        _colorbar(fig, im, ax)
        ax = axes[1, n]
        ax.imshow(image)
        ax.imshow(_np(pca_rgb(feat)),
                  alpha=alpha,
                  extent=ext,
                  interpolation='nearest')
        ax.set_title(f'stage {stage}: top-3 PCA\ncomponents as RGB',
                     fontsize=8)
        _clean(ax)
    fig.suptitle(
        'Feature response of each stage: norm of the stage output '
        '(top), PCA of the normalised output (bottom)',
        fontsize=10)
    return fig


def plot_erf(image: np.ndarray,
             erfs: Dict[str, Sequence[Tuple[int, torch.Tensor, Tuple[int, int],
                                            Tuple[int, int]]]],
             floor: float = 1e-3) -> Figure:
    """Effective receptive fields: one row per model, one column per stage,
    on a shared log scale relative to each map's maximum.

    Args:
        image (np.ndarray): The input image (H, W, 3), for its size.
        erfs (dict): model name -> list of (stage, ERF (H, W), output cell
            (y, x), output map size (h, w)).
        floor (float): Smallest relative value shown. Defaults to 1e-3.

    Returns:
        Figure: The figure.
    """
    cols = max(len(v) for v in erfs.values())
    aspect = image.shape[0] / image.shape[1]
    fig = Figure(figsize=(PANEL * cols + 0.9,
                          (PANEL * aspect + 0.3) * len(erfs) + 0.8),
                 layout='constrained')
    axes = fig.subplots(len(erfs), cols, squeeze=False)
    H, W = image.shape[:2]
    im = None
    for r, (name, entries) in enumerate(erfs.items()):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(entries):
                ax.axis('off')
                continue
            stage, erf, (y, x), (h, w) = entries[c]
            rel = _np(erf) / max(float(erf.max()), 1e-30)
            im = ax.imshow(np.log10(np.maximum(rel, floor)),
                           cmap='viridis',
                           vmin=math.log10(floor),
                           vmax=0,
                           interpolation='nearest')
            ax.plot((x + 0.5) * W / w - 0.5, (y + 0.5) * H / h - 0.5,
                    'o',
                    mfc='none',
                    mec='red',
                    ms=9,
                    mew=1)
            a50, a90 = area_ratio(erf, 0.5), area_ratio(erf, 0.9)
            ax.set_title(
                f'{name} stage {stage}: cell ({y}, {x}) of {h}x{w}'
                f'\n50% / 90% of mass in {a50:.2%} / {a90:.1%}',
                fontsize=8)
            _clean(ax)
        axes[r, 0].set_ylabel(name, fontsize=9)
    if im is not None:
        _colorbar(fig, im, axes, 'log10 (|grad| / max)')
    fig.suptitle(
        'Effective receptive field of the circled output cell: '
        '|d sum ReLU(features) / d input|, summed over RGB\n'
        '(mass shares: the smallest part of the image holding 50% / '
        '90% of it)',
        fontsize=10)
    return fig
