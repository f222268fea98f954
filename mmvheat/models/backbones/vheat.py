"""The vHeat backbone (Wang et al., "Building Vision Models upon Heat
Conduction", CVPR 2025), one class for mmpretrain, mmdetection and
mmsegmentation."""
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch.fx.experimental.symbolic_shapes import is_concrete_int

from mmvheat.checkpoint import load_backbone_weights, map_legacy_keys
from mmvheat.ops import (
    DEFAULT_IMPL,
    HCO_IMPLS,
    dct_bases,
    fve_grid_for,
    resize_freq_embed,
)
from mmvheat.registry import MODELS
from .heat_conduction import HeatBlock


def check_images(x: torch.Tensor, in_channels: int,
                 dtype: torch.dtype) -> None:
    """Raise a clear error for what VHeat cannot take: not a 4-D tensor,
    another channel count, an empty image, or a float dtype other than the
    weights' outside autocast. A leaf for ``torch.fx`` tracing."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)
        raise ValueError('VHeat expects a 4-D image batch (B, C, H, W), '
                         f'got {shape}')
    if x.shape[1] != in_channels:
        raise ValueError(f'VHeat was built for {in_channels} input '
                         f'channels, got {x.shape[1]} (input shape '
                         f'{tuple(x.shape)}, expected (B, {in_channels}, H, '
                         'W))')
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f'VHeat got an empty image of shape '
                         f'{tuple(x.shape)}')
    if not x.is_floating_point():
        raise TypeError(f'VHeat got {x.dtype} images but its weights are '
                        f'{dtype}: convert the images with .float() and '
                        'normalise them as the data preprocessor does')
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise TypeError(f'VHeat got {x.dtype} images but its weights are '
                        f'{dtype}: run under torch.autocast, or convert the '
                        f'model with .to({x.dtype}) (.half() for float16)')


def stage_inputs(freq_embed: torch.Tensor, x: torch.Tensor,
                 with_fve: bool = True
                 ) -> Tuple[Optional[torch.Tensor],
                            Tuple[torch.Tensor, torch.Tensor]]:
    """What a stage's blocks share for channels-last map ``x``: the FVE
    resized to the map (None when not ``with_fve``), and the map's DCT
    bases."""
    h, w = x.shape[1], x.shape[2]
    fve = resize_freq_embed(freq_embed, (h, w)) if with_fve else None
    return fve, dct_bases(h, w, x.device, x.dtype)


def check_static_size(x: torch.Tensor, deploy_size: Tuple[int, int]) -> None:
    """Refuse a ``torch.export`` of a deployed model with dynamic image
    sizes: its decay tables hold one size, so the exported program would be
    fixed to it. (``torch.compile`` specialises and recompiles per size, as
    it should.) A leaf for ``torch.fx`` tracing."""
    if not torch.compiler.is_exporting():
        return
    if any(isinstance(s, torch.SymInt) and not is_concrete_int(s)
           for s in x.shape[2:]):
        raise RuntimeError(
            f'VHeat is deployed for {deploy_size[0]}x{deploy_size[1]} '
            'inputs (decay tables of one size) and cannot be traced with '
            'dynamic shapes: export it with static shapes, or export an '
            'undeployed model (remove_decay_tables(), or '
            'mmvheat.deployment.exportable_backbone(model)) for any size')


# Leaves for torch.fx symbolic tracing (they read shapes): calls, not code.
torch.fx.wrap('check_images')
torch.fx.wrap('check_static_size')
torch.fx.wrap('stage_inputs')


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
        self.norm1 = nn.LayerNorm(out_channels // 2, eps=1e-6)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(
            out_channels // 2, out_channels, 3, stride=2, padding=1)
        self.norm2 = nn.LayerNorm(out_channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) in; channels-last (B, H/4, W/4, C) out."""
        x = self.norm1(self.conv1(x).permute(0, 2, 3, 1))
        x = self.conv2(self.act(x).permute(0, 3, 1, 2))
        return self.norm2(x.permute(0, 2, 3, 1))


