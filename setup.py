"""Installs fcosdet. ``pip install -e .`` (add ``[tests]`` for the test suite)."""
import os
import subprocess
import sys

from setuptools import find_packages, setup


def _installed(dist: str) -> bool:
    """Whether ``dist`` is installed in the environment pip installs into.

    Asked in a child interpreter without pip's build-isolation ``PYTHONPATH``: inside the isolated
    build environment the user's own packages are invisible to this process.
    """
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE')}
    probe = f'import importlib.metadata as m; m.version({dist!r})'
    return subprocess.run([sys.executable, '-c', probe], env=env,
                          capture_output=True).returncode == 0


def mmcv_requirement() -> str:
    """Keep a user's full mmcv (with compiled ops); otherwise ask for mmcv-lite.

    fcosdet needs no compiled op, so mmcv-lite (same ``mmcv`` import) is enough; installing it
    over a full mmcv would replace that package's Python files.
    """
    if any(_installed(dist) for dist in ('mmcv', 'mmcv-full')):
        return 'mmcv>=2.0.0,<2.3.0'
    return 'mmcv-lite>=2.0.0,<2.3.0'


def version() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, 'fcosdet', '__init__.py')) as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('fcosdet/__init__.py has no __version__')


setup(
    name='fcosdet',
    version=version(),
    description='An MMDetection-style toolbox for FCOS, the anchor-free one-stage detector',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['fcosdet', 'fcosdet.*']),
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.1',
        'mmengine>=0.10.0,<0.11.0',
        mmcv_requirement(),
        'numpy',
        'pycocotools',
        'terminaltables',
        'opencv-python-headless',
        'matplotlib',
    ],
    extras_require={
        # onnxslim: pytorch2onnx.py --slim (graph clean-up of the end-to-end file)
        'onnx': ['onnx', 'onnxruntime', 'onnxslim'],
        # CocoMetric(backend='hotcoco'): same numbers as pycocotools, much faster
        'fast-eval': ['hotcoco>=1.3'],
        # logging backends: visualizer vis_backends TensorboardVisBackend / WandbVisBackend
        'tensorboard': ['tensorboard'],
        'wandb': ['wandb'],
        # hotcoco: the backend identity tests; tensorboard: a short run writes event files
        'tests': ['pytest', 'onnx', 'onnxruntime', 'onnxslim', 'ruff>=0.5', 'hotcoco>=1.3',
                  'tensorboard'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
