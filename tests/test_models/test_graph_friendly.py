"""The plain model: layers run as modules (hooks, swaps), no hidden or
process-wide state, outputs independent of autograd, PyTorch's own EMA,
torch.compile and torch.fx."""
import copy

import pytest
import torch
import torch.nn as nn

from helpers.numerics import randomise, rel_err
from helpers.reference import SMALL
from mmvheat.models import VHeat

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
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_hooks_fire_on_every_layer(mode):
    model = build().train(mode == 'train')
    fired, every = fired_layers(model, torch.randn(1, 3, 64, 64),
                                grad=mode == 'train')
    assert fired == every and len(every) == 59


def test_deployed_model_skips_only_to_k_where_tables_serve():
    model = build().eval()
    model.switch_to_deploy()
    fired, every = fired_layers(model, torch.randn(1, 3, 64, 64), grad=False)
    assert every - fired == {n for n in every if '.to_k.' in n}
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


# ------------------------------------------------------------ no hidden state
def test_model_keeps_no_buffers_and_registers_no_global_hooks():
    """Before deploy the model's state is its parameters; building and
    training it leaves torch.optim's global hooks and nn.Module alone."""
    from torch.optim import optimizer as optim_mod
    hooks_before = (dict(optim_mod._global_optimizer_post_hooks),
                    dict(optim_mod._global_optimizer_pre_hooks))
    model = build()
    assert list(model.buffers()) == []
    assert type(model)._apply is nn.Module._apply
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sum(o.sum() for o in model(torch.randn(1, 3, 32, 32))).backward()
    opt.step()
    assert (dict(optim_mod._global_optimizer_post_hooks),
            dict(optim_mod._global_optimizer_pre_hooks)) == hooks_before
    # same buffers (none) in both modes
    assert [b.shape for b in model.eval().buffers()] == [
        b.shape for b in model.train().buffers()]


def test_averaged_model_ema_evaluated_between_updates():
    """PyTorch's own EMA wrapper: update, evaluate the averaged copy, update
    again (it copies buffers, and no buffer changes shape)."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
    model = build(img_size=32)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5),
                        use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, 32, 32)
    for _ in range(2):
        model.train()
        sum(o.sum() for o in model(x)).backward()
        opt.step()
        opt.zero_grad()
        ema.update_parameters(model)
        ema.eval()
        with torch.no_grad():
            got = ema(x)
        fresh = build(img_size=32).eval()
        fresh.load_state_dict(ema.module.state_dict())
        with torch.no_grad():
            for a, b in zip(got, fresh(x)):
                assert rel_err(a, b) < 1e-6
        ema.train()


def test_in_place_writes_in_eval_mode_are_used_by_the_next_forward():
    model = build().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        for p in model.parameters():
            p.mul_(0.9).add_(0.01)
        got = model(x)
    fresh = build().eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        for a, b in zip(got, fresh(x)):
            assert rel_err(a, b) < 1e-6


@pytest.mark.parametrize('deploy', [False, True])
def test_eval_outputs_do_not_depend_on_autograd(deploy):
    model = build().eval()
    if deploy:
        model.switch_to_deploy()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
    with torch.inference_mode():
        inference = model(x)
    recorded = model(x.clone().requires_grad_())
    for a, b, c in zip(plain, inference, recorded):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c.detach(), rtol=0, atol=0)


def test_importing_the_model_imports_no_task_library():
    """``import mmvheat``, ``mmvheat.models`` and ``mmvheat.timm`` leave
    mmdet, mmseg and mmpretrain unimported and mmengine's checkpoint
    loaders as they were."""
    import subprocess
    import sys
    code = (
        'import sys\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        'before = dict(CheckpointLoader._schemes)\n'
        'import mmvheat, mmvheat.models, mmvheat.timm\n'
        'bad = [m for m in ("mmdet", "mmseg", "mmpretrain") '
        'if m in sys.modules]\n'
        'assert not bad, bad\n'
        'assert dict(CheckpointLoader._schemes) == before\n'
        'import mmvheat.engine\n'
        'assert dict(CheckpointLoader._schemes) != before\n'
        'print("ok")\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'ok'


def test_torch_fx_traces_forward():
    """torch.fx symbolic tracing (timm's fx feature extraction) works; the
    input check is a leaf."""
    import torch.fx
    model = build().eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 45, 70)
    with torch.no_grad():
        for a, b in zip(graph(x), model(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


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


SLOW = pytest.mark.slow


@pytest.mark.parametrize('split', [False, pytest.param(True, marks=SLOW)])
@pytest.mark.parametrize('deploy', [False, pytest.param(True, marks=SLOW)])
def test_compile_fullgraph_eval_without_autograd(deploy, split, request):
    """No graph break (fullgraph) at the FVE's size (tables when deployed)
    and at a non-square size that is not a multiple of 32 (in-graph
    factors); each size compiles once. ``split``: the 'split' filter with
    the even/odd split from length 4, so every map takes it."""
    if split:
        request.getfixturevalue('split_everywhere')
    model = build(img_size=64, hco_impl='split' if split else 'matmul')
    model.eval()
    if deploy:
        model.switch_to_deploy()
    compiled, counter = compile_counted(model)
    with torch.no_grad():
        for size in [(64, 64), (45, 70), (64, 64), (45, 70)]:
            x = torch.randn(1, 3, *size)
            for a, b in zip(compiled(x), model(x)):
                assert rel_err(a, b) < 1e-5
    assert counter.frame_count <= 2


@pytest.mark.parametrize('selective', [False, True])
@pytest.mark.parametrize('split', [False, pytest.param(True, marks=SLOW)])
def test_compile_fullgraph_training_forward_backward(split, selective,
                                                    request):
    """Training (plain, and with selective checkpointing) compiles without
    a graph break and gives the gradients of eager mode."""
    if split:
        request.getfixturevalue('split_everywhere')
    model = build(hco_impl='split' if split else 'matmul',
                  selective_cp=selective).train()
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
def _ema_run(work_dir) -> tuple:
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
            self.backbone = VHeat(SMALL, img_size=32, drop_path_rate=0.)
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


@pytest.mark.slow
def test_ema_hook_validation_uses_the_ema_weights(tmp_path):
    """mmengine's EMAHook swaps the EMA weights in place before validation:
    the metric equals that of a fresh model loaded with the EMA weights."""
    logit_sum, runner = _ema_run(tmp_path / 'ema')
    ema = runner.model if not hasattr(runner.model, 'module') else \
        runner.model.module
    hook = [h for h in runner.hooks if type(h).__name__ == 'EMAHook'][0]
    fresh = type(ema)()
    fresh.load_state_dict(hook.ema_model.module.state_dict())
    fresh.eval()
    total = 0.
    with torch.no_grad():
        for data in runner.val_dataloader:
            for logit, _ in fresh(**data):
                total += logit.double().sum().item()
    assert logit_sum == pytest.approx(total, rel=1e-5, abs=1e-5)
