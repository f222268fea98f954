"""Mask R-CNN as one exportable graph: image -> detections and masks.

:class:`MaskRCNNGraph` runs the whole of an mmdet ``MaskRCNN`` test path with
export-friendly ops (``torchvision.ops.nms`` and ``roi_align``, ``topk``,
``nonzero``, gathers) so that ``torch.onnx.export(dynamo=True)`` writes it
with standard ONNX ops only (``TopK``, ``NonMaxSuppression``, ``RoiAlign``,
``NonZero``, ``Gather*``):

1. backbone + FPN: the task graph of :func:`~.models.export_graph` (the one
   place that wraps the vHeat backbone for export);
2. RPN: per level, the sigmoid objectness, the top ``test_cfg.rpn.nms_pre``
   anchors, box decoding (``DeltaXYWHBBoxCoder``, clipped to the image),
   the ``min_bbox_size`` filter, NMS per level (``nms.iou_threshold``) and the
   first ``max_per_img`` proposals;
3. RoIAlign with mmdet's level assignment (``SingleRoIExtractor``:
   ``floor(log2(sqrt(w * h) / finest_scale + 1e-6))`` clamped to the levels),
   with the RoI layers' own output size, sampling ratio and ``aligned``;
4. the box head: softmax, class-wise decoding (clipped), ``score_thr``,
   class-wise NMS and ``max_per_img`` from ``test_cfg.rcnn``;
5. the mask head on the kept boxes: the sigmoid of each box's class channel.

It takes one image (batch 1): ``input`` (1, 3, H, W), padded as the data
preprocessor pads, and ``img_shape`` (2, ) float, the (h, w) of the resized
image inside the padding (mmdet clips boxes to it, not to the padding). It
returns ``dets`` (1, N, 5) (x1, y1, x2, y2, score in the network input's
coordinates, by descending score), ``labels`` (1, N) int64 and ``masks``
(1, N, M, M) mask probabilities (M = 28 for the standard head), N <=
``test_cfg.rcnn.max_per_img``.

Where mmdet's own code is not exportable (``torchvision.ops.batched_nms``
and mmcv's ``batched_nms`` branch on the number of boxes; mmdet's RoI
extractor writes into a zero tensor by level; its box coder clamps in place
with Python sizes), this module computes the same numbers with plain tensor
ops; :func:`check_mask_rcnn` rejects models it does not reproduce.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .task_graph import DeployError, _TaskGraph

__all__ = ['SUPPORTED', 'check_mask_rcnn', 'MaskRCNNGraph', 'decode_deltas',
           'class_offset_nms', 'level_of_rois', 'mask_rcnn_test_cfg']

# what this module reproduces, by part of the model
SUPPORTED = {
    'detector': ('MaskRCNN', ),
    'rpn_head': ('RPNHead', ),
    'anchor_generator': ('AnchorGenerator', ),
    'bbox_coder': ('DeltaXYWHBBoxCoder', ),
    'roi_head': ('StandardRoIHead', ),
    'roi_extractor': ('SingleRoIExtractor', ),
    'roi_layer': ('RoIAlign', ),
    'bbox_head': ('Shared2FCBBoxHead', 'Shared4Conv1FCBBoxHead',
                  'ConvFCBBoxHead', 'BBoxHead'),
    'mask_head': ('FCNMaskHead', ),
    'nms': ('nms', ),
}


def _name(obj) -> str:
    return type(obj).__name__


def _unsupported(part: str, found: str, detail: str = '') -> DeployError:
    names = ', '.join(SUPPORTED[part])
    return DeployError(
        f'the whole-detector export does not handle {part} {found}'
        f'{detail}; it supports {part} {names} (mmdet Mask R-CNN with FPN: '
        'MaskRCNN, RPNHead, StandardRoIHead, SingleRoIExtractor(RoIAlign), '
        'a BBoxHead with DeltaXYWHBBoxCoder, FCNMaskHead). Export the '
        'backbone and neck only with --features-only (or --backbone-only) '
        'and run the heads in PyTorch.')


def _check_nms(cfg, where: str) -> None:
    nms_type = (cfg.get('nms') or {}).get('type', 'nms')
    if nms_type != 'nms':
        raise _unsupported('nms', repr(nms_type), f' in test_cfg.{where}')


def check_mask_rcnn(model: nn.Module) -> None:
    """Raise a :class:`DeployError` naming what is supported when ``model``
    has a part :class:`MaskRCNNGraph` does not reproduce."""
    if _name(model) not in SUPPORTED['detector'] or not getattr(
            model, 'with_mask', False):
        raise _unsupported('detector', _name(model),
                           '' if _name(model) != 'MaskRCNN' else
                           ' without a mask head')
    rpn = model.rpn_head
    if _name(rpn) not in SUPPORTED['rpn_head']:
        raise _unsupported('rpn_head', _name(rpn))
    if not rpn.use_sigmoid_cls or rpn.cls_out_channels != 1:
        raise _unsupported('rpn_head', 'with a softmax objectness')
    if _name(rpn.prior_generator) not in SUPPORTED['anchor_generator']:
        raise _unsupported('anchor_generator', _name(rpn.prior_generator))
    roi = model.roi_head
    if _name(roi) not in SUPPORTED['roi_head']:
        raise _unsupported('roi_head', _name(roi))
    bbox_head, mask_head = roi.bbox_head, roi.mask_head
    for coder in (rpn.bbox_coder, bbox_head.bbox_coder):
        if _name(coder) not in SUPPORTED['bbox_coder']:
            raise _unsupported('bbox_coder', _name(coder))
        if getattr(coder, 'add_ctr_clamp', False) or not getattr(
                coder, 'clip_border', True):
            raise _unsupported('bbox_coder', _name(coder),
                               ' with add_ctr_clamp or clip_border=False')
    for extractor in (roi.bbox_roi_extractor, roi.mask_roi_extractor):
        if _name(extractor) not in SUPPORTED['roi_extractor']:
            raise _unsupported('roi_extractor', _name(extractor))
        if getattr(extractor, 'roi_scale_factor', None):
            raise _unsupported('roi_extractor', _name(extractor),
                               ' with roi_scale_factor')
        for layer in extractor.roi_layers:
            if _name(layer) not in SUPPORTED['roi_layer'] or getattr(
                    layer, 'pool_mode', 'avg') != 'avg':
                raise _unsupported('roi_layer', _name(layer))
    if _name(bbox_head) not in SUPPORTED['bbox_head']:
        raise _unsupported('bbox_head', _name(bbox_head))
    if bbox_head.reg_class_agnostic or getattr(
            bbox_head, 'custom_activation', False) or getattr(
                bbox_head.loss_cls, 'use_sigmoid', False):
        raise _unsupported('bbox_head', _name(bbox_head),
                           ' with class-agnostic regression or a sigmoid '
                           'classifier')
    if _name(mask_head) not in SUPPORTED['mask_head']:
        raise _unsupported('mask_head', _name(mask_head))
    if mask_head.class_agnostic:
        raise _unsupported('mask_head', _name(mask_head),
                           ' with class_agnostic=True')
    if getattr(mask_head, 'predictor_cfg', {}).get('type', 'Conv') != 'Conv':
        raise _unsupported('mask_head', _name(mask_head),
                           ' with a non-conv predictor')
    _check_nms(model.test_cfg.rpn, 'rpn')
    _check_nms(model.test_cfg.rcnn, 'rcnn')


def mask_rcnn_test_cfg(model: nn.Module) -> Dict[str, dict]:
    """The numbers of ``model.test_cfg`` the graph bakes in (also written
    to the file's metadata)."""
    rpn, rcnn = model.test_cfg.rpn, model.test_cfg.rcnn
    return dict(
        rpn=dict(nms_pre=int(rpn.get('nms_pre', -1)),
                 iou_threshold=float(rpn.nms.iou_threshold),
                 max_per_img=int(rpn.max_per_img),
                 min_bbox_size=float(rpn.get('min_bbox_size', -1))),
        rcnn=dict(score_thr=float(rcnn.score_thr),
                  iou_threshold=float(rcnn.nms.iou_threshold),
                  max_per_img=int(rcnn.max_per_img),
                  mask_thr_binary=float(rcnn.get('mask_thr_binary', 0.5))))


def decode_deltas(priors: Tensor, deltas: Tensor, means: Sequence[float],
                  stds: Sequence[float], wh_ratio_clip: float,
                  img_shape: Tensor) -> Tensor:
    """``DeltaXYWHBBoxCoder.decode`` of (n, 4) ``deltas`` on (n, 4)
    ``priors`` (x1, y1, x2, y2), clipped to ``img_shape`` = (h, w).

    The same arithmetic as mmdet's ``delta2bbox``: denormalise, shift the
    centre by ``d_xy * wh``, clamp ``d_wh`` to ``|log(wh_ratio_clip)|``,
    scale the size by ``exp(d_wh)``, then clip x to [0, w], y to [0, h].
    """
    deltas = deltas * deltas.new_tensor(stds) + deltas.new_tensor(means)
    centre = (priors[:, :2] + priors[:, 2:]) * 0.5
    size = priors[:, 2:] - priors[:, :2]
    max_ratio = abs(math.log(wh_ratio_clip))
    d_wh = deltas[:, 2:].clamp(min=-max_ratio, max=max_ratio)
    new_centre = centre + size * deltas[:, :2]
    new_size = size * d_wh.exp()
    boxes = torch.cat([new_centre - new_size * 0.5,
                       new_centre + new_size * 0.5], dim=1)
    upper = torch.stack([img_shape[1], img_shape[0]]).to(boxes.dtype)
    upper = upper.repeat(2).view(1, 4)
    return torch.minimum(boxes.clamp(min=0), upper)


def class_offset_nms(boxes: Tensor, scores: Tensor, classes: Tensor,
                     iou_threshold: float) -> Tensor:
    """Indices kept by NMS within each class, by descending score.

    mmcv's ``batched_nms`` (the branch mmdet takes below 10000 boxes, and
    the same result above): boxes of class c are shifted by
    ``c * (max coordinate + 1)`` so that classes never overlap, then one
    ``torchvision.ops.nms`` (ONNX ``NonMaxSuppression``). Unlike
    torchvision's ``batched_nms`` it has no branch on the box count, and a 0
    appended before the max keeps it defined for no boxes.
    """
    from torchvision.ops import nms
    top = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()
    shifted = boxes + (classes.to(boxes.dtype) * (top + 1)).unsqueeze(1)
    return nms(shifted, scores, iou_threshold)


def level_of_rois(boxes: Tensor, finest_scale: float,
                  num_levels: int) -> Tensor:
    """mmdet's ``SingleRoIExtractor.map_roi_levels`` for (n, 4) boxes:
    ``floor(log2(sqrt(w * h) / finest_scale + 1e-6))`` clamped to
    [0, num_levels - 1] (int64)."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) *
                       (boxes[:, 3] - boxes[:, 1]))
    level = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return level.clamp(min=0, max=num_levels - 1).long()


class _RoIFeatures(nn.Module):
    """A ``SingleRoIExtractor`` as export-friendly ops: each RoI is pooled
    only on its own level (``torchvision.ops.roi_align``, ONNX ``RoiAlign``
    with the layer's output size, scale, sampling ratio and ``aligned``),
    and the per-level results are put back in RoI order by sorting their
    indices (no writes into a preallocated tensor)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.finest_scale = float(extractor.finest_scale)
        self.layers: List[Tuple[Tuple[int, int], float, int, bool]] = []
        for layer in extractor.roi_layers:
            size = layer.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            self.layers.append((tuple(int(s) for s in size),
                                float(layer.spatial_scale),
                                int(layer.sampling_ratio),
                                bool(layer.aligned)))

    def forward(self, feats: Sequence[Tensor], boxes: Tensor) -> Tensor:
        from torchvision.ops import roi_align
        levels = level_of_rois(boxes, self.finest_scale, len(self.layers))
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), boxes], dim=1)
        pooled, order = [], []
        for i, (size, scale, ratio, aligned) in enumerate(self.layers):
            inds = (levels == i).nonzero()[:, 0]
            pooled.append(roi_align(feats[i], rois[inds], size, scale,
                                    ratio, aligned))
            order.append(inds)
        return torch.cat(pooled)[torch.argsort(torch.cat(order))]


