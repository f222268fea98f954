"""Shared helpers of the test suite, one module per concern; tests import
them as ``from helpers.<module> import ...`` (``tests/`` is on ``sys.path``
through ``pythonpath`` in pyproject.toml). Fixtures and hooks stay in
``tests/conftest.py``.

* :mod:`helpers.paths` -- the repository root.
* :mod:`helpers.numerics` -- relative error, randomised weights.
* :mod:`helpers.reference` -- the authors'-layout oracle and reduced archs.
* :mod:`helpers.impls` -- the ``hco_impl`` parameter names of the tests.
* :mod:`helpers.checkpoints` -- files in the authors' released formats.
* :mod:`helpers.tiny_classifier` -- a tiny mmpretrain classifier config and
  its checkpoints, for the tools' error paths.
* :mod:`helpers.server` -- a local HTTP server for download tests.
* :mod:`helpers.detection` -- the demo Mask R-CNN and its inputs.
"""
