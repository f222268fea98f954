"""The plain core: layers run as modules (hooks, swaps), decay tables that
are never stale, torch.compile with fullgraph, a deterministic default."""
import copy

import pytest
import torch
import torch.nn as nn

from conftest import rel_err
from mmvheat.models import VHeat
from mmvheat.ops import autotune
from test_vheat import SMALL, randomise

LAYERS = (nn.Linear, nn.Conv2d, nn.LayerNorm)


def build(**kwargs):
    kwargs.setdefault('out_indices', (0, 1, 2, 3))
    kwargs.setdefault('img_size', 64)
    kwargs.setdefault('drop_path_rate', 0.)
    model = VHeat(SMALL, **kwargs)
    randomise(model)
    return model


def fired_layers(model, x, grad=True):
    """Names of the Linear/Conv2d/LayerNorm modules that ran as modules."""
    fired, handles = set(), []
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: fired.add(name)))
    with torch.set_grad_enabled(grad):
        model(x)
    for h in handles:
        h.remove()
    every = {n for n, m in model.named_modules() if isinstance(m, LAYERS)}
    return fired, every


# ------------------------------------------------------------ modules run
def test_hooks_fire_on_every_layer_in_training():
    model = build().train()
    fired, every = fired_layers(model, torch.randn(1, 3, 64, 64))
    assert fired == every and len(every) == 59


@pytest.mark.parametrize('deploy', [False, True])
def test_hooks_in_eval_skip_only_to_k_where_tables_serve(deploy):
    model = build(deploy=deploy).eval()
    fired, every = fired_layers(model, torch.randn(1, 3, 64, 64), grad=False)
    assert every - fired == {n for n in every if '.to_k.' in n}
    # at another size the factors are computed in the forward: all fire
    fired, every = fired_layers(model, torch.randn(1, 3, 50, 70), grad=False)
    assert fired == every


def test_quantize_dynamic_runs_and_stays_close():
    model = build().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expect = model(x)
        qmodel = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
        got = qmodel(x)
        assert not isinstance(qmodel.layers[0][0].op.linear, nn.Linear)
        for a, b in zip(got, expect):
            assert rel_err(a, b) < 0.1
        got_other = qmodel(torch.randn(1, 3, 45, 70))  # resized FVEs
    assert all(torch.isfinite(o).all() for o in got_other)


class LoRA(nn.Module):
    """A LoRA-style wrapper: base layer plus a low-rank update."""

    def __init__(self, base: nn.Linear, rank: int = 2) -> None:
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


def test_lora_wrapper_is_used_and_trains():
    model = build().train()
    x = torch.randn(1, 3, 45, 70)
    expect = [o.detach() for o in model(x)]
    op = model.layers[1][0].op
    op.linear = LoRA(op.linear)
    for a, b in zip(model(x), expect):  # zero-initialised update
        assert rel_err(a, b) < 1e-6
    sum(o.sum() for o in model(x)).backward()
    assert op.linear.up.weight.grad.abs().sum() > 0
    with torch.no_grad():
        op.linear.up.weight.fill_(0.1)
    assert rel_err(model(x)[1], expect[1]) > 1e-3


class Double(nn.Module):

    def forward(self, weight):
        return 2 * weight


def test_parametrize_is_honoured():
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.layers[0][0].mlp.fc1.weight.mul_(2)
        twin.layers[0][0].op.out_linear.weight.mul_(2)
    torch.nn.utils.parametrize.register_parametrization(
        model.layers[0][0].mlp.fc1, 'weight', Double())
    torch.nn.utils.parametrize.register_parametrization(
        model.layers[0][0].op.out_linear, 'weight', Double())
    with torch.no_grad():
        for a, b in zip(model(x), twin(x)):
            assert rel_err(a, b) < 1e-6


def test_state_dict_has_no_tables():
    model = build().eval()
    assert model.layers[0][0].op.decay_table.numel() > 0
    assert not any('decay_table' in k for k in model.state_dict())


