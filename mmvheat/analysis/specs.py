"""Model specs: the one meaning of ``--models`` in every tool.

A spec names a model the analysis tools build by themselves (no config):

* ``vheat-{t,s,b}[:IMPL][+sac|+nocp]``: vHeat-T/S/B; ``IMPL`` is the HCO's
  DCT implementation (one of :data:`mmvheat.ops.HCO_IMPLS`; without it the
  model's default, ``split``) or ``reference`` (the authors' layout and
  arithmetic, :mod:`mmvheat.analysis.reference_vheat`); ``+sac`` turns
  selective activation checkpointing on, ``+nocp`` keeps it off (the
  default);
* ``swin-{t,s,b}`` and ``convnext-{t,s,b}``: mmpretrain's backbones.

The older arch names ``tiny``, ``small`` and ``base`` (what
``get_flops.py --archs`` and ``benchmark_stream.py --arch`` took) are read
as ``vheat-t``, ``vheat-s`` and ``vheat-b``.
"""
import argparse
from typing import List, Optional, Sequence, Tuple

from mmvheat.ops import DEFAULT_IMPL, HCO_IMPLS

SPEC_IMPLS = HCO_IMPLS + ('reference', )
ARCHS = {'t': 'tiny', 's': 'small', 'b': 'base'}
FAMILIES = ('vheat', 'swin', 'convnext')
# every spec of a family at each size, with each vHeat implementation
ALL_MODELS = [f'vheat-{s}:{i}' for s in ARCHS for i in SPEC_IMPLS] + [
    f'{f}-{s}' for f in FAMILIES[1:] for s in ARCHS]
SPEC_HELP = ('model specs: vheat-{t,s,b}[:IMPL][+sac|+nocp] with IMPL one '
             f"of {', '.join(SPEC_IMPLS)} (default: the model's, "
             f'{DEFAULT_IMPL}), swin-{{t,s,b}}, convnext-{{t,s,b}}')


def parse_spec(spec: str) -> Tuple[str, str, str]:
    """``'vheat-t:reference'`` -> ('vheat', 'tiny', 'reference');
    ``'vheat-t:matmul+sac'`` -> ('vheat', 'tiny', 'matmul+sac');
    ``'vheat-t+sac'`` -> ('vheat', 'tiny', 'split+sac');
    ``'swin-t'`` -> ('swin', 'tiny', '').

    Raises:
        ValueError: A spec outside the grammar, saying what is expected.
    """
    base, plus, option = spec.partition('+')
    name, _, impl = base.partition(':')
    if plus and (option not in ('sac', 'nocp') or not name.startswith(
            'vheat') or impl == 'reference'):
        raise ValueError(f'{spec!r}: the options are +sac and +nocp, for '
                         'vheat models other than :reference')
    family, _, size = name.partition('-')
    if family not in FAMILIES or size not in ARCHS:
        raise ValueError(f'unknown model {spec!r}; expected vheat-{{t,s,b}}'
                         '[:IMPL], swin-{t,s,b} or convnext-{t,s,b}')
    if impl and family != 'vheat':
        raise ValueError(f'{spec!r}: only vheat models take an :IMPL')
    if family == 'vheat':
        impl = impl or DEFAULT_IMPL
        if impl not in SPEC_IMPLS:
            raise ValueError(f'{spec!r}: IMPL must be one of {SPEC_IMPLS}')
    return family, ARCHS[size], impl + plus + option


def spec_impl(spec: str) -> Optional[str]:
    """The ``:IMPL`` a spec names itself (without ``+`` options), or None
    when it names none (the model's default applies)."""
    base = spec.partition('+')[0]
    return base.partition(':')[2] or None


def model_spec(text: str) -> str:
    """argparse ``type`` of ``--models``: a valid spec (``'all'`` passes
    through for the tool to expand), the old arch names read as vHeat."""
    if text == 'all':
        return text
    legacy = {v: f'vheat-{k}' for k, v in ARCHS.items()}
    spec = legacy.get(text, text)
    try:
        parse_spec(spec)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return spec


def add_models_arg(parser: argparse.ArgumentParser,
                   default: Optional[Sequence[str]], what: str,
                   **kwargs) -> argparse.Action:
    """``--models SPEC [SPEC ...]``: the model specs of this module, with
    ``what`` (the tool's use of them) before the grammar in the help."""
    return parser.add_argument(
        '--models', nargs='+', type=model_spec, default=default,
        metavar='SPEC', help=f'{what}; {SPEC_HELP}', **kwargs)


def expand_models(models: Optional[Sequence[str]],
                  everything: Sequence[str]) -> Optional[List[str]]:
    """``models`` with ``'all'`` replaced by ``everything``."""
    if models is None:
        return None
    out = []
    for spec in models:
        out += list(everything) if spec == 'all' else [spec]
    return list(dict.fromkeys(out))


def unsupported(models: Sequence[str], families: Sequence[str],
                reference: bool = True) -> Optional[str]:
    """The error message for the first spec of ``models`` a tool cannot
    run (another family than ``families``, or ``:reference`` when
    ``reference`` is False); None when it runs them all."""
    for spec in models:
        family, _, impl = parse_spec(spec)
        if family not in families or (not reference
                                      and impl == 'reference'):
            kinds = ', '.join(f'{f}-{{t,s,b}}' for f in families)
            return (f'this tool runs {kinds} models'
                    + ('' if reference else ' (not :reference)')
                    + f', got {spec!r}')
    return None
