"""VHeat: fidelity to the authors' model, structure, shapes, training,
deploy and input errors."""
import pytest
import torch

from helpers.numerics import randomise, rel_err
from helpers.reference import (
    SMALL,
    SMALL_PRE,
    randomised_reference,
    reference_for,
)
from mmvheat.checkpoint import map_legacy_keys
from mmvheat.models import VHeat


# ---------------------------------------------------------------- fidelity
@pytest.mark.slow  # full-size archs; test_hco_impls covers reduced ones
@pytest.mark.parametrize('arch', ['tiny', 'small'])
def test_matches_reference_with_fve_resize(arch):
    """On identical weights (the authors' key layout, loaded strictly) the
    outputs equal the literal reference, at the FVE's own size and at sizes
    that need the bicubic FVE resize."""
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=128).eval()
    ref, _ = randomised_reference(model, outnorm=True)
    ref.eval()
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
    from mmvheat.checkpoint import classifier_state_dict
    clf = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='mmvheat.VHeat', arch=SMALL_PRE, img_size=64),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10,
                      in_channels=32))).eval()
    ref = reference_for(clf.backbone, num_classes=10).eval()
    official = randomise(ref)
    clf.load_state_dict(classifier_state_dict(official), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(clf(x, mode='tensor'), ref(x)) < 1e-5


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


@pytest.mark.parametrize('arch', ['tiny', pytest.param('small',
                                                        marks=pytest.mark.slow)])
def test_authors_layout_loads_strictly_and_ours_is_plain(arch):
    """The authors' downstream backbone keys (Mask R-CNN/UperNet files)
    load with strict=True; our state dict is the plain layout, which loads
    back too, and the key map is idempotent."""
    model = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=512)
    authors = reference_for(model, outnorm=True).state_dict()
    assert 'layers.0.2.0.weight' in authors  # downsample inside the stage
    assert authors['layers.0.0.mlp.fc1.weight'].dim() == 4
    model.load_state_dict(authors, strict=True)
    ours = model.state_dict()
    c = model.dims[0]
    assert ours['freq_embed.0'].shape == (128, 128, c)
    assert ours['layers.0.0.mlp.fc1.weight'].shape == (4 * c, c)
    assert ours['downsamples.0.0.weight'].shape == (2 * c, c, 3, 3)
    assert ours['downsamples.0.1.weight'].shape == (2 * c, )
    assert ours['patch_embed.norm1.weight'].shape == (c // 2, )
    assert not any(k.startswith('layers.0.2.') for k in ours)
    assert sorted(map_legacy_keys(authors)) == sorted(ours)
    assert list(map_legacy_keys(ours)) == list(ours)
    twin = VHeat(arch, out_indices=(0, 1, 2, 3), img_size=512)
    twin.load_state_dict(ours, strict=True)
    for key, value in twin.state_dict().items():
        assert torch.equal(value, ours[key]), key


def test_legacy_map_only_touches_the_backbone_prefix():
    state = {'backbone.layers.1.2.0.weight': torch.zeros(1),
             'neck.layers.1.2.0.weight': torch.zeros(1),
             'backbone.layers.0.0.mlp.fc1.weight': torch.zeros(4, 2, 1, 1)}
    mapped = map_legacy_keys(state, 'backbone.')
    assert list(mapped) == ['backbone.downsamples.1.0.weight',
                            'neck.layers.1.2.0.weight',
                            'backbone.layers.0.0.mlp.fc1.weight']
    assert mapped['backbone.layers.0.0.mlp.fc1.weight'].shape == (4, 2)


def test_official_classification_keys_leave_only_classifier():
    model = VHeat(SMALL_PRE, out_indices=(3, ))
    official = reference_for(model, num_classes=5).state_dict()
    missing, unexpected = model.load_state_dict(official, strict=False)
    assert sorted(missing) == ['outnorm3.bias', 'outnorm3.weight']
    assert sorted(unexpected) == [
        'classifier.0.bias', 'classifier.0.weight', 'classifier.3.bias',
        'classifier.3.weight'
    ]


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
        assert out.is_contiguous()
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
        f'{part}.{i}.' for i in range(frozen)
        for part in ('layers', 'downsamples')
    ] + [f'freq_embed.{i}' for i in range(frozen)
         ] + [f'outnorm{i}.' for i in range(frozen)]
    for name, param in model.named_parameters():
        is_frozen = any(name.startswith(p) for p in frozen_prefixes)
        assert param.requires_grad != is_frozen, name
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in frozen_prefixes):
            assert not module.training, name
    assert model.layers[frozen].training
    sum(o.sum() for o in model(torch.randn(1, 3, 32, 32))).backward()
    assert model.patch_embed.conv1.weight.grad is None
    assert model.layers[frozen][0].op.linear.weight.grad is not None


def test_bad_frozen_stages():
    with pytest.raises(ValueError, match='frozen_stages'):
        VHeat(SMALL, frozen_stages=5)


def _outputs_and_grads(model, x, seed=7):
    torch.manual_seed(seed)  # same drop-path draws
    model.train()
    xi = x.clone().requires_grad_()
    outs = model(xi)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
        for o in outs).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    return outs, xi.grad, grads


@pytest.mark.parametrize('variant', [dict(with_cp=True),
                                     dict(selective_cp=True)])
