"""The ``hco_impl`` parameter names of the tests."""


def resolve_impl(request, impl: str) -> str:
    """A test's ``hco_impl`` parameter: ``'split-small'`` is ``'split'``
    with the ``split_everywhere`` fixture applied; other names are as they
    are."""
    if impl == 'split-small':
        request.getfixturevalue('split_everywhere')
        return 'split'
    return impl
