"""An independent, literal rendering of the vHeat reference (test oracle).

Written from ../shared/docs/vheat-reference.md in the authors' layout:
(B, C, H, W) tensors, channel LayerNorms by permuting to channels-last and
back, the MLP as two 1x1 convs, each 1-D DCT as an ``F.conv1d`` with the
(N, N) basis as an (N, N, 1) kernel, the decay recomputed with ``pow`` in
every forward, and the FVE resized bicubically per stage. It loads the same
state dict as the authors' models (``classifier.*`` optional), which
:class:`mmvheat.models.VHeat` loads too, so tests compare the two on
identical weights, and the benchmarks use it as the authors' implementation.
Kept deliberately plain; no speed. Analysis code: the model never imports
it.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def cos_map(n):
    pos = (torch.linspace(0, n - 1, n).view(1, -1) + 0.5) / n
    freq = torch.linspace(0, n - 1, n).view(-1, 1)
    w = torch.cos(freq * pos * torch.pi) * math.sqrt(2 / n)
    w[0, :] = w[0, :] / math.sqrt(2)
    return w


def decay(h, w):
    wn = torch.linspace(0, torch.pi, h + 1)[:h].view(-1, 1)
    wm = torch.linspace(0, torch.pi, w + 1)[:w].view(1, -1)
    return torch.exp(-(wn**2 + wm**2))


def conv1d_heat_filter(x, factors):
    """IDCT(factors * DCT(x)) on (B, H, W, C) as the authors compute it:
    each 1-D transform an ``F.conv1d`` with the (N, N, 1) basis, on
    contiguous copies; the damping as an einsum."""
    B, H, W, C = x.shape
    cn, cm = cos_map(H).to(x), cos_map(W).to(x)
    x = F.conv1d(x.contiguous().view(B, H, -1), cn.view(H, H, 1))
    x = F.conv1d(x.contiguous().view(-1, W, C),
                 cm.view(W, W, 1)).contiguous().view(B, H, W, -1)
    x = torch.einsum('bnmc,nmc->bnmc', x, factors.to(x.dtype))
    x = F.conv1d(x.contiguous().view(B, H, -1),
                 cn.t().contiguous().view(H, H, 1))
    return F.conv1d(x.contiguous().view(-1, W, C),
                    cm.t().contiguous().view(W, W, 1)).contiguous().view(
                        B, H, W, -1)


class LN2d(nn.LayerNorm):

    def forward(self, x):
        x = x.permute(0, 2, 3, 1).contiguous()
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2).contiguous()


class Perm(nn.Module):

    def __init__(self, *d):
        super().__init__()
        self.d = d

    def forward(self, x):
        return x.permute(*self.d).contiguous()


class Heat2D(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.linear = nn.Linear(c, 2 * c)
        self.out_norm = nn.LayerNorm(c)
        self.out_linear = nn.Linear(c, c)
        self.to_k = nn.Sequential(nn.Linear(c, c), nn.ReLU())

    def forward(self, x, fve):
        B, C, H, W = x.shape
        x = self.dwconv(x)
        x = self.linear(x.permute(0, 2, 3, 1).contiguous())
        x, z = x.chunk(2, dim=-1)
        k = torch.pow(decay(H, W).to(x)[:, :, None], self.to_k(fve))
        x = conv1d_heat_filter(x, k)
        x = self.out_norm(x) * F.silu(z)
        return self.out_linear(x).permute(0, 3, 1, 2).contiguous()


class Mlp(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Conv2d(c, 4 * c, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(4 * c, c, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):

    def __init__(self, c, post_norm, layer_scale):
        super().__init__()
        self.norm1 = LN2d(c)
        self.op = Heat2D(c)
        self.norm2 = LN2d(c)
        self.mlp = Mlp(c)
        self.post_norm = post_norm
        self.ls = layer_scale is not None
        if self.ls:
            self.gamma1 = nn.Parameter(torch.ones(c))
            self.gamma2 = nn.Parameter(torch.ones(c))

    def forward(self, x, fve):
        g1 = self.gamma1[:, None, None] if self.ls else 1
        g2 = self.gamma2[:, None, None] if self.ls else 1
        if self.post_norm:
            x = x + g1 * self.norm1(self.op(x, fve))
            return x + g2 * self.norm2(self.mlp(x))
        x = x + g1 * self.op(self.norm1(x), fve)
        return x + g2 * self.mlp(self.norm2(x))


class ReferenceVHeat(nn.Module):
    """Backbone (+ optional classifier) in the authors' layout.

    Args:
        depths, dims, post_norm, layer_scale: the arch.
        img_size (int): sizes the FVEs.
        num_classes (int): 0 for no ``classifier``.
        outnorm (bool): Create ``outnorm{i}`` and return all four stages.
    """

    def __init__(self, depths, dims, post_norm, layer_scale, img_size=224,
                 num_classes=0, outnorm=False):
        super().__init__()
        stem = dims[0]
        self.patch_embed = nn.Module()
        self.patch_embed.conv1 = nn.Conv2d(3, stem // 2, 3, 2, 1)
        self.patch_embed.norm1 = nn.Sequential(
            Perm(0, 2, 3, 1), nn.LayerNorm(stem // 2, eps=1e-6),
            Perm(0, 3, 1, 2))
        self.patch_embed.conv2 = nn.Conv2d(stem // 2, stem, 3, 2, 1)
        self.patch_embed.norm2 = nn.Sequential(
            Perm(0, 2, 3, 1), nn.LayerNorm(stem, eps=1e-6), Perm(0, 3, 1, 2))
        res = img_size // 4
        self.freq_embed = nn.ParameterList([
            nn.Parameter(torch.zeros(res // 2**i, res // 2**i, dims[i]))
            for i in range(4)
        ])
        self.layers = nn.ModuleList()
        for i in range(4):
            items = [Block(dims[i], post_norm, layer_scale)
                     for _ in range(depths[i])]
            if i < 3:
                items.append(nn.Sequential(
                    nn.Conv2d(dims[i], dims[i + 1], 3, 2, 1, bias=False),
                    LN2d(dims[i + 1])))
            self.layers.append(nn.ModuleList(items))
        self.depths = depths
        self.outnorm = outnorm
        if outnorm:
            for i in range(4):
                self.add_module(f'outnorm{i}', LN2d(dims[i]))
        if num_classes:
            self.classifier = nn.Sequential(
                LN2d(dims[3]), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                nn.Linear(dims[3], num_classes))

    def forward(self, x):
        pe = self.patch_embed
        x = pe.norm1(pe.conv1(x))
        x = pe.norm2(pe.conv2(F.gelu(x)))
        outs = []
        for i in range(4):
            fve = self.freq_embed[i]
            H, W = x.shape[-2:]
            if fve.shape[:2] != (H, W):
                fve = F.interpolate(
                    fve.permute(2, 0, 1)[None], size=(H, W), mode='bicubic',
                    align_corners=False)[0].permute(1, 2, 0)
            for block in self.layers[i][:self.depths[i]]:
                x = block(x, fve)
            if self.outnorm:
                outs.append(getattr(self, f'outnorm{i}')(x))
            if i < 3:
                x = self.layers[i][-1](x)
        if self.outnorm:
            return tuple(outs)
        return self.classifier(x)
