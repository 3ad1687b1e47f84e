"""Registration of every fcosdet module and of the default scope.

``utils`` is the ground floor of the package: nothing here imports ``models``, ``datasets``,
``engine``, ... The registries in :mod:`fcosdet.registry` name the packages that register into
them (their ``locations``); :func:`register_all_modules` asks each registry to import those,
exactly as mmengine does on the first ``build`` under ``default_scope='fcosdet'``.
"""
import datetime
import warnings

from mmengine import DefaultScope
from mmengine.registry import Registry

from fcosdet import registry


def fcosdet_registries() -> list[Registry]:
    """Every registry defined in :mod:`fcosdet.registry`."""
    return [value for value in vars(registry).values()
            if isinstance(value, Registry) and value.scope == 'fcosdet']


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every package that registers a fcosdet module, so that all registries are filled.

    The packages are the ``locations`` of the registries (``fcosdet.models``,
    ``fcosdet.datasets``, ``fcosdet.deployment``, ...); ``fcosdet.apis`` registers nothing and is
    not imported. ``fcosdet.deployment`` is safe without onnx/onnxruntime (imported lazily).

    Args:
        init_default_scope: Also make ``'fcosdet'`` the current default scope, so that
            mmengine's builders look up fcosdet's registries first.
    """
    for reg in fcosdet_registries():
        reg.import_from_location()

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('fcosdet'):
        DefaultScope.get_instance('fcosdet', scope_name='fcosdet')
    elif current.scope_name != 'fcosdet':
        warnings.warn(f'The current default scope "{current.scope_name}" is not "fcosdet"; '
                      '`register_all_modules` creates a new default scope for fcosdet.')
        name = f'fcosdet-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='fcosdet')
