"""The authors'-layout oracle
(:class:`mmvheat.analysis.reference_vheat.ReferenceVHeat`) for a model, and
the reduced archs the fidelity tests use."""
from .numerics import randomise

# Reduced archs for tests where the full size is not the point; SMALL has
# post_norm and layer scale on, so both block variants are covered.
SMALL = dict(depths=[1, 2, 1, 1], dims=16, post_norm=True, layer_scale=0.5)
SMALL_PRE = dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32])


def reference_for(model, **kwargs):
    """The authors'-layout oracle with ``model``'s arch (VHeat) and FVE
    grid (:class:`mmvheat.analysis.reference_vheat.ReferenceVHeat`)."""
    from mmvheat.analysis.reference_vheat import ReferenceVHeat
    s = model.arch_settings
    return ReferenceVHeat(s['depths'], s['dims'], s['post_norm'],
                          s['layer_scale'], model.img_size[0], **kwargs)


def randomised_reference(model, **kwargs):
    """:func:`reference_for` ``model`` with random weights (via
    :func:`helpers.numerics.randomise`), loaded into ``model`` too (the
    authors' key layout, mapped on load). Returns ``(reference, its state
    dict)``."""
    ref = reference_for(model, **kwargs)
    sd = randomise(ref)
    own = {k: v for k, v in sd.items() if not k.startswith('classifier.')}
    model.load_state_dict(own, strict=not kwargs.get('num_classes'))
    return ref, sd
