
import pytest
import torch

from conftest import randomise, rel_err  # noqa: F401 (re-exported)
from mmvheat.models import VHeat
from mmvheat.analysis.reference_vheat import ReferenceVHeat

# A reduced arch for tests where the full size is not the point; post_norm
# and layer scale on, so both block variants are covered across the tests.
SMALL = dict(depths=[1, 2, 1, 1], dims=16, post_norm=True, layer_scale=0.5)
SMALL_PRE = dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])


def reference_for(model: VHeat, **kwargs) -> ReferenceVHeat:
    s = model.arch_settings
    return ReferenceVHeat(s['depths'], s['dims'], s['post_norm'],
                          s['layer_scale'], model.img_size[0], **kwargs)


# ---------------------------------------------------------------- fidelity
@pytest.mark.parametrize('arch', ['tiny', 'small'])
def test_matches_reference_with_fve_resize(arch):
    """On identical weights the outputs equal the literal reference, at the
    FVE's own size and at sizes that need the bicubic FVE resize."""
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=128).eval()
    sd = randomise(model)
    ref = reference_for(model, outnorm=True).eval()
    ref.load_state_dict(sd, strict=True)
    for size in [(128, 128), (97, 150), (40, 33)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ours, theirs = model(x), ref(x)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert rel_err(a, b) < 1e-5


def test_classifier_matches_official_head():
    """mmpretrain ImageClassifier(VHeat, GAP, LinearClsHead) computes the
    official classifier: classifier.0 -> backbone.outnorm3,
    classifier.3 -> head.fc."""
    from mmpretrain.registry import MODELS
    import mmvheat.models  # noqa: F401
    clf = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='mmvheat.VHeat', arch=SMALL_PRE, img_size=64),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10,
                      in_channels=32))).eval()
    sd = randomise(clf)
    ref = reference_for(clf.backbone, num_classes=10).eval()
    official = {}
    for key, value in sd.items():
        key = key.replace('backbone.outnorm3.', 'classifier.0.')
        key = key.replace('head.fc.', 'classifier.3.')
        official[key.replace('backbone.', '')] = value
    ref.load_state_dict(official, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = clf(x, mode='tensor')
        assert rel_err(logits, ref(x)) < 1e-5


# ---------------------------------------------------------------- structure
@pytest.mark.parametrize('arch,params,tensors', [('tiny', 30.85, 241),
                                                  ('t', 30.85, 241),
                                                  ('small', 52.22, 505),
                                                  ('base', 92.13, 505)])
def test_classifier_parameter_and_tensor_counts(arch, params, tensors):
    model = VHeat(arch, out_indices=(3, ))
    c = model.dims[3]
    head = c * 1000 + 1000
    n = sum(p.numel() for p in model.parameters()) + head
    assert round(n / 1e6, 2) == params
    assert len(model.state_dict()) + 2 == tensors


def expected_keys(depths, layer_scale, out_indices):
    """The released checkpoints' backbone key names (reference doc)."""
    keys = []
    for part in ('conv1', 'norm1.1', 'conv2', 'norm2.1'):
        keys += [f'patch_embed.{part}.weight', f'patch_embed.{part}.bias']
    keys += [f'freq_embed.{i}' for i in range(4)]
    block = ['norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias']
    for m in ('op.dwconv', 'op.linear', 'op.out_norm', 'op.out_linear',
              'op.to_k.0', 'mlp.fc1', 'mlp.fc2'):
        block += [f'{m}.weight', f'{m}.bias']
    if layer_scale:
        block += ['gamma1', 'gamma2']
    for i, depth in enumerate(depths):
        for j in range(depth):
            keys += [f'layers.{i}.{j}.{k}' for k in block]
        if i < 3:
            keys += [
                f'layers.{i}.{depth}.0.weight', f'layers.{i}.{depth}.1.weight',
                f'layers.{i}.{depth}.1.bias'
            ]
    for i in out_indices:
        keys += [f'outnorm{i}.weight', f'outnorm{i}.bias']
    return keys


@pytest.mark.parametrize('arch', ['tiny', 'small'])
def test_state_dict_keys_and_shapes_match_release(arch):
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=512)
    s = model.arch_settings
    sd = model.state_dict()
    assert sorted(sd) == sorted(
        expected_keys(s['depths'], s['layer_scale'], range(4)))
    c = s['dims'][0]
    assert sd['freq_embed.0'].shape == (128, 128, c)
    assert sd['freq_embed.3'].shape == (16, 16, 8 * c)
    assert sd['layers.0.0.mlp.fc1.weight'].shape == (4 * c, c, 1, 1)
    assert sd['layers.0.0.op.linear.weight'].shape == (2 * c, c)
    assert sd['layers.0.2.0.weight'].shape == (2 * c, c, 3, 3)
    assert sd['patch_embed.conv1.weight'].shape == (c // 2, 3, 3, 3)
    # a released Mask R-CNN/UperNet backbone loads strictly
    VHeat(arch, out_indices=(0, 1, 2, 3), img_size=512).load_state_dict(
        {k: v.clone() for k, v in sd.items()}, strict=True)


def test_official_classification_keys_leave_only_classifier():
    model = VHeat(SMALL_PRE, out_indices=(3, ))
    official = reference_for(model, num_classes=5).state_dict()
    missing, unexpected = model.load_state_dict(official, strict=False)
    assert sorted(missing) == ['outnorm3.bias', 'outnorm3.weight']
    assert sorted(unexpected) == [
        'classifier.0.bias', 'classifier.0.weight', 'classifier.3.bias',
        'classifier.3.weight'
    ]
    assert not any(k.startswith('classifier') for k in model.state_dict())


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize('size', [(511, 511), (112, 137), (800, 1333),
                                  (32, 32), (1, 1), (33, 17)])
def test_output_shapes_any_size(size):
    model = VHeat(SMALL_PRE, out_indices=(0, 1, 2, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert len(outs) == 4
    for i, out in enumerate(outs):
        expect = [VHeat.feature_size(s, i) for s in size]
        assert expect == [-(-s // 2**(i + 2)) for s in size]
        assert out.shape == (1, model.dims[i], *expect)
        assert torch.isfinite(out).all()
    assert model.out_channels == [8, 16, 24, 32]


@pytest.mark.parametrize('out_indices,expect', [((1, ), [1]), (-1, [3]),
                                                ((0, -2), [0, 2])])
def test_out_indices(out_indices, expect):
    model = VHeat(SMALL_PRE, out_indices=out_indices)
    outs = model(torch.randn(2, 3, 64, 48))
    assert [o.shape[1] for o in outs] == [model.dims[i] for i in expect]
    assert model.out_indices == tuple(expect)
    assert {n for n, _ in model.named_children() if 'outnorm' in n} == {
        f'outnorm{i}'
        for i in expect
    }


# ---------------------------------------------------------------- training
@pytest.mark.parametrize('frozen', [0, 2])
def test_frozen_stages(frozen):
    model = VHeat(SMALL, out_indices=(0, 1, 2, 3), frozen_stages=frozen)
    model.train()
    frozen_prefixes = ['patch_embed.'] + [
        f'layers.{i}.' for i in range(frozen)
    ] + [f'freq_embed.{i}' for i in range(frozen)
         ] + [f'outnorm{i}.' for i in range(frozen)]
    for name, param in model.named_parameters():
        is_frozen = any(name.startswith(p) for p in frozen_prefixes)
        assert param.requires_grad != is_frozen, name
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in frozen_prefixes):
            assert not module.training, name
    assert model.layers[frozen].training
    # the frozen parts get no gradient
    sum(o.sum() for o in model(torch.randn(1, 3, 32, 32))).backward()
    assert model.patch_embed.conv1.weight.grad is None
    assert model.layers[frozen][0].op.linear.weight.grad is not None


def test_bad_frozen_stages():
    with pytest.raises(ValueError, match='frozen_stages'):
        VHeat(SMALL, frozen_stages=5)


def test_with_cp_same_outputs_and_gradients():
    torch.manual_seed(3)
    plain = VHeat(SMALL, out_indices=(0, 3), drop_path_rate=0.3)
    ckpt = VHeat(SMALL, out_indices=(0, 3), drop_path_rate=0.3, with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 50, 41)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(7)  # same drop-path draws
        model.train()
        xi = x.clone().requires_grad_()
        outs = model(xi)
        sum((o * o).sum() for o in outs).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results.append((outs, xi.grad, grads))
    (o1, gx1, g1), (o2, gx2, g2) = results
    for a, b in zip(o1, o2):
        assert rel_err(b, a) < 1e-6
    assert rel_err(gx2, gx1) < 1e-5
    assert g1.keys() == g2.keys()
    for name in g1:
        assert rel_err(g2[name], g1[name]) < 1e-4, name


def test_drop_path_rates_rise_linearly():
    model = VHeat(SMALL, drop_path_rate=0.5)
    rates = [b.drop_path.drop_prob for i, stage in enumerate(model.layers)
             for b in stage[:model.depths[i]]]
    assert rates == pytest.approx(torch.linspace(0, 0.5, 5).tolist())


# ---------------------------------------------------------------- deploy
def test_deploy_equals_training_form_any_size():
    model = VHeat(SMALL, out_indices=(0, 1, 2, 3), img_size=64).eval()
    randomise(model)
    sizes = [(64, 64), (45, 77), (64, 64)]
    xs = [torch.randn(1, 3, *s) for s in sizes]
    with torch.no_grad():
        expected = [model(x) for x in xs]
        model.switch_to_deploy()
        assert model.deploy
        for x, exp in zip(xs, expected):
            for a, b in zip(model(x), exp):
                assert rel_err(a, b) <= 1e-6
    op = model.layers[0][0].op
    assert op.decay_table.shape == (16, 16, 16)  # the FVE's grid only
    assert not any('table' in k for k in model.state_dict())


def test_deploy_tables_follow_in_place_edits_on_refresh():
    model = VHeat(SMALL, out_indices=(3, ), img_size=64).eval()
    model.switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[0]
        # a changed FVE / to_k, in place and in eval mode, is not seen until
        # the documented refresh (or the next eval())
        model.freq_embed[1].add_(1.0)
        model.layers[2][0].op.to_k[0].bias.add_(0.5)
        model.refresh_decay_tables()
        after = model(x)[0]
    fresh = VHeat(SMALL, out_indices=(3, ), img_size=64).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = fresh(x)[0]
    assert rel_err(after, expected) <= 1e-6
    assert rel_err(after, before) > 1e-3


def test_training_after_deploy_uses_training_form():
    model = VHeat(SMALL, out_indices=(3, ), img_size=64)
    model.switch_to_deploy()
    model.train()
    out = model(torch.randn(2, 3, 64, 64))[0]
    out.sum().backward()
    assert model.freq_embed[2].grad is not None
    assert model.layers[2][0].op.to_k[0].weight.grad is not None
    # an optimizer step, then inference: tables follow the new weights
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    opt.step()
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        deployed = model(x)[0]
        model.reuse_decay_tables = False
        model.refresh_decay_tables()
        assert model.layers[2][0].op.decay_table.numel() == 0
        plain = model(x)[0]
    assert rel_err(deployed, plain) <= 1e-6


def test_deploy_reparameterize_flow(tmp_path):
    """mmpretrain's reparameterize_model.py: build, load, switch_to_deploy,
    save the state dict, rebuild with deploy=True, load."""
    src = VHeat(SMALL, out_indices=(0, 3)).eval()
    randomise(src)
    x = torch.randn(1, 3, 70, 56)
    with torch.no_grad():
        expected = src(x)
    src.switch_to_deploy()
    torch.save(src.state_dict(), tmp_path / 'deploy.pth')
    model = VHeat(SMALL, out_indices=(0, 3), deploy=True).eval()
    assert model.deploy
    model.load_state_dict(
        torch.load(tmp_path / 'deploy.pth', weights_only=True), strict=True)
    with torch.no_grad():
        for a, b in zip(model(x), expected):
            assert rel_err(a, b) <= 1e-6


# ---------------------------------------------------------------- errors
def test_bad_arch():
    with pytest.raises(ValueError, match="Unknown vHeat arch 'huge'"):
        VHeat('huge')
    with pytest.raises(ValueError, match='missing'):
        VHeat(dict(dims=8))
    with pytest.raises(ValueError, match='4 entries'):
        VHeat(dict(depths=[1, 1], dims=8))
    with pytest.raises(ValueError, match='out_indices'):
        VHeat(SMALL, out_indices=(4, ))


def test_bad_inputs():
    model = VHeat(SMALL)
    with pytest.raises(ValueError, match=r'3 input channels, got 1'):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r'4-D image batch'):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match=r'4-D image batch'):
        model(torch.randn(1, 1, 3, 32, 32))
    four = VHeat(SMALL, in_channels=4)
    assert four(torch.randn(1, 4, 32, 32))[0].shape[1] == 128