def test_checkpointing_same_outputs_and_gradients(variant):
    """Plain autograd (the default), full per-block checkpointing and
    selective checkpointing give the same outputs and gradients, drop path
    included."""
    default = VHeat(SMALL, out_indices=(0, 3), drop_path_rate=0.3)
    other = VHeat(SMALL, out_indices=(0, 3), drop_path_rate=0.3, **variant)
    other.load_state_dict(default.state_dict())
    x = torch.randn(2, 3, 50, 41)
    (o1, gx1, g1), (o2, gx2, g2) = (_outputs_and_grads(default, x),
                                    _outputs_and_grads(other, x))
    for a, b in zip(o1, o2):
        assert rel_err(b, a) < 1e-6
    assert rel_err(gx2, gx1) < 1e-5
    assert g1.keys() == g2.keys()
    for name in g1:
        assert rel_err(g2[name], g1[name]) < 1e-4, name


def test_selective_checkpointing_under_autocast():
    """bf16 autocast with backward inside the context: the recomputation
    replays the forward's autocast state, so gradients equal plain
    autograd's under the same autocast (backward outside the context, the
    usual recipe: tests/test_models/test_amp.py)."""
    a = VHeat(SMALL, out_indices=(3, ), drop_path_rate=0., selective_cp=True)
    b = VHeat(SMALL, out_indices=(3, ), drop_path_rate=0.)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 40, 40)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ra, rb = _outputs_and_grads(a, x), _outputs_and_grads(b, x)
    for name in ra[2]:
        assert rel_err(ra[2][name], rb[2][name]) < 1e-2, name


def test_drop_path_rates_rise_linearly():
    model = VHeat(SMALL, drop_path_rate=0.5)
    rates = [b.drop_path.drop_prob for stage in model.layers for b in stage]
    assert rates == pytest.approx(torch.linspace(0, 0.5, 5).tolist())


# ---------------------------------------------------------------- deploy
def test_deploy_equals_plain_form_any_size():
    model = VHeat(SMALL, out_indices=(0, 1, 2, 3), img_size=64).eval()
    randomise(model)
    assert not model.deployed
    assert all(b.op.decay_table is None for s in model.layers for b in s)
    sizes = [(64, 64), (45, 77), (64, 64)]
    xs = [torch.randn(1, 3, *s) for s in sizes]
    with torch.no_grad():
        expected = [model(x) for x in xs]
        model.switch_to_deploy()
        assert model.deployed
        for x, exp in zip(xs, expected):
            for a, b in zip(model(x), exp):
                assert rel_err(a, b) <= 1e-6
    op = model.layers[0][0].op
    assert op.decay_table.shape == (16, 16, 16)  # the FVE's grid only
    assert not any('table' in k for k in model.state_dict())
    model.switch_to_deploy((45, 77))  # tables for another input size
    assert op.decay_table.shape == (12, 20, 16)
    model.remove_decay_tables()
    assert not model.deployed


def test_deployed_model_keeps_its_tables_until_deployed_again():
    """Documented (the deploy contract's one manual case): in-place writes
    in eval mode are not seen until switch_to_deploy() (or
    remove_decay_tables()) is called again; tests/test_models/
    test_deploy_contract.py covers what is automatic."""
    model = VHeat(SMALL, out_indices=(3, ), img_size=64).eval()
    model.switch_to_deploy()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model.freq_embed[1].add_(1.0)
        model.layers[2][0].op.to_k[0].bias.add_(0.5)
        stale = model(x)[0]
        model.switch_to_deploy()
        after = model(x)[0]
    fresh = VHeat(SMALL, out_indices=(3, ), img_size=64).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = fresh(x)[0]
    assert rel_err(after, expected) <= 1e-6
    assert rel_err(stale, expected) > 1e-3


def test_deployed_stage_reads_tables_not_the_fve():
    """At the deployed size the stage skips the FVE resize (the tables hold
    the factors); at another size it resizes and computes them."""
    model = VHeat(SMALL, out_indices=(3, ), img_size=64).eval()
    x, other = torch.randn(1, 3, 64, 64), torch.randn(1, 3, 40, 52)
    with torch.no_grad():
        expected = model(x)[0]
        model.switch_to_deploy()
        for fve in model.freq_embed:
            fve.fill_(float('nan'))
        assert rel_err(model(x)[0], expected) <= 1e-6
        assert torch.isnan(model(other)[0]).all()


def test_hco_without_fve_or_fitting_table_says_so():
    model = VHeat(SMALL, img_size=64)
    op = model.layers[0][0].op
    x = torch.randn(1, 16, 16, op.dim)
    with pytest.raises(ValueError, match=r'FVE of the \(16, 16\) map: '
                       'its decay table is missing'):
        op(x)
    model.switch_to_deploy(32)
    with pytest.raises(ValueError, match=r'decay table is for \(8, 8\)'):
        op(x)
    small = torch.randn(1, 8, 8, op.dim)
    assert op.table_fits(small) and op(small).shape == small.shape


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
    with pytest.raises(ValueError, match="hco_impl must be one of .*'dense'"):
        VHeat(SMALL, hco_impl='dense')


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


@pytest.mark.parametrize('dtype,hint', [
    (torch.float16, r'float16 images but its weights are torch.float32: '
     r'run under torch.autocast.*\.half\(\)'),
    (torch.float64, r'float64 images .* torch.float32'),
    (torch.uint8, r'uint8 images .* convert the images with \.float\(\) '
     'and normalise'),
])
def test_input_dtype_checked_at_entry(dtype, hint):
    model = VHeat(SMALL_PRE)
    with pytest.raises(TypeError, match=hint):
        model(torch.zeros(1, 3, 32, 32).to(dtype))


def test_autocast_and_half_models_still_run():
    model = VHeat(SMALL_PRE).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.isfinite(model(x)[0]).all()
    with torch.no_grad():
        out = model.to(torch.bfloat16)(x.to(torch.bfloat16))[0]
    assert out.dtype == torch.bfloat16
