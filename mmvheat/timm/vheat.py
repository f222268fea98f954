"""timm models around :class:`mmvheat.models.VHeat` (see
:mod:`mmvheat.timm`)."""
import logging
import math
import os.path as osp
import urllib.parse
from functools import partial
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead
from timm.models import (
    adapt_input_conv,
    build_model_with_cfg,
    generate_default_cfgs,
    register_model,
    resolve_pretrained_cfg,
)
from timm.models._features import feature_take_indices

from mmvheat.checkpoint import FVE_MODES, fit_weights, load_weights
from mmvheat.download import DownloadError, download_checkpoint
from mmvheat.models import VHeat

__all__ = [
    'VHeatTimm', 'checkpoint_filter_fn', 'vheat_model_names', 'vheat_tiny',
    'vheat_small', 'vheat_base'
]

_logger = logging.getLogger(__name__)

NUM_STAGES = VHeat.num_stages
ARCH_KEYS = ('depths', 'dims', 'post_norm', 'layer_scale')
STEM_CONV = 'backbone.patch_embed.conv1'
# The authors' ImageNet-1k release (the files' weights are under `model`).
RELEASE_URL = 'https://github.com/MzeroMiko/vHeat/releases/download/vheatcls/'
# model name -> (VHeat arch, drop path rate of the authors' ImageNet recipe)
VARIANTS = {
    'vheat_tiny': ('tiny', 0.1),
    'vheat_small': ('small', 0.3),
    'vheat_base': ('base', 0.5),
}


def vheat_model_names() -> List[str]:
    """The timm model names this module registers."""
    return sorted(VARIANTS)


def _stage_indices(indices: Union[int, Sequence[int], None], num: int,
                   what: str = 'indices') -> List[int]:
    """timm's index convention (``feature_take_indices``) over ``num``
    stages, sorted and unique; a bad value is a ValueError naming the
    argument."""
    try:
        take, _ = feature_take_indices(
            num, indices if indices is None or isinstance(indices, int)
            else [int(i) for i in indices])
    except (AssertionError, TypeError, ValueError) as err:
        raise ValueError(
            f'{what}={indices!r}: {err or type(err).__name__}; expected '
            f'stage indices in [-{num}, {num - 1}], or an int n in [1, '
            f'{num}] for the last n stages') from None
    return sorted(set(take))


