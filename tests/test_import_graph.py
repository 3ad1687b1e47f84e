"""The import graph of the package: dependencies point one way, no cycle, every module imports.

Layers, bottom to top (``CONTRIBUTING.md``): ``registry``, ``structures``, ``utils`` →
``models``, ``datasets``, ``evaluation``, ``visualization`` → ``engine`` → ``deployment`` →
``apis``. A module may import its own layer or a lower one. The edges are every ``import`` of
an fcosdet module in a module's source, at any depth (a function-level import counts: it is a
cycle in disguise), read with :mod:`ast`; only the standard library is used.
"""
import ast
import graphlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / 'fcosdet'
LAYERS = {'': 0, 'registry': 0, 'structures': 0, 'utils': 0,
          'models': 1, 'datasets': 1, 'evaluation': 1, 'visualization': 1,
          'engine': 2, 'deployment': 3, 'apis': 4}


def module_name(path: Path) -> str:
    parts = ('fcosdet', *path.relative_to(ROOT).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob('*.py'))}


def top_package(module: str) -> str:
    """``'models'`` for ``fcosdet.models.backbones.resnet``; ``''`` for ``fcosdet`` itself."""
    return module.split('.')[1] if '.' in module else ''


def layer(module: str) -> int:
    package = top_package(module)
    assert package in LAYERS, (f'fcosdet.{package} has no layer: add it to LAYERS here and to '
                               'the layering rule in CONTRIBUTING.md')
    return LAYERS[package]


def _target(base: str, name: str | None) -> str:
    """The module ``from base import name`` loads: ``base.name`` if that is one, else base."""
    if name is not None and f'{base}.{name}' in MODULES:
        return f'{base}.{name}'
    while base not in MODULES and '.' in base:
        base = base.rsplit('.', 1)[0]
    return base


def imports_of(module: str, source: str, is_package: bool = False) -> set[str]:
    """fcosdet modules imported anywhere in the source of ``module``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {_target(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split('.')
                anchor = anchor[:len(anchor) - node.level + is_package]
                base = '.'.join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            found |= {_target(base, alias.name) for alias in node.names}
    return {m for m in found if m.split('.')[0] == 'fcosdet' and m != module}


GRAPH = {module: imports_of(module, path.read_text(), path.name == '__init__.py')
         for module, path in MODULES.items()}


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    source = textwrap.dedent("""
        import fcosdet.models.backbones.resnet
        from . import onnx_export
        from ..structures import SampleList
        from fcosdet.utils.cli import run_cli
        def build():
            from fcosdet.apis import init_detector
    """)
    assert imports_of('fcosdet.deployment.new', source) == {
        'fcosdet.models.backbones.resnet', 'fcosdet.deployment.onnx_export',
        'fcosdet.structures', 'fcosdet.utils.cli', 'fcosdet.apis'}
    assert imports_of('fcosdet.models', 'from . import backbones', True) == {
        'fcosdet.models.backbones'}


def test_dependencies_point_one_way():
    upward = [f'{src} imports {dst} (layer {layer(src)} -> {layer(dst)})'
              for src, targets in GRAPH.items() for dst in sorted(targets)
              if layer(dst) > layer(src)]
    assert not upward, '\n'.join(upward)


def test_no_cycle_between_modules_or_packages():
    packages: dict[str, set[str]] = {}
    for src, targets in GRAPH.items():
        packages.setdefault(top_package(src), set()).update(
            top_package(dst) for dst in targets if top_package(dst) != top_package(src))
    for graph in (GRAPH, packages):
        try:
            tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as err:
            pytest.fail(f'import cycle: {" imports ".join(reversed(err.args[1]))}')


def _run_fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


def test_every_module_imports_in_dependency_order_in_a_fresh_interpreter():
    """Import every module, lowest layer first and each after its dependencies; after each
    import no module of a higher layer may be loaded (that would be an upward import at run
    time, e.g. through ``importlib``)."""
    order = sorted(graphlib.TopologicalSorter(GRAPH).static_order(), key=layer)
    code = f"""
        import importlib, json, sys
        layers, order = json.loads({json.dumps(json.dumps([LAYERS, order]))})
        def layer(m):
            return layers[m.split('.')[1] if '.' in m else '']
        for module in order:
            importlib.import_module(module)
            above = sorted(m for m in sys.modules if m.split('.')[0] == 'fcosdet'
                           and layer(m) > layer(module))
            if above:
                sys.exit(f'importing {{module}} loaded {{above}}')
        print(len(order), 'modules imported')
    """
    result = _run_fresh(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[0] == str(len(MODULES))


def _registering_modules() -> set[str]:
    """Modules whose source calls ``<REGISTRY>.register_module``."""
    return {module for module, path in MODULES.items()
            if any(isinstance(node, ast.Attribute) and node.attr == 'register_module'
                   for node in ast.walk(ast.parse(path.read_text())))}


def test_register_all_modules_imports_exactly_the_registering_packages():
    registering = _registering_modules()
    assert 'fcosdet.models.backbones.resnet' in registering
    assert 'fcosdet.deployment.ort_detector' in registering
    result = _run_fresh("""
        import sys
        from fcosdet.utils import register_all_modules
        register_all_modules()
        print(' '.join(m for m in sys.modules if m.split('.')[0] == 'fcosdet'))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(result.stdout.split())
    assert registering <= loaded, sorted(registering - loaded)
    assert 'fcosdet.apis' not in loaded  # registers nothing
    # nothing but the registering modules, their packages and what these import
    needed: set[str] = set()
    todo = [*registering, 'fcosdet.utils.setup_env']
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo.extend(GRAPH[module])
            todo.extend('.'.join(module.split('.')[:i]) for i in range(1, module.count('.') + 1))
    assert loaded & set(MODULES) <= needed, sorted(loaded & set(MODULES) - needed)