class Downsample(nn.Sequential):
    """Conv 3x3 s2 (no bias) then LayerNorm, on channels-last tensors
    (items ``0`` and ``1``, as in the authors' checkpoints).

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
    in every forward it is resized bicubically to the stage's map (an exact
    copy at its own size). Any input size works: every stride-2 layer
    rounds up, so stage ``i`` of an (H, W) input is
    ``(ceil(H / 2^(i+2)), ceil(W / 2^(i+2)))``.

    The model keeps no state besides its parameters, except after
    :meth:`switch_to_deploy` (whose docstring is the deploy contract).
    Keys: see :mod:`mmvheat.checkpoint` (the authors' layout loads
    strictly, mapped on load; saved checkpoints use the plain layout).
    The official classifier's head ``classifier.0`` (LayerNorm) is
    ``outnorm3`` here and ``classifier.3`` (Linear) is the ``fc`` of
    mmpretrain's ``LinearClsHead`` behind
    ``GlobalAveragePooling``.

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
        with_cp (bool): Full gradient checkpointing per block (least
            memory, a second forward in backward). Defaults to False.
        selective_cp (bool): Selective activation checkpointing per block
            branch in training, a memory saver like ``with_cp``: the
            outputs of matrix products and convolutions are kept,
            elementwise results (norms, GELU, gate, damping) are recomputed
            in backward. Same values and gradients (under autocast too),
            less activation memory for a slower step (measured in
            docs/en/notes/benchmarks.md). Defaults to False.
        hco_impl (str): The HCO's DCT filter, one of
            :data:`mmvheat.ops.HCO_IMPLS`: 'split' (the exact even/odd
            split of the DCT on axes of at least 256 of CPU tensors, dense
            products elsewhere), 'matmul' (always dense matrix products) or
            'fft' (see :mod:`mmvheat.ops.filters`). All give the same
            outputs to float rounding. The one place the choice is kept:
            the blocks get it as an argument, and setting
            ``model.hco_impl`` changes it (validated). Defaults to 'split'.
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
                 selective_cp: bool = False,
                 hco_impl: str = DEFAULT_IMPL,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.hco_impl = hco_impl  # validated by the setter
        self.arch_settings = self._parse_arch(arch)
        depths = self.arch_settings['depths']
        dims = self.arch_settings['dims']
        self.depths = depths
        self.dims = dims
        self.in_channels = in_channels
        self.img_size = self._pair(img_size, 'img_size')
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError('frozen_stages must be in '
                             f'[-1, {self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        # the input size the decay tables are built for (None: not deployed)
        self.deploy_size: Optional[Tuple[int, int]] = None
        self.drop_path_rate = drop_path_rate

        self.patch_embed = StemLayer(in_channels, dims[0])
        self.freq_embed = nn.ParameterList([
            nn.Parameter(torch.zeros(*self.fve_grid(i), dims[i]))
            for i in range(self.num_stages)
        ])
        rates = torch.linspace(0, drop_path_rate, sum(depths),
                               device='cpu').tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            self.layers.append(nn.ModuleList([
                HeatBlock(
                    dims[i],
                    drop_path=rates[first + j],
                    post_norm=self.arch_settings['post_norm'],
                    layer_scale=self.arch_settings['layer_scale'],
                    selective_cp=selective_cp) for j in range(depth)
            ]))
        self.downsamples = nn.ModuleList([
            Downsample(dims[i], dims[i + 1])
            for i in range(self.num_stages - 1)
        ])
        for i in self.out_indices:
            self.add_module(f'outnorm{i}', nn.LayerNorm(dims[i], eps=1e-5))

        self._init_default_weights()
        self._freeze_stages()
        # the authors' key layout loads too (see mmvheat.checkpoint)
        self.register_load_state_dict_pre_hook(_map_legacy_keys_on_load)
        # a deployed model's tables follow loaded weights
        self.register_load_state_dict_post_hook(_rebuild_tables_on_load)

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
    def hco_impl(self) -> str:
        """The HCO's filter (see the class docstring), passed to every
        block in :meth:`forward_stage`."""
        return self._hco_impl

    @hco_impl.setter
    def hco_impl(self, impl: str) -> None:
        if impl not in HCO_IMPLS:
            raise ValueError(f'hco_impl must be one of {HCO_IMPLS}, got '
                             f'{impl!r}')
        self._hco_impl = impl

    @property
    def out_channels(self) -> List[int]:
        """Channels of each output, in ``out_indices`` order."""
        return [self.dims[i] for i in self.out_indices]

    # ------------------------------------------------------------------
    # freezing / modes
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        frozen = [self.patch_embed]
        for i in range(self.frozen_stages):
            frozen.append(self.layers[i])
            if i < self.num_stages - 1:
                frozen.append(self.downsamples[i])
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
        """Set the mode; frozen stages stay in eval mode. Training mode
        (``mode=True``) also ends the deployed state: the decay tables are
        dropped (see :meth:`switch_to_deploy`)."""
        super().train(mode)
        self._freeze_stages()
        if mode:
            self.remove_decay_tables()
        return self

    # ------------------------------------------------------------------
    # deploy
    @property
    def deployed(self) -> bool:
        """Whether the model is deployed (:meth:`switch_to_deploy`): its
        blocks hold decay tables for the input size ``deploy_size``."""
        return self.deploy_size is not None

    def switch_to_deploy(self,
                         img_size: Optional[Union[int, Sequence[int]]] = None
                         ) -> None:
        """Compute every block's damping factors once, for inference.

        Each HCO gets a non-persistent buffer ``decay_table`` (H, W, C):
        ``decay_map ** ReLU(to_k(FVE))`` for the map its stage has for an
        ``img_size`` input, from the current weights; the model is put in
        eval mode and remembers the size (``deploy_size``). A forward on a
        map of that size then reads the table instead of resizing the FVE
        and running ``to_k`` and the power (a few percent of a block at
        batch 1); other sizes compute their factors as before. Memory:
        ``sum(H_i W_i C_i depth_i)`` floats (5.7 MB for vHeat-T at 224).
        The state dict is unchanged.

        The contract (the tables never disagree with the weights):

        * Tables are read only in eval mode and only for the map size they
          were built for; in training mode the factors always come from
          the parameters, so every FVE and ``to_k`` gets its gradient.
        * ``train()`` (``train(True)``, also through a parent module) drops
          the tables: the model is no longer deployed. After training (an
          optimizer step, EMA, a ``reparameterize_model`` copy trained
          further), call this again.
        * ``load_state_dict`` (PyTorch's, and mmengine's
          ``load_state_dict``/``load_checkpoint``, on this model or a
          parent) rebuilds the tables at ``deploy_size`` from the loaded
          weights: the model stays deployed and computes the loaded
          weights' outputs.
        * In-place writes to the FVEs or ``to_k`` in eval mode (``with
          torch.no_grad(): p.add_(...)``, an optimizer step without
          ``train()``) cannot be seen: after them, call this again (or
          :meth:`remove_decay_tables`).

        A deployed model holds tables of one input size, so it is exported
        with static shapes; tracing it with dynamic ones is refused (export
        an undeployed model for any size).

        Args:
            img_size (int | tuple[int, int], optional): Input size to build
                the tables for. Defaults to None (the model's ``img_size``).
        """
        size = self.img_size if img_size is None else self._pair(
            img_size, 'img_size')
        self.eval()
        self._build_decay_tables(size)

    @torch.no_grad()
    def _build_decay_tables(self, size: Tuple[int, int]) -> None:
        """Every block's table for an input of ``size``, from the current
        weights; sets ``deploy_size``."""
        for i, stage in enumerate(self.layers):
            fve = self.freq_embed[i]
            grid = tuple(self.feature_size(s, i) for s in size)
            with torch.autocast(fve.device.type, enabled=False):
                fve = resize_freq_embed(fve, grid)
                for block in stage:
                    block.op.decay_table = block.op.decay(fve).to(fve.dtype)
        self.deploy_size = tuple(size)

    def reparameterize(self) -> None:
        """:meth:`switch_to_deploy` at the model's ``img_size`` (the name
        timm's ``reparameterize_model`` calls)."""
        self.switch_to_deploy()

    def remove_decay_tables(self) -> None:
        """Undo :meth:`switch_to_deploy`: compute the factors in every
        forward again (the model is no longer deployed)."""
        for stage in self.layers:
            for block in stage:
                block.op.decay_table = None
        self.deploy_size = None

    # ------------------------------------------------------------------
    # forward
    def forward_stage(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks of ``stage`` on channels-last ``x`` (B, H, W, C)
        with the model's ``hco_impl``: the stage's FVE resized to the map
        (unless every block reads its deploy table,
        :meth:`HeatConductionOperator.table_fits`) and the map's DCT bases,
        built once and shared by the blocks."""
        blocks = self.layers[stage]
        with_fve = not all(block.op.table_fits(x) for block in blocks)
        freq_embed, bases = stage_inputs(self.freq_embed[stage], x, with_fve)
        impl = self.hco_impl
        for block in blocks:
            if self.with_cp and self.training:
                x = cp.checkpoint(block, x, freq_embed, bases, impl,
                                  use_reentrant=False)
            else:
                x = block(x, freq_embed, bases, impl)
        return x

    def stage_outputs(self, x: torch.Tensor,
                      stages: Sequence[int]) -> List[torch.Tensor]:
        """The one stage loop: stem, then stages and downsamples up to the
        last of ``stages``. Used by :meth:`forward`, timm's
        ``forward_intermediates`` and the ONNX exporter.

        Args:
            x (torch.Tensor): Images (B, in_channels, H, W).
            stages (Sequence[int]): Stage indices (0-3) to return.

        Returns:
            list[torch.Tensor]: Channels-last outputs (B, H_i, W_i, C_i) of
            ``stages`` (after the blocks, before the downsample), in order.
        """
        check_images(x, self.in_channels, self.freq_embed[0].dtype)
        if self.deployed and not self.training:
            check_static_size(x, self.deploy_size)
        x = self.patch_embed(x)
        last = max(stages)
        outs = []
        for i in range(last + 1):
            x = self.forward_stage(i, x)
            if i in stages:
                outs.append(x)
            if i < last:
                x = self.downsamples[i](x)
        return outs

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
        outs = self.stage_outputs(x, self.out_indices)
        return tuple(
            getattr(self, f'outnorm{i}')(out).permute(0, 3, 1, 2).contiguous()
            for i, out in zip(self.out_indices, outs))

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


def _map_legacy_keys_on_load(module: VHeat, state_dict: dict, prefix: str,
                             *args) -> None:
    """``load_state_dict`` pre-hook: the authors' key layout to ours, in
    place (:func:`mmvheat.checkpoint.map_legacy_keys`)."""
    mapped = map_legacy_keys(state_dict, prefix)
    state_dict.clear()
    state_dict.update(mapped)


def _rebuild_tables_on_load(module: VHeat, incompatible_keys) -> None:
    """``load_state_dict`` post-hook (PyTorch's and mmengine's loaders call
    it): a deployed model rebuilds its tables at ``deploy_size`` from the
    loaded weights."""
    if module.deployed:
        module._build_decay_tables(module.deploy_size)
