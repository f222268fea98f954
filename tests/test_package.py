"""The top-level package: ``import mmvheat`` imports nothing else, and
``mmvheat.VHeat`` (the name the README and the docs use) is the class of
``mmvheat.models``, imported on first use without the task libraries."""
import subprocess
import sys

from helpers.paths import REPO_ROOT

CODE = """
import sys
import mmvheat
assert 'torch' not in sys.modules, 'import mmvheat imported torch'
assert 'mmvheat.models' not in sys.modules
from mmvheat.models import HeatBlock, HeatConductionOperator, VHeat
assert mmvheat.VHeat is VHeat
assert mmvheat.HeatBlock is HeatBlock
assert mmvheat.HeatConductionOperator is HeatConductionOperator
assert {'VHeat', 'HeatBlock', 'HeatConductionOperator'} <= set(dir(mmvheat))
try:
    mmvheat.NoSuchName
except AttributeError as err:
    assert 'NoSuchName' in str(err)
else:
    raise AssertionError('mmvheat.NoSuchName did not raise')
loaded = sorted({m.split('.')[0] for m in sys.modules}
                & {'mmdet', 'mmseg', 'mmpretrain', 'timm'})
assert not loaded, loaded
print('ok')
"""


def test_lazy_public_names():
    proc = subprocess.run([sys.executable, '-c', CODE], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == 'ok'
