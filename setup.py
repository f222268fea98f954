"""Packaging for mmvheat."""
import os
import os.path as osp
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    """Read ``__version__`` from ``mmvheat/version.py`` without importing."""
    namespace: dict = {}
    with open(osp.join(HERE, 'mmvheat', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def parse_requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` (comments dropped)."""
    lines = []
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                lines.append(line)
    return lines


# What `mim search/download/train mmvheat` read from an installed package:
# the model index, the metafiles and configs it names, and the tools.
MIM_FILES = ('model-index.yml', 'configs', 'tools')


class BuildPyWithMimIndex(build_py):
    """build_py that also puts ``MIM_FILES`` under ``mmvheat/.mim/`` in the
    build, as OpenMMLab packages ship them (the source tree is untouched)."""

    def run(self) -> None:
        super().run()
        target = osp.join(self.build_lib, 'mmvheat', '.mim')
        for name in MIM_FILES:
            src, dst = osp.join(HERE, name), osp.join(target, name)
            if osp.isdir(src):
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns('__pycache__'))
            elif osp.isfile(src):
                os.makedirs(target, exist_ok=True)
                shutil.copy2(src, dst)


setup(
    name='mmvheat',
    version=get_version(),
    description='vHeat (Building Vision Models upon Heat Conduction) for '
    'mmpretrain, mmdetection and mmsegmentation',
    long_description=open(osp.join(HERE, 'README.md')).read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'tests.*')),
    python_requires='>=3.8',
    # mmcv is deliberately absent: pip would try to build it in an isolated
    # environment without torch. tools/install.sh builds it.
    install_requires=parse_requirements('runtime'),
    extras_require={
        'tasks': parse_requirements('tasks'),
        'mmcv': parse_requirements('mminstall'),
        'tests': parse_requirements('tests'),
    },
    cmdclass={'build_py': BuildPyWithMimIndex},
    zip_safe=False,
)