class MaskRCNNGraph(nn.Module):
    """The whole Mask R-CNN test path of ``model`` (see the module
    docstring), batch 1.

    Args:
        model (nn.Module): An mmdet ``MaskRCNN`` with a vHeat backbone in
            eval mode (from :func:`~.models.build_deploy_model`); its
            modules are shared, not copied.
        fixed_size (tuple[int, int], optional): Bake the backbone's tables
            for this input size. Defaults to None (computed in the graph).
        normalize (bool): Normalise in the graph (raw pixels in). Defaults
            to False.
    """

    task = 'detector'

    def __init__(self, model: nn.Module,
                 fixed_size: Optional[Sequence[int]] = None,
                 normalize: bool = False) -> None:
        super().__init__()
        check_mask_rcnn(model)
        # backbone + FPN (the task graph's one exportable-backbone call)
        self.features = _TaskGraph(model, fixed_size, normalize,
                                   backbone_only=False)
        self.cfg = mask_rcnn_test_cfg(model)
        rpn = model.rpn_head
        self.rpn_head = rpn
        anchors = rpn.prior_generator
        self.strides = [tuple(float(s) for s in st) for st in anchors.strides]
        self.center_offset = float(anchors.center_offset)
        for i, base in enumerate(anchors.base_anchors):
            self.register_buffer(f'base_anchors{i}', base.clone().float(),
                                 persistent=False)
        self.rpn_coder = self._coder(rpn.bbox_coder)
        roi = model.roi_head
        self.bbox_roi = _RoIFeatures(roi.bbox_roi_extractor)
        self.mask_roi = _RoIFeatures(roi.mask_roi_extractor)
        self.bbox_head = roi.bbox_head
        self.mask_head = roi.mask_head
        self.num_classes = int(roi.bbox_head.num_classes)
        self.rcnn_coder = self._coder(roi.bbox_head.bbox_coder)

    @staticmethod
    def _coder(coder: nn.Module) -> dict:
        # mmdet's heads call decode() with its default wh_ratio_clip
        return dict(means=[float(m) for m in coder.means],
                    stds=[float(s) for s in coder.stds],
                    wh_ratio_clip=16 / 1000)

    def anchors(self, level: int, feat: Tensor) -> Tensor:
        """The anchors of ``level`` for its (symbolic) feature size, in
        mmdet's order (row, column, base anchor): ``AnchorGenerator.
        single_level_grid_priors``."""
        h, w = feat.shape[-2:]
        stride_w, stride_h = self.strides[level]
        base = getattr(self, f'base_anchors{level}')
        xs = (torch.arange(w, dtype=torch.float32) + self.center_offset) \
            * stride_w
        ys = (torch.arange(h, dtype=torch.float32) + self.center_offset) \
            * stride_h
        xx = xs.view(1, -1).expand(h, w).reshape(-1)
        yy = ys.view(-1, 1).expand(h, w).reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=1)
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    def proposals(self, feats: Sequence[Tensor], img_shape: Tensor) -> Tensor:
        """RPN proposals (n, 4) of image 0, by descending objectness."""
        cfg = self.cfg['rpn']
        cls_scores, bbox_preds = self.rpn_head(feats)
        scores, deltas, anchors, levels = [], [], [], []
        for i, (cls, reg) in enumerate(zip(cls_scores, bbox_preds)):
            score = cls[0].permute(1, 2, 0).reshape(-1).sigmoid()
            delta = reg[0].permute(1, 2, 0).reshape(-1, 4)
            prior = self.anchors(i, cls)
            if cfg['nms_pre'] > 0:
                k = torch.sym_min(cfg['nms_pre'], score.shape[0])
                score, inds = score.topk(k)
                delta, prior = delta[inds], prior[inds]
            scores.append(score)
            deltas.append(delta)
            anchors.append(prior)
            levels.append(torch.full_like(score, i, dtype=torch.long))
        scores, levels = torch.cat(scores), torch.cat(levels)
        boxes = decode_deltas(torch.cat(anchors), torch.cat(deltas),
                              img_shape=img_shape, **self.rpn_coder)
        if cfg['min_bbox_size'] >= 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            valid = ((wh[:, 0] > cfg['min_bbox_size'])
                     & (wh[:, 1] > cfg['min_bbox_size'])).nonzero()[:, 0]
            boxes, scores, levels = boxes[valid], scores[valid], levels[valid]
        keep = class_offset_nms(boxes, scores, levels, cfg['iou_threshold'])
        return boxes[keep[:cfg['max_per_img']]]

    def detect(self, feats: Sequence[Tensor], proposals: Tensor,
               img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Box head on ``proposals``: (boxes (n, 4), scores (n, ),
        labels (n, )) after ``score_thr``, class-wise NMS and
        ``max_per_img``, by descending score."""
        cfg = self.cfg['rcnn']
        roi_feats = self.bbox_roi(feats, proposals)
        cls_score, bbox_pred = self.bbox_head(roi_feats)
        num = self.num_classes
        scores = cls_score.softmax(dim=-1)[:, :num]
        priors = proposals[:, None, :].expand(-1, num, 4).reshape(-1, 4)
        boxes = decode_deltas(priors, bbox_pred.reshape(-1, 4),
                              img_shape=img_shape, **self.rcnn_coder)
        boxes = boxes.reshape(-1, num, 4)
        hits = (scores > cfg['score_thr']).nonzero()
        rows, labels = hits[:, 0], hits[:, 1]
        boxes, scores = boxes[rows, labels], scores[rows, labels]
        keep = class_offset_nms(boxes, scores, labels, cfg['iou_threshold'])
        keep = keep[:cfg['max_per_img']]
        return boxes[keep], scores[keep], labels[keep]

    def segment(self, feats: Sequence[Tensor], boxes: Tensor,
                labels: Tensor) -> Tensor:
        """Mask probabilities (n, M, M) of each box's class."""
        mask_preds = self.mask_head(self.mask_roi(feats, boxes))
        rows = torch.arange(mask_preds.shape[0])
        return mask_preds[rows, labels].sigmoid()

    def forward(self, x: Tensor,
                img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        feats = self.features(x)
        proposals = self.proposals(feats, img_shape)
        boxes, scores, labels = self.detect(feats, proposals, img_shape)
        masks = self.segment(feats, boxes, labels)
        dets = torch.cat([boxes, scores.unsqueeze(1)], dim=1)
        return dets.unsqueeze(0), labels.unsqueeze(0), masks.unsqueeze(0)
