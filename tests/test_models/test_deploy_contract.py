"""The deploy contract of :meth:`VHeat.switch_to_deploy`: decay tables are
read only in eval mode and for their own size, ``train()`` drops them,
loading weights rebuilds them, and the filter choice lives in
``VHeat.hco_impl`` alone."""
import copy

import pytest
import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint
from mmengine.runner import load_state_dict as mmengine_load_state_dict

from helpers.numerics import rel_err
from mmvheat.models import VHeat

ARCH = dict(depths=[1, 1, 2, 1], dims=8)
SIZE = 64


def build(seed: int = 0, **kwargs) -> VHeat:
    """A small VHeat with distinct random weights (FVEs and to_k too)."""
    torch.manual_seed(seed)
    model = VHeat(ARCH, img_size=SIZE, out_indices=(0, 1, 2, 3),
                  drop_path_rate=0., **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def images(size=SIZE, batch=2):
    return torch.randn(batch, 3, size, size,
                       generator=torch.Generator().manual_seed(5))


def outputs(model, x):
    with torch.no_grad():
        return model(x)


def assert_outputs_close(got, expected, tol=1e-6):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert rel_err(a, b) <= tol


def grads(model, x):
    model.zero_grad()
    sum(o.square().mean() for o in model(x)).backward()
    return {n: p.grad for n, p in model.named_parameters()}


def test_deployed_property_follows_the_state():
    model = build()
    assert not model.deployed and model.deploy_size is None
    model.switch_to_deploy()
    assert model.deployed and model.deploy_size == (SIZE, SIZE)
    assert not model.training  # a deployed model is an inference model
    model.eval()
    assert model.deployed
    model.train()
    assert not model.deployed and model.deploy_size is None
    assert all(b.op.decay_table is None for s in model.layers for b in s)
    model.switch_to_deploy((48, 80))
    assert model.deploy_size == (48, 80)
    model.remove_decay_tables()
    assert not model.deployed
    assert all(b.op.decay_table is None for s in model.layers for b in s)


def test_deployed_eval_output_equals_undeployed():
    model = build().eval()
    x = images()
    expected = outputs(model, x)
    model.switch_to_deploy()
    assert_outputs_close(outputs(model, x), expected)
    other = images(48)  # another size computes its factors
    model.remove_decay_tables()
    expected = outputs(model, other)
    model.switch_to_deploy()
    assert_outputs_close(outputs(model, other), expected)


def test_deploy_then_train_gives_every_gradient():
    """train() drops the tables: the FVEs and to_k get the gradients an
    undeployed twin gets."""
    model, twin = build(), build()
    model.switch_to_deploy()
    model.train()
    twin.train()
    x = images()
    got, expected = grads(model, x), grads(twin, x)
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        assert got[name] is not None, name
        assert torch.equal(got[name], grad), name
    assert any(name.startswith('freq_embed') for name in got)
    assert any('to_k' in name for name in got)


def test_training_mode_never_reads_a_table():
    """Even with tables present (a submodule's mode set by hand), an op in
    training mode computes its factors from the parameters."""
    model, twin = build(), build()
    model.switch_to_deploy()
    for stage in model.layers:
        for block in stage:
            block.op.decay_table.fill_(float('nan'))
    for module in model.modules():  # not VHeat.train: tables stay
        module.training = True
    twin.train()
    x = images()
    assert_outputs_close(outputs(model, x), outputs(twin, x), tol=0)
    with pytest.raises(ValueError, match='not read in training mode'):
        op = model.layers[0][0].op
        op(torch.randn(1, SIZE // 4, SIZE // 4, op.dim))


@pytest.mark.parametrize('loader', ['torch', 'mmengine', 'checkpoint'])
def test_deployed_model_loading_weights_stays_deployed_and_correct(
        loader, tmp_path):
    model, other = build(0), build(1).eval()
    model.switch_to_deploy()
    x = images()
    expected = outputs(other, x)
    state = other.state_dict()
    if loader == 'torch':
        model.load_state_dict(state)
    elif loader == 'mmengine':
        mmengine_load_state_dict(model, state, strict=True)
    else:
        path = str(tmp_path / 'other.pth')
        torch.save(dict(state_dict=state), path)
        load_checkpoint(model, path, map_location='cpu', strict=True)
    assert model.deployed and model.deploy_size == (SIZE, SIZE)
    assert not model.training
    assert_outputs_close(outputs(model, x), expected)


@pytest.mark.parametrize('loader', ['torch', 'mmengine'])
def test_loading_through_a_parent_rebuilds_the_tables(loader):
    wrapper, other = nn.Sequential(build(0)), nn.Sequential(build(1)).eval()
    wrapper[0].switch_to_deploy((48, 48))
    x = images(48)
    expected = outputs(other, x)
    if loader == 'torch':
        wrapper.load_state_dict(other.state_dict())
    else:
        mmengine_load_state_dict(wrapper, other.state_dict(), strict=True)
    assert wrapper[0].deploy_size == (48, 48)
    assert_outputs_close(outputs(wrapper, x), expected)


def test_loading_into_an_undeployed_model_does_not_deploy_it():
    model = build(0)
    model.load_state_dict(build(1).state_dict())
    assert not model.deployed
    assert all(b.op.decay_table is None for s in model.layers for b in s)


def test_deploy_change_fve_train_eval_follows_the_new_weights():
    model = build().eval()
    model.switch_to_deploy()
    with torch.no_grad():  # in place, in eval mode: the documented case
        model.freq_embed[1].add_(1.0)
        model.layers[2][1].op.to_k[0].bias.add_(0.5)
    x = images()
    fresh = build().eval()
    fresh.load_state_dict(model.state_dict())
    expected = outputs(fresh, x)
    assert rel_err(outputs(model, x)[3], expected[3]) > 1e-3  # stale until...
    model.train()
    model.eval()  # ... training mode ended the deployed state
    assert not model.deployed
    assert_outputs_close(outputs(model, x), expected)
    model.switch_to_deploy()
    assert_outputs_close(outputs(model, x), expected)


def test_timm_reparameterize_copy_trains():
    from timm.utils.model import reparameterize_model

    from mmvheat.timm.vheat import VHeatTimm
    torch.manual_seed(0)
    model = VHeatTimm(ARCH, num_classes=3, img_size=SIZE, drop_path_rate=0.)
    deployed = reparameterize_model(model)
    assert deployed.backbone.deployed and not model.backbone.deployed
    deployed.train()
    model.train()
    assert not deployed.backbone.deployed
    x = images()
    got, expected = {}, {}
    for net, out in ((deployed, got), (model, expected)):
        net(x).square().mean().backward()
        out.update({n: p.grad for n, p in net.named_parameters()})
    assert got.keys() == expected.keys()
    for name, grad in expected.items():
        assert got[name] is not None and torch.equal(got[name], grad), name


def test_deepcopy_keeps_the_deployed_state():
    model = build()
    model.switch_to_deploy()
    copied = copy.deepcopy(model)
    assert copied.deployed and copied.deploy_size == (SIZE, SIZE)
    x = images()
    assert_outputs_close(outputs(copied, x), outputs(model, x), tol=0)


# ------------------------------------------------------- the filter choice
def test_hco_impl_lives_in_the_model_only():
    model = build().eval()
    assert model.hco_impl == 'split'
    assert not any(hasattr(b, 'impl') or hasattr(b.op, 'impl')
                   for s in model.layers for b in s)
    x = images()
    expected = outputs(model, x)
    for impl in ('matmul', 'fft', 'split'):
        model.hco_impl = impl
        assert model.hco_impl == impl
        assert_outputs_close(outputs(model, x), expected, tol=1e-5)
    with pytest.raises(ValueError, match="hco_impl must be one of .*'dense'"):
        model.hco_impl = 'dense'
    assert model.hco_impl == 'split'


def test_hco_impl_reaches_the_filter(monkeypatch):
    """Every block computes its filter with the model's hco_impl."""
    import mmvheat.models.backbones.heat_conduction as hc
    seen = []
    real = hc.heat_filter

    def spy(u, factors, impl, bases=None):
        seen.append(impl)
        return real(u, factors, impl, bases)

    monkeypatch.setattr(hc, 'heat_filter', spy)
    model = build(hco_impl='fft')
    model(images(batch=1))
    assert seen == ['fft'] * sum(ARCH['depths'])
    seen.clear()
    model.hco_impl = 'matmul'
    model.with_cp = True  # the checkpointed path passes it too
    model.train()
    model(images(batch=1))
    assert set(seen) == {'matmul'}
