"""mmvheat: the vHeat backbone for mmpretrain, mmdetection and
mmsegmentation."""
from .version import __version__

__all__ = ['__version__']
