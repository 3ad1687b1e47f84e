"""Installs fcosdet. ``pip install -e .`` (add ``[tests]`` for the test suite)."""
import os
from importlib import metadata

from setuptools import find_packages, setup


def mmcv_requirement() -> str:
    """Keep a user's full mmcv (with compiled ops); otherwise ask for mmcv-lite.

    fcosdet needs no compiled op, so mmcv-lite (same ``mmcv`` import) is enough. The check
    sees the user's packages only when pip builds without isolation
    (``pip install --no-build-isolation -e .``).
    """
    for dist in ('mmcv', 'mmcv-full'):
        try:
            metadata.version(dist)
            return 'mmcv>=2.0.0,<2.3.0'
        except metadata.PackageNotFoundError:
            pass
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
        'onnx': ['onnx', 'onnxruntime'],
        'tests': ['pytest', 'onnx', 'onnxruntime', 'ruff>=0.5'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