class VHeatTimm(nn.Module):
    """vHeat for timm: :class:`VHeat` plus timm's classifier head.

    The classifier is the authors': LayerNorm over channels (the backbone's
    ``outnorm3``, their ``classifier.0``), global average pooling, Linear
    (``head.fc``, their ``classifier.3``). The state dict has exactly the
    keys of mmpretrain's ``ImageClassifier(VHeat(out_indices=(3,)),
    GlobalAveragePooling, LinearClsHead)`` (``backbone.*``, ``head.fc.*``),
    so weights move between the two unchanged.

    Args:
        arch (str | dict): VHeat arch, 'tiny', 'small', 'base' or a dict
            (see :class:`VHeat`). Defaults to 'tiny'.
        num_classes (int): Classes; 0 for no classifier (pooled features).
            Defaults to 1000.
        in_chans (int): Input image channels. Defaults to 3.
        img_size (int | tuple[int, int]): Input size the frequency value
            embeddings (FVEs) are sized for; any input size runs. Defaults
            to 224.
        global_pool (str): timm pooling type ('avg', 'max', 'avgmax',
            'catavgmax', '' for none). Defaults to 'avg'.
        drop_rate (float): Dropout before ``head.fc``. Defaults to 0.
        drop_path_rate (float): Stochastic depth. Defaults to 0.1.
        depths (Sequence[int], optional): Override the arch's blocks per
            stage (e.g. a reduced model). Defaults to None.
        dims (int | Sequence[int], optional): Override the arch's widths.
            Defaults to None.
        post_norm (bool, optional): Override the arch's block variant.
            Defaults to None.
        layer_scale (float, optional): Override the arch's layer scale.
            Defaults to None (keep the arch's; pass ``arch`` as a dict for
            a model without layer scale).
        pretrained_use_ema (bool): ``pretrained=True`` loads the file's EMA
            weights (``model_ema``) instead of ``model``. Defaults to False.
        pretrained_fve_mode (str): How pretrained FVEs reach this model's
            ``img_size`` grid: 'bicubic' (what the forward does for a
            feature map of another size) or 'pad' (zero-padding, the
            authors' recipe for 512 detection/segmentation models).
            Defaults to 'bicubic'.
        device (torch.device, optional): Where to put the model (timm's
            factory argument). Defaults to None (CPU).
        dtype (torch.dtype, optional): Parameter dtype. Defaults to None.
        **backbone_kwargs: Other :class:`VHeat` arguments: ``with_cp``,
            ``selective_cp``, ``hco_impl``, ``frozen_stages``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 num_classes: int = 1000,
                 in_chans: int = 3,
                 img_size: Union[int, Sequence[int]] = 224,
                 global_pool: str = 'avg',
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 depths: Optional[Sequence[int]] = None,
                 dims: Optional[Union[int, Sequence[int]]] = None,
                 post_norm: Optional[bool] = None,
                 layer_scale: Optional[float] = None,
                 pretrained_use_ema: bool = False,
                 pretrained_fve_mode: str = 'bicubic',
                 device: Optional[Union[str, torch.device]] = None,
                 dtype: Optional[torch.dtype] = None,
                 **backbone_kwargs) -> None:
        super().__init__()
        if 'out_indices' in backbone_kwargs:
            raise ValueError(
                'out_indices selects feature maps and needs '
                'features_only=True (timm.create_model(name, '
                'features_only=True, out_indices=(0, 1, 2, 3)))')
        if pretrained_fve_mode not in FVE_MODES:
            raise ValueError(f'pretrained_fve_mode must be one of '
                             f'{FVE_MODES}, got {pretrained_fve_mode!r}')
        overrides = dict(depths=depths, dims=dims, post_norm=post_norm,
                         layer_scale=layer_scale)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if overrides:
            base = VHeat._parse_arch(arch)
            base.update(overrides)
            arch = base
        self.backbone = VHeat(
            arch,
            in_channels=in_chans,
            img_size=img_size,
            drop_path_rate=drop_path_rate,
            out_indices=(NUM_STAGES - 1, ),
            **backbone_kwargs)
        widths = self.backbone.dims
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.drop_rate = drop_rate
        self.pretrained_use_ema = bool(pretrained_use_ema)
        self.pretrained_fve_mode = pretrained_fve_mode
        self.head = ClassifierHead(
            widths[-1], num_classes, pool_type=global_pool,
            drop_rate=drop_rate)
        self.head_hidden_size = self.head.num_features  # pooled width
        self._init_fc()
        self.feature_info = [
            dict(num_chs=widths[i], reduction=4 * 2**i,
                 module=f'backbone.layers.{i}') for i in range(NUM_STAGES)
        ]
        self._stages_kept = NUM_STAGES
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)

    def _init_fc(self) -> None:
        """The authors' Linear init: trunc-normal(0.02), zero bias."""
        fc = self.head.fc
        if isinstance(fc, nn.Linear):
            nn.init.trunc_normal_(fc.weight, std=.02)
            nn.init.zeros_(fc.bias)

    # ------------------------------------------------------------------
    # timm model API
    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        """Parameters the vHeat ImageNet recipe does not decay: every 1-D
        one (norm weights and biases, all biases, ``gamma1``/``gamma2``).
        The FVEs are decayed, as in the authors' recipe and ours."""
        return {n for n, p in self.named_parameters() if p.ndim <= 1}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, object]:
        """Parameter groups for layer-wise lr decay: the stem, then each
        block (a stage's FVE with its first block, the downsample after
        the stage's last block), then the head norm."""
        if coarse:
            blocks = r'^backbone\.(?:layers|freq_embed|downsamples)\.(\d+)'
        else:
            blocks = [(r'^backbone\.layers\.(\d+)\.(\d+)', None),
                      (r'^backbone\.freq_embed\.(\d+)', (0, )),
                      (r'^backbone\.downsamples\.(\d+)', (99998, )),
                      (r'^backbone\.outnorm3', (99999, ))]
        return dict(stem=r'^backbone\.patch_embed', blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing per block (the backbone's ``with_cp``)."""
        self.backbone.with_cp = bool(enable)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """Replace the classifier (``num_classes=0``: none, the pooled
        features come out); ``global_pool`` changes the pooling."""
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)
        self.head_hidden_size = self.head.num_features
        self._init_fc()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage through the head norm, (B, C, H/32, W/32)."""
        return self.backbone(x)[0]

    def forward_head(self, x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        """Pool (and classify unless ``pre_logits``) forward_features'
        output."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------
    # intermediates
    @staticmethod
    def _layout(x: torch.Tensor, fmt: str) -> torch.Tensor:
        """A channels-last stage map in ``fmt``."""
        return x.permute(0, 3, 1, 2).contiguous() if fmt == 'NCHW' else x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, Sequence[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward that also returns the stages' outputs.

        Args:
            x (torch.Tensor): Images (B, in_chans, H, W), any H and W.
            indices (int | Sequence[int], optional): Stages to return: all
                when None, the last n for an int n, or the listed ones
                (negative from the end). Defaults to None.
            norm (bool): Pass the last stage's output through the head norm
                (``outnorm3``). Defaults to False.
            stop_early (bool): Run only up to the last stage asked for.
                Defaults to False.
            output_fmt (str): 'NCHW' or 'NHWC'. Defaults to 'NCHW'.
            intermediates_only (bool): Return only the stage outputs.
                Defaults to False.

        Returns:
            list[torch.Tensor] | tuple: The stage outputs (after the blocks,
            before the downsample; stage i is (B, C_i, ceil(H / 2^(i+2)),
            ceil(W / 2^(i+2)))), or ``(final features, stage outputs)``
            where the final features are :meth:`forward_features`' output
            when every stage ran.
        """
        if output_fmt not in ('NCHW', 'NHWC'):
            raise ValueError("output_fmt must be 'NCHW' or 'NHWC', got "
                             f'{output_fmt!r}')
        take = _stage_indices(indices, self._stages_kept)
        last = NUM_STAGES - 1
        if stop_early or intermediates_only:
            last = max(take)
        outs = self.backbone.stage_outputs(x, sorted(set(take) | {last}))
        head_norm = self.backbone.outnorm3
        intermediates = []
        for i, y in zip(sorted(set(take) | {last}), outs):
            if i in take:
                if norm and i == NUM_STAGES - 1:
                    y = head_norm(y)
                intermediates.append(self._layout(y, output_fmt))
        if intermediates_only:
            return intermediates
        x = outs[-1]
        if last == NUM_STAGES - 1:
            x = head_norm(x)
        return self._layout(x, 'NCHW'), intermediates

    def prune_intermediate_layers(self,
                                  indices: Union[int, Sequence[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop what feature extraction at ``indices`` does not use.

        The head goes (``prune_head``), the head norm too (``prune_norm``,
        or when the last stage is not asked for). Stages after the last
        index stay in the state dict (so pretrained files keep loading) but
        stop requiring gradients: :meth:`forward_intermediates` with
        ``intermediates_only`` never runs them.

        Returns:
            list[int]: The kept indices (absolute).
        """
        take = _stage_indices(indices, self._stages_kept, 'out_indices')
        last = max(take)
        if prune_head:
            self.reset_classifier(0, '')
        if prune_norm or last < NUM_STAGES - 1:
            self.backbone.outnorm3 = nn.Identity()
        unused = [self.backbone.freq_embed[i] for i in range(last + 1,
                                                               NUM_STAGES)]
        for i in range(last, NUM_STAGES):
            if i > last:
                unused += list(self.backbone.layers[i].parameters())
            if i < NUM_STAGES - 1:
                unused += list(self.backbone.downsamples[i].parameters())
        if last == NUM_STAGES - 1:
            unused = []
        for param in unused:
            param.requires_grad = False
        self._stages_kept = last + 1
        return take

    # ------------------------------------------------------------------
    # pretrained weights
    def load_pretrained(self, checkpoint_path: str) -> None:
        """Load a vHeat checkpoint (what timm calls for ``pretrained=True``).

        :func:`mmvheat.checkpoint.load_weights` for fine-tuning: any file
        users have (the authors', with ``pretrained_use_ema`` their
        ``model_ema``; mmengine, timm ``train.py`` with its
        ``state_dict_ema``, bare, ``.safetensors``, ``module.``/
        ``_orig_mod.`` prefixes). The backbone must fit after its FVEs are
        brought to this model's grid and the stem to ``in_chans``; a head
        with another class count stays at its init.

        Args:
            checkpoint_path (str): Local file.
        """
        source = str(checkpoint_path)
        url = (getattr(self, 'pretrained_cfg', None) or {}).get('url')
        if not (url and osp.basename(urllib.parse.urlparse(url).path)
                == osp.basename(source)):
            url = None  # not the cached download of the cfg's URL
        load_weights(self, source, 'finetune',
                     use_ema=self.pretrained_use_ema,
                     fve_mode=self.pretrained_fve_mode,
                     adapt=partial(_adapt_stem, self), url=url)


def _adapt_stem(model: VHeatTimm,
                state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The stem conv of ``state`` brought to ``model.in_chans`` (timm's
    ``adapt_input_conv``)."""
    stem = STEM_CONV + '.weight'
    if stem in state and state[stem].dim() == 4 and \
            state[stem].shape[1] != model.in_chans:
        state[stem] = adapt_input_conv(
            model.in_chans, state[stem], base_chans=state[stem].shape[1])
        _logger.info('vHeat: adapted %s to %d input channels', stem,
                     model.in_chans)
    return state


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor],
                         model: VHeatTimm) -> Dict[str, torch.Tensor]:
    """timm's ``pretrained_filter_fn``: a vHeat state dict of any layout
    brought to ``model``'s keys and shapes and checked
    (:func:`mmvheat.checkpoint.fit_weights` for fine-tuning, with the FVEs
    adapted by ``model.pretrained_fve_mode`` and the stem conv to
    ``model.in_chans``; a head of another class count is left out). Safe
    to run twice.

    Args:
        state_dict (dict): Weights (wrappers and layout of any kind).
        model (VHeatTimm): The model to load into.

    Returns:
        dict: The state dict to load.
    """
    state, _ = fit_weights(model, state_dict, 'finetune',
                           model.pretrained_fve_mode,
                           adapt=partial(_adapt_stem, model))
    return state


# ----------------------------------------------------------------------
# registration
def _pretrained_file(variant: str, pretrained_cfg, overlay: dict,
                     cache_dir: Optional[str] = None) -> Optional[str]:
    """The local file of the pretrained cfg's URL, through mmvheat's
    downloader (:func:`mmvheat.download.download_checkpoint`).

    Looked up first where timm would have put it (``cache_dir`` when given,
    then torch hub's ``checkpoints`` folder, which follows ``$TORCH_HOME``),
    then in mmvheat's cache (``$MMVHEAT_CACHE_DIR``), which is where a
    download goes, unless ``MMVHEAT_OFFLINE`` is set: then the error names
    the URL and how to download it by hand. None when the cfg names a
    ``file``, a ``state_dict`` or a hub source (timm's own path then).
    """
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=overlay).to_dict()
    if cfg.get('file') or cfg.get('state_dict') is not None or cfg.get(
            'source') in ('hf-hub', 'local-dir') or not cfg.get('url'):
        return None
    url = cfg['url']
    name = osp.basename(urllib.parse.urlparse(url).path)
    import torch.hub
    for folder in (cache_dir, osp.join(torch.hub.get_dir(), 'checkpoints')):
        if folder and name and osp.isfile(osp.join(str(folder), name)):
            return osp.join(str(folder), name)
    try:
        return download_checkpoint(url)
    except DownloadError as err:
        raise DownloadError(
            f'{err} With timm, pass the file as timm.create_model('
            f"'{variant}', pretrained=True, pretrained_cfg_overlay=dict("
            "file=PATH)).") from None


def _create_vheat(variant: str, pretrained: bool = False,
                  **kwargs) -> nn.Module:
    arch, drop_path_rate = VARIANTS[variant]
    kwargs.setdefault('drop_path_rate', drop_path_rate)
    if kwargs.get('features_only', False):
        kwargs['out_indices'] = tuple(
            _stage_indices(
                kwargs.get('out_indices', tuple(range(NUM_STAGES))),
                NUM_STAGES, f'{variant} features_only out_indices'))
        feature_cls = kwargs.get('feature_cls', 'getter')
        if feature_cls != 'getter':
            raise ValueError(
                f"{variant} supports features_only with feature_cls='getter'"
                f' (its forward_intermediates) only, got {feature_cls!r}')
    overlay = dict(kwargs.pop('pretrained_cfg_overlay', None) or {})
    for key in ('use_ema', 'fve_mode'):
        if key in overlay:
            raise ValueError(
                f'{key!r} is not a pretrained_cfg field; pass '
                f'pretrained_{key}=... to timm.create_model instead')
    # The weights are read by mmvheat (VHeatTimm.load_pretrained), never by
    # timm's torch.load (the authors' files pickle a yacs CfgNode), and a
    # URL is fetched by mmvheat's downloader (its cache, MMVHEAT_OFFLINE,
    # its errors): timm gets the local file.
    overlay['custom_load'] = True
    if pretrained:
        local = _pretrained_file(variant, kwargs.get('pretrained_cfg'),
                                 overlay, kwargs.get('cache_dir'))
        if local is not None:
            overlay['file'] = local
    if 'img_size' in kwargs:
        h, w = VHeat._pair(kwargs['img_size'], 'img_size')
        overlay.setdefault('input_size', (kwargs.get('in_chans', 3), h, w))
        overlay.setdefault('pool_size', (math.ceil(h / 32), math.ceil(w / 32)))
    return build_model_with_cfg(
        VHeatTimm,
        variant,
        pretrained,
        arch=arch,
        pretrained_cfg_overlay=overlay,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls='getter',
                         out_indices=tuple(range(NUM_STAGES))),
        **kwargs)


def _cfg(url: str) -> dict:
    return dict(
        url=url,
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        # our test pipeline: resize the short side to 256, centre-crop 224
        crop_pct=224 / 256,
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv=STEM_CONV,
        classifier='head.fc',
        custom_load=True,
        paper_name='Building Vision Models upon Heat Conduction',
        paper_ids='arXiv:2405.16555',
        origin_url='https://github.com/MzeroMiko/vHeat',
    )


# timm's register_model picks the pretrained cfgs up from this module name.
default_cfgs = generate_default_cfgs({
    'vheat_tiny.in1k': _cfg(RELEASE_URL + 'vHeat_tiny.pth'),
    'vheat_small.in1k': _cfg(RELEASE_URL + 'vHeat_small.pth'),
    'vheat_base.in1k': _cfg(RELEASE_URL + 'vHeat_base.pth'),
})


@register_model
def vheat_tiny(pretrained: bool = False, **kwargs) -> VHeatTimm:
    """vHeat-T (C=96, depths 2-2-6-2), 82.2% ImageNet-1k top-1."""
    return _create_vheat('vheat_tiny', pretrained, **kwargs)


@register_model
def vheat_small(pretrained: bool = False, **kwargs) -> VHeatTimm:
    """vHeat-S (C=96, depths 2-2-18-2, post-norm, layer scale),
    83.6% ImageNet-1k top-1."""
    return _create_vheat('vheat_small', pretrained, **kwargs)


@register_model
def vheat_base(pretrained: bool = False, **kwargs) -> VHeatTimm:
    """vHeat-B (C=128, depths 2-2-18-2, post-norm, layer scale),
    83.9% ImageNet-1k top-1."""
    return _create_vheat('vheat_base', pretrained, **kwargs)