# ------------------------------------------------------------ decay tables
def fresh_outputs(model, x):
    """Outputs of a model whose factors are computed in the forward."""
    twin = copy.deepcopy(model)
    twin.reuse_decay_tables = False
    twin.refresh_decay_tables()
    with torch.no_grad():
        return twin(x)


def assert_tables_fresh(model, x):
    assert model.layers[0][0].op.decay_table.numel() > 0
    with torch.no_grad():
        for a, b in zip(model(x), fresh_outputs(model, x)):
            assert rel_err(a, b) < 1e-6


def test_tables_only_kept_in_eval_and_used_there():
    model = build()
    assert model.layers[0][0].op.decay_table.numel() == 0  # training mode
    model.eval()
    table = model.layers[0][0].op.decay_table
    assert table.shape == (16, 16, 16)
    torch.testing.assert_close(
        table, model.layers[0][0].op.decay(model.freq_embed[0]).detach())
    model.train()
    assert model.layers[0][0].op.decay_table.numel() == 0


def test_tables_follow_in_place_writes_after_eval():
    """mmengine's EMAHook swaps weights with ``p.data.copy_`` and the val
    loop then calls ``model.eval()``."""
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
    for p in model.decay_table_sources():
        p.data.copy_(torch.randn_like(p) * 0.3)
    model.eval()
    assert_tables_fresh(model, x)
    with torch.no_grad():
        assert rel_err(model(x)[0], before[0]) > 1e-3


def test_tables_follow_load_state_dict_in_eval():
    model = build().eval()
    other = VHeat(SMALL, out_indices=(0, 1, 2, 3), img_size=64)
    model.load_state_dict(other.state_dict())
    assert_tables_fresh(model, torch.randn(1, 3, 64, 64))


def test_tables_follow_optimizer_steps_in_eval_mode():
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    optim = torch.optim.SGD(model.parameters(), lr=10.)
    sum(o.square().sum() for o in model(x)).backward()  # training form
    optim.step()
    assert_tables_fresh(model, x)


@pytest.mark.parametrize('convert', ['double', 'half', 'to'])
def test_tables_follow_dtype_and_device_moves(convert):
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    if convert == 'double':
        model.double()
        x = x.double()
        assert model.layers[0][0].op.decay_table.dtype == torch.float64
        expect = model.layers[0][0].op.decay(model.freq_embed[0]).detach()
        torch.testing.assert_close(model.layers[0][0].op.decay_table, expect,
                                   rtol=0, atol=0)
    elif convert == 'half':
        model.half()
        assert model.layers[0][0].op.decay_table.dtype == torch.float16
        return
    else:
        model.to('cpu')
    assert_tables_fresh(model, x)


