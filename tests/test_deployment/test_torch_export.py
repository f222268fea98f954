"""``torch.export`` of the backbone with named dynamic dims H and W: one
program for every size from 33 up (multiples of 32 or not), equal to the
eager model; a deployed model refuses dynamic shapes in one line."""
import pytest
import torch

from helpers.numerics import perturbed_vheat, rel_err
from mmvheat.deployment import (
    EXPORT_MIN_SIZE,
    exportable_backbone,
    image_dims,
)
from mmvheat.models import VHeat

ARCH = dict(depths=[1, 1, 2, 1], dims=8, post_norm=True, layer_scale=0.5)


def small_vheat(**kwargs) -> VHeat:
    return perturbed_vheat(ARCH, **kwargs)


def export(module, max_batch=None):
    with torch.no_grad():
        return torch.export.export(
            module, (torch.randn(1 if max_batch is None else 2, 3, 64, 64), ),
            dynamic_shapes=(image_dims(512, max_batch=max_batch), ))


@pytest.mark.parametrize('form', ['exportable', 'default'])
def test_named_dims_export_serves_any_size(form):
    """The dynamic copy of mmvheat.deployment ('matmul' filter; with a
    dynamic batch too) and the plain undeployed model (default 'split'
    filter) both export with named dims from 33 to 512, and the program
    computes the eager model's outputs at sizes that are not multiples of
    32."""
    model = small_vheat()
    if form == 'exportable':
        program, batches = export(exportable_backbone(model), 8), (1, 3, 1)
    else:
        program, batches = export(model), (1, 1, 1)
    sides = {r for r in program.range_constraints.values()
             if r.lower != 1}
    assert {(r.lower, r.upper) for r in sides} == {(EXPORT_MIN_SIZE, 512)}
    run = program.module()
    for b, (h, w) in zip(batches, [(45, 77), (33, 96), (130, 40)]):
        shape = (b, h, w)
        x = torch.randn(shape[0], 3, *shape[1:])
        with torch.no_grad():
            got, expected = run(x), model(x)
        assert [o.shape for o in got] == [e.shape for e in expected]
        assert max(rel_err(o, e) for o, e in zip(got, expected)) < 1e-5


def test_sides_below_33_are_refused_with_the_reason():
    with pytest.raises(ValueError, match='at least 33, got min_size=32: '
                       'at 32 the stride-32 map is one cell wide'):
        image_dims(min_size=32)
    with pytest.raises(ValueError, match='max_size'):
        image_dims(max_size=16)


def test_deployed_model_refuses_dynamic_shapes():
    model = small_vheat()
    model.switch_to_deploy((64, 96))
    with pytest.raises(RuntimeError, match='VHeat is deployed for 64x96 '
                       'inputs .* cannot be traced with dynamic shapes: '
                       'export it with static shapes, or export an '
                       'undeployed model'):
        export(model)
    # eager calls and torch.compile are not exports: no refusal
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 40))[0].shape == (1, 8, 10, 10)
