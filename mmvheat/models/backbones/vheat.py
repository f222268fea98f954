"""The vHeat backbone (Wang et al., "Building Vision Models upon Heat
Conduction", CVPR 2025), one class for mmpretrain, mmdetection and
mmsegmentation."""
import logging
import math
import weakref
from typing import (Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from torch.optim.optimizer import register_optimizer_step_post_hook
from mmengine.logging import print_log
from mmengine.model import BaseModule

from mmvheat.checkpoint import load_backbone_weights
from mmvheat.ops import (DEFAULT_IMPL, HEAT_FILTER_IMPLS, dct_bases,
                         fve_grid_for, needs_autograd, resize_freq_embed)
from mmvheat.registry import MODELS
from . import reference_layout
from .heat_conduction import HeatBlock

HCO_IMPLS = HEAT_FILTER_IMPLS

# Every live VHeat, for the optimizer-step hook that refreshes decay tables.
_LIVE_MODELS: 'weakref.WeakSet' = weakref.WeakSet()
_STEP_HOOK = []


def _refresh_after_optimizer_step(optimizer, args, kwargs) -> None:
    """Global optimizer post-step hook: a VHeat keeping decay tables whose
    sources this optimizer updates refreshes them."""
    keeping = [m for m in list(_LIVE_MODELS) if m.keeps_decay_tables()]
    if not keeping:  # training mode, the usual case: nothing to look up
        return
    stepped = {id(p) for group in optimizer.param_groups
               for p in group['params']}
    for model in keeping:
        if any(id(p) in stepped for p in model.decay_table_sources()):
            model.refresh_decay_tables()


def _refresh_after_load(model: 'VHeat', incompatible_keys) -> None:
    model.refresh_decay_tables()


def _track(model: 'VHeat') -> None:
    _LIVE_MODELS.add(model)
    if not _STEP_HOOK:
        _STEP_HOOK.append(register_optimizer_step_post_hook(
            _refresh_after_optimizer_step))


class _Permute(nn.Module):
    """Permute dims (no parameters); keeps the stem's key layout."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


def _channel_norm(dim: int, eps: float) -> nn.Sequential:
    """LayerNorm over the channels of (B, C, H, W), at index 1 of a
    Sequential as in the released checkpoints (``norm1.1.weight``)."""
    return nn.Sequential(
        _Permute(0, 2, 3, 1), nn.LayerNorm(dim, eps=eps), _Permute(0, 3, 1, 2))


class StemLayer(nn.Module):
    """Stride-4 stem: conv s2, LN, GELU, conv s2, LN (LN eps 1e-6).

    Args:
        in_channels (int): Image channels.
        out_channels (int): Width of the first stage.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels // 2, 3, stride=2, padding=1)
        self.norm1 = _channel_norm(out_channels // 2, eps=1e-6)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(
            out_channels // 2, out_channels, 3, stride=2, padding=1)
        self.norm2 = _channel_norm(out_channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in; channels-last (B, H/4, W/4, C) out."""
        x = self.act(self.norm1(self.conv1(x)))
        x = self.conv2(x).permute(0, 2, 3, 1)
        return self.norm2[1](x)


class Downsample(nn.Sequential):
    """Conv 3x3 s2 (no bias) then LayerNorm, on channels-last tensors.

    Stored as ``(conv, norm)`` items ``0`` and ``1`` like the released
    checkpoints.

    Args:
        in_channels (int): Input width.
        out_channels (int): Output width.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels, out_channels, 3, stride=2, padding=1,
                bias=False), nn.LayerNorm(out_channels, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self[0](x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self[1](x)


@MODELS.register_module()
class VHeat(BaseModule):
    """vHeat backbone.

    A stride-4 stem and four stages of heat-conduction blocks with widths
    C, 2C, 4C, 8C. Stage ``i`` owns one frequency value embedding (FVE)
    ``freq_embed.i`` on an ``img_size / 2^(i+2)`` grid shared by its blocks;
    for feature maps of another size it is resized bicubically. Any input
    size works: every stride-2 layer rounds up, so stage ``i`` of an
    (H, W) input is ``(ceil(H / 2^(i+2)), ceil(W / 2^(i+2)))``.

    The parameter names follow the authors' released checkpoints, so their
    Mask R-CNN / UperNet ``backbone.*`` weights load with ``strict=True``.
    The official classifier's head ``classifier.0`` (LayerNorm) is
    ``outnorm3`` here and ``classifier.3`` (Linear) is the ``fc`` of
    mmpretrain's ``LinearClsHead`` behind ``GlobalAveragePooling``.

    Args:
        arch (str | dict): 'tiny'/'t', 'small'/'s', 'base'/'b', or a dict
            with keys ``depths`` (4 ints), ``dims`` (int C or 4 ints),
            ``post_norm`` (bool) and ``layer_scale`` (float or None).
            Defaults to 'tiny'.
        in_channels (int): Input image channels. Defaults to 3.
        img_size (int | tuple[int, int]): Input size the FVEs are sized for
            (224 for the ImageNet models, 512 for the authors' detection and
            segmentation models). Defaults to 224.
        drop_path_rate (float): Stochastic depth rate, rising linearly from 0
            over all blocks. Defaults to 0.1.
        out_indices (Sequence[int] | int): Stages to output (negative counts
            from the end); each output goes through its own LayerNorm
            ``outnorm{i}``. Defaults to -1 (the last stage).
        frozen_stages (int): Freeze (no gradient, eval mode) the stem when
            >= 0 and stages ``0 .. frozen_stages - 1`` (their blocks, FVE,
            downsample and output norm) as in mmdet's ResNet. -1 freezes
            nothing. Defaults to -1.
        with_cp (bool): Gradient checkpointing per block (saves memory,
            costs a second forward). Defaults to False.
        deploy (bool): Build the model in deploy mode (see
            :meth:`switch_to_deploy`). Defaults to False.
        hco_impl (str): How the HCO's DCT filter runs (see
            :meth:`set_hco_impl`): 'matmul' (matrix products with the
            exact even/odd split of the DCT where a fixed rule of the map's
            lengths says it pays; the default), 'dense' (dense products
            only), 'fft', 'auto' (opt-in: matmul or fft by a calibration
            measured once per device and dtype, the same on every rank; see
            :mod:`mmvheat.ops.autotune`) or 'reference' (the whole model in
            the authors' layout and arithmetic; the baseline of benchmarks).
            All give the same outputs to float rounding.
            Defaults to 'matmul'.
        reuse_decay_tables (bool): Keep each block's damping factors for its
            FVE's own grid and reuse them while its stage is in eval mode
            (see :meth:`refresh_decay_tables`). False computes them in every
            forward. Defaults to True.
        init_cfg (dict | list[dict], optional): mmengine initialisation
            config, e.g. ``dict(type='Pretrained', checkpoint=...)``.
            Defaults to None (the authors' initialisation).
    """
    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], {
            'depths': [2, 2, 6, 2],
            'dims': 96,
            'post_norm': False,
            'layer_scale': None
        }),
        **dict.fromkeys(['s', 'small'], {
            'depths': [2, 2, 18, 2],
            'dims': 96,
            'post_norm': True,
            'layer_scale': 1e-5
        }),
        **dict.fromkeys(['b', 'base'], {
            'depths': [2, 2, 18, 2],
            'dims': 128,
            'post_norm': True,
            'layer_scale': 1e-5
        }),
    }
    num_stages = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 img_size: Union[int, Sequence[int]] = 224,
                 drop_path_rate: float = 0.1,
                 out_indices: Union[int, Sequence[int]] = -1,
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 deploy: bool = False,
                 hco_impl: str = DEFAULT_IMPL,
                 reuse_decay_tables: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        depths = self.arch_settings['depths']
        dims = self.arch_settings['dims']
        self.depths = depths
        self.dims = dims
        self.in_channels = in_channels
        self.img_size = self._pair(img_size, 'img_size')
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages}]'
                             f', got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.drop_path_rate = drop_path_rate

        self.patch_embed = StemLayer(in_channels, dims[0])
        self.freq_embed = nn.ParameterList([
            nn.Parameter(torch.zeros(*self.fve_grid(i), dims[i]))
            for i in range(self.num_stages)
        ])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            stage = nn.ModuleList([
                HeatBlock(
                    dims[i],
                    drop_path=rates[first + j],
                    post_norm=self.arch_settings['post_norm'],
                    layer_scale=self.arch_settings['layer_scale'])
                for j in range(depth)
            ])
            if i < self.num_stages - 1:
                stage.append(Downsample(dims[i], dims[i + 1]))
            self.layers.append(stage)
        for i in self.out_indices:
            self.add_module(f'outnorm{i}', nn.LayerNorm(dims[i], eps=1e-5))

        self._init_default_weights()
        self.set_hco_impl(hco_impl)
        self.deploy = bool(deploy)
        self.reuse_decay_tables = bool(reuse_decay_tables)
        self._freeze_stages()
        self.refresh_decay_tables()
        self.register_load_state_dict_post_hook(_refresh_after_load)
        _track(self)

    # ------------------------------------------------------------------
    # construction helpers
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                names = sorted(set(cls.arch_zoo))
                raise ValueError(f'Unknown vHeat arch {arch!r}; choose one of '
                                 f'{names} or pass a dict with keys depths, '
                                 'dims, post_norm, layer_scale')
            arch = cls.arch_zoo[key]
        if not isinstance(arch, dict):
            raise TypeError('arch must be a str or a dict, got '
                            f'{type(arch).__name__}')
        missing = {'depths', 'dims'} - set(arch)
        unknown = set(arch) - {'depths', 'dims', 'post_norm', 'layer_scale'}
        if missing or unknown:
            raise ValueError(
                'A custom vHeat arch dict needs keys depths and dims (and '
                'optionally post_norm, layer_scale); '
                f'missing {sorted(missing)}, unknown {sorted(unknown)}')
        depths = [int(d) for d in arch['depths']]
        dims = arch['dims']
        if isinstance(dims, int):
            dims = [dims * 2**i for i in range(cls.num_stages)]
        dims = [int(d) for d in dims]
        if len(depths) != cls.num_stages or len(dims) != cls.num_stages:
            raise ValueError(f'arch depths and dims must have '
                             f'{cls.num_stages} entries, got depths={depths}, '
                             f'dims={dims}')
        if min(depths) < 1 or min(dims) < 2:
            raise ValueError('arch depths must be >= 1 and dims >= 2, got '
                             f'depths={depths}, dims={dims}')
        return dict(
            depths=depths,
            dims=dims,
            post_norm=bool(arch.get('post_norm', False)),
            layer_scale=arch.get('layer_scale', None))

    @staticmethod
    def _pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
        pair = (value, value) if isinstance(value, int) else tuple(value)
        if len(pair) != 2 or min(pair) < 1:
            raise ValueError(f'{name} must be a positive int or (h, w), '
                             f'got {value!r}')
        return int(pair[0]), int(pair[1])

    def _parse_out_indices(self, out_indices) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        parsed = []
        for index in out_indices:
            if not -self.num_stages <= index < self.num_stages:
                raise ValueError(f'out_indices must be in [-{self.num_stages},'
                                 f' {self.num_stages - 1}], got {index}')
            parsed.append(index % self.num_stages)
        return tuple(sorted(set(parsed)))

    def fve_grid(self, stage: int) -> Tuple[int, int]:
        """The (H, W) grid of stage ``stage``'s FVE (see
        :func:`fve_grid_for`)."""
        return fve_grid_for(self.img_size, stage)

    def _init_default_weights(self) -> None:
        """The authors' init: Linear weights trunc-normal(0.02) with zero
        bias, LayerNorm (1, 0), FVEs trunc-normal(0.02); convs keep
        PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for fve in self.freq_embed:
            nn.init.trunc_normal_(fve, std=.02)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each output, in ``out_indices`` order."""
        return [self.dims[i] for i in self.out_indices]

    # ------------------------------------------------------------------
    # freezing / modes

    def stage_blocks(self, stage: int) -> List[HeatBlock]:
        """The :class:`HeatBlock` s of ``stage`` (without its downsample)."""
        return list(self.layers[stage][:self.depths[stage]])

    def blocks(self) -> Iterator[HeatBlock]:
        """Every :class:`HeatBlock`, stage by stage."""
        for i in range(self.num_stages):
            yield from self.stage_blocks(i)

    def set_hco_impl(self, impl: str) -> None:
        """Choose how the blocks compute (same weights, same outputs).

        Args:
            impl (str): 'auto', 'matmul', 'dense', 'fft' (the filter of
                every HCO, channels-last layout) or 'reference' (the
                authors' layout and ``conv1d`` DCT for the whole model).
        """
        if impl not in HCO_IMPLS:
            raise ValueError(f'hco_impl must be one of {HCO_IMPLS}, got '
                             f'{impl!r}')
        self.hco_impl = impl
        for block in self.blocks():
            block.reference_layout = impl == 'reference'
            block.op.impl = impl

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        frozen = [self.patch_embed]
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'outnorm{i}'))
        return frozen

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        for i in range(max(self.frozen_stages, 0)):
            self.freq_embed[i].requires_grad = False

    def train(self, mode: bool = True) -> 'VHeat':
        """Set the mode; frozen stages stay in eval mode. Refreshes the
        decay tables (see :meth:`refresh_decay_tables`)."""
        super().train(mode)
        self._freeze_stages()
        self.refresh_decay_tables()
        return self

    def switch_to_deploy(self) -> None:
        """Deploy mode: keep and reuse the decay tables in training mode
        too (eval mode always does), as the authors' ``infer_mode`` does.

        The state dict is unchanged (the tables are derived data), so a
        deployed model saves and loads like a training one. Tables are only
        used when no gradient can reach the FVEs or ``to_k``.
        """
        self.deploy = True
        self.refresh_decay_tables()

    # ------------------------------------------------------------------
    # decay tables
    def _keeps_tables(self, stage: int) -> bool:
        return self.reuse_decay_tables and (
            self.deploy or not self.layers[stage][0].training)

    def keeps_decay_tables(self) -> bool:
        """Whether any stage currently keeps decay tables."""
        return any(self._keeps_tables(i) for i in range(self.num_stages))

    def decay_table_sources(self) -> List[nn.Parameter]:
        """The parameters the decay tables are computed from: the FVEs and
        every block's ``to_k``."""
        params = list(self.freq_embed)
        for block in self.blocks():
            params += list(block.op.to_k.parameters())
        return params

    def refresh_decay_tables(self) -> None:
        """Recompute every block's decay table from the current FVE and
        ``to_k``, or release it where its stage does not keep one.

        A stage keeps a table per block (``op.decay_table``, a
        non-persistent buffer of the FVE's own (H, W, C) grid: that of
        ``img_size``, the size classification and sliding-window
        segmentation repeat) while it is in eval mode, or always in deploy
        mode, when ``reuse_decay_tables`` is on. A feature map of any other
        size computes its factors in the forward, as in training, so a
        stream of varying sizes (detection) costs no table memory. Memory:
        ``sum(H_i * W_i * C_i * depth_i)`` floats, about 5.7 MB for
        vHeat-T at ``img_size=224`` and 30 MB at 512.

        Called for you by :meth:`train` / ``eval()`` (so after mmengine's
        ``EMAHook`` swaps weights in place, the validation loop's
        ``model.eval()`` refreshes), after ``load_state_dict``, ``.to()``,
        ``.half()`` and any ``torch.optim`` optimizer step over these
        parameters. Call it yourself after writing the FVEs or ``to_k`` in
        place (``p.data.copy_(...)``) while the model stays in eval mode.
        """
        for i in range(self.num_stages):
            fve = self.freq_embed[i]
            keep = self._keeps_tables(i)
            with torch.inference_mode(False), torch.no_grad(), \
                    torch.autocast(fve.device.type, enabled=False):
                for block in self.stage_blocks(i):
                    block.op.decay_table = (
                        block.op.decay(fve).to(fve.dtype)
                        if keep else fve.new_empty(0).detach())

    def _apply(self, fn, *args, **kwargs):
        # .to()/.half()/.double() convert the tables with the parameters;
        # recompute them in the new dtype rather than cast the old ones.
        super()._apply(fn, *args, **kwargs)
        self.refresh_decay_tables()
        return self

    @property
    def _reference(self) -> bool:
        return self.hco_impl == 'reference'

    # ------------------------------------------------------------------
    # forward
    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
            raise ValueError('VHeat expects a 4-D image batch (B, C, H, W), '
                             f'got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'VHeat was built for {self.in_channels} input '
                             f'channels, got {x.shape[1]} (input shape '
                             f'{tuple(x.shape)}, expected (B, '
                             f'{self.in_channels}, H, W))')
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f'VHeat got an empty image of shape '
                             f'{tuple(x.shape)}')

    def _tables_usable(self, stage: int, size: Tuple[int, int]) -> bool:
        """Kept tables apply to maps of the FVE's grid when no gradient can
        reach the FVE or ``to_k``."""
        fve = self.freq_embed[stage]
        blocks = self.stage_blocks(stage)
        if not (self._keeps_tables(stage)
                and blocks[0].op.decay_table.dim() == 3
                and tuple(size) == tuple(fve.shape[:2])):
            return False
        return not needs_autograd(
            fve, *(p for b in blocks for p in b.op.to_k.parameters()))

    def _run_block(self, block: HeatBlock, x: torch.Tensor, freq_embed,
                   decay, bases) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(
                block, x, freq_embed, decay, bases, use_reentrant=False)
        return block(x, freq_embed, decay, bases)

    def forward_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks of ``stage`` on channels-last ``x`` ((B, C, H, W)
        with ``hco_impl='reference'``)."""
        size = tuple(x.shape[2:] if self._reference else x.shape[1:3])
        blocks = self.stage_blocks(stage)
        # the DCT bases of this size, built once for the stage's blocks (the
        # reference layout builds its own, as the authors' code does)
        bases = None if self._reference else dct_bases(
            size[0], size[1], x.device, x.dtype)
        if self._tables_usable(stage, size):
            for block in blocks:
                x = self._run_block(block, x, None, block.op.decay_table,
                                    bases)
        else:
            freq_embed = resize_freq_embed(self.freq_embed[stage], size)
            for block in blocks:
                x = self._run_block(block, x, freq_embed, None, bases)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Extract features.

        Args:
            x (torch.Tensor): Images (B, in_channels, H, W), any H and W.

        Returns:
            tuple[torch.Tensor]: For each stage in ``out_indices``, its
            features after the blocks (before the downsample) through
            ``outnorm{i}``, shape (B, C_i, ceil(H / 2^(i+2)),
            ceil(W / 2^(i+2))).
        """
        self._check_input(x)
        if self._reference:
            return self._forward_reference(x)
        return self.run_stages(self.patch_embed(x), self.forward_stage)

    def run_stages(self, x: torch.Tensor, run_stage) -> Tuple[torch.Tensor,
                                                               ...]:
        """The stages on the stem's channels-last output ``x``:
        ``run_stage(i, x)`` runs stage ``i``'s blocks (:meth:`forward_stage`
        in :meth:`forward`; an exporter passes its own), then the output
        norms and downsamples. Returns :meth:`forward`'s tuple."""
        outs = []
        for i in range(self.num_stages):
            x = run_stage(i, x)
            if i in self.out_indices:
                out = getattr(self, f'outnorm{i}')(x)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if i < self.num_stages - 1:
                x = self.layers[i][-1](x)
        return tuple(outs)

    def _forward_reference(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """:meth:`forward` in the authors' (B, C, H, W) layout."""
        x = reference_layout.stem_forward(self.patch_embed, x)
        outs = []
        for i in range(self.num_stages):
            x = self.forward_stage(i, x)
            if i in self.out_indices:
                norm = getattr(self, f'outnorm{i}')
                outs.append(reference_layout.layer_norm_2d(norm, x))
            if i < self.num_stages - 1:
                x = reference_layout.downsample_forward(self.layers[i][-1], x)
        return tuple(outs)

    @staticmethod
    def feature_size(size: int, stage: int) -> int:
        """Side length of stage ``stage``'s map for an input side ``size``
        (each of the stage's stride-2 layers rounds up)."""
        for _ in range(stage + 2):
            size = math.ceil(size / 2)
        return size

    def init_weights(self) -> None:
        """Initialise; a ``Pretrained`` init_cfg is loaded by mmvheat.

        ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` accepts every
        vHeat format (the official classification file, a converted or
        mmdet/mmseg/mmpretrain checkpoint, a bare state dict), adapts the
        FVEs to this model's grid and raises on anything that does not fit
        (see :func:`mmvheat.checkpoint.load_backbone_weights`). Extra keys:
        ``use_ema`` (official files), ``fve_mode`` ('pad' or 'bicubic'),
        ``prefix``, ``map_location``. ``checkpoint=None`` keeps the random
        initialisation, with a warning.
        """
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        if cfg.get('checkpoint') is None:
            print_log(
                'VHeat: Pretrained init_cfg without a checkpoint; the '
                'backbone stays randomly initialised', logger='current',
                level=logging.WARNING)
        else:
            load_backbone_weights(
                self,
                cfg['checkpoint'],
                use_ema=cfg.get('use_ema', False),
                fve_mode=cfg.get('fve_mode', 'pad'),
                prefix=cfg.get('prefix'),
                map_location=cfg.get('map_location', 'cpu'))
        self._is_init = True