def test_unbuilt_tables_fall_back_to_the_forward():
    """Reuse switched on without a refresh: the factors are computed."""
    model = build(reuse_decay_tables=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expect = model(x)
        model.reuse_decay_tables = True
        assert model.layers[0][0].op.decay_table.numel() == 0
        for a, b in zip(model(x), expect):
            assert rel_err(a, b) < 1e-6


def test_frozen_stages_keep_tables_in_training():
    model = build(frozen_stages=2).train()
    assert [model.layers[i][0].op.decay_table.numel() > 0
            for i in range(4)] == [True, True, False, False]
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    outs = model(x)
    sum(o.sum() for o in outs).backward()
    assert x.grad is not None


# ------------------------------------------------------------ determinism
def test_default_is_deterministic_matmul():
    autotune.clear_autotune()
    model = VHeat(SMALL, img_size=64)
    assert model.hco_impl == 'matmul'
    assert {b.op.impl for b in model.blocks()} == {'matmul'}
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        first = model(x)
        second = model(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert autotune.autotune_choices() == {}


# ------------------------------------------------------------ compile
def weighted_sum(outs):
    """A loss whose input gradient is not ~0 (a plain sum of LayerNorm
    outputs has a zero gradient in exact arithmetic)."""
    return sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
               for o in outs)


def compile_counted(model, **kwargs):
    import torch._dynamo.testing
    counter = torch._dynamo.testing.CompileCounter()
    torch._dynamo.reset()
    return torch.compile(model, backend=counter, fullgraph=True,
                         **kwargs), counter


@pytest.mark.parametrize('split', [False, True])
@pytest.mark.parametrize('deploy', [False, True])
def test_compile_fullgraph_eval_without_autograd(deploy, split, request):
    """No graph break (fullgraph) at the FVE's size (tables) and at a
    non-square size that is not a multiple of 32 (in-graph factors); each
    size compiles once. ``split``: the DCT's even/odd split from length 4,
    so every map takes it."""
    if split:
        request.getfixturevalue('split_everywhere')
    model = build(deploy=deploy, img_size=64).eval()
    compiled, counter = compile_counted(model)
    with torch.no_grad():
        for size in [(64, 64), (45, 70), (64, 64), (45, 70)]:
            x = torch.randn(1, 3, *size)
            for a, b in zip(compiled(x), model(x)):
                assert rel_err(a, b) < 1e-5
    assert counter.frame_count <= 2


@pytest.mark.parametrize('split', [False, True])
def test_compile_fullgraph_training_forward_backward(split, request):
    if split:
        request.getfixturevalue('split_everywhere')
    model = build().train()
    compiled, counter = compile_counted(model, dynamic=False)
    for size in [(64, 64), (45, 70)]:
        x = torch.randn(2, 3, *size)
        xa = x.clone().requires_grad_()
        xb = x.clone().requires_grad_()
        weighted_sum(compiled(xa)).backward()
        weighted_sum(model(xb)).backward()
        assert rel_err(xa.grad, xb.grad) < 1e-5
    assert counter.frame_count == 2


# ------------------------------------------------------------ EMAHook
def _ema_run(work_dir, reuse: bool) -> dict:
    """Train a tiny classifier for 2 epochs with mmengine's EMAHook in a real
    Runner; validation runs on the EMA weights at the FVE's own size."""
    import torch.nn.functional as F
    from mmengine.evaluator import BaseMetric, Evaluator
    from mmengine.model import BaseModel
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    class Classifier(BaseModel):

        def __init__(self):
            super().__init__()
            self.backbone = VHeat(SMALL, img_size=32, drop_path_rate=0.,
                                  reuse_decay_tables=reuse)
            self.head = nn.Linear(128, 3)

        def forward(self, inputs, labels, mode='tensor'):
            logits = self.head(
                self.backbone(torch.stack(inputs))[-1].mean((2, 3)))
            if mode == 'loss':
                return dict(loss=F.cross_entropy(logits, torch.stack(labels)))
            return list(zip(logits, labels))

    class Accuracy(BaseMetric):

        def process(self, data_batch, data_samples):
            self.results += [(logit.argmax().item() == label.item(),
                              logit.double().sum().item())
                             for logit, label in data_samples]

        def compute_metrics(self, results):
            return dict(accuracy=sum(r[0] for r in results) / len(results),
                        logit_sum=sum(r[1] for r in results))

    g = torch.Generator().manual_seed(0)
    data = [dict(inputs=torch.randn(3, 32, 32, generator=g),
                 labels=torch.tensor(i % 3)) for i in range(12)]
    loader = dict(dataset=data, batch_size=4, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmengine'):  # no leak
        return _train(Runner(
        model=Classifier(), work_dir=str(work_dir),
        train_dataloader=loader, val_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=2, val_interval=1),
        val_cfg=dict(), val_evaluator=Evaluator([Accuracy()]),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
        custom_hooks=[dict(type='EMAHook', momentum=0.5)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=100)),
        randomness=dict(seed=0), log_level='WARNING'))


def _train(runner) -> tuple:
    runner.train()
    return runner.message_hub.get_scalar('val/logit_sum').current(), runner


def test_ema_hook_validation_equal_with_table_reuse(tmp_path):
    reused, runner = _ema_run(tmp_path / 'reuse', reuse=True)
    fresh, _ = _ema_run(tmp_path / 'fresh', reuse=False)
    assert runner.model.backbone.reuse_decay_tables
    assert reused == pytest.approx(fresh, rel=1e-5, abs=1e-5)
