"""Registration of every fcosdet module and of the default scope."""
import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every fcosdet module so that all registries are filled.

    Args:
        init_default_scope: Also make ``'fcosdet'`` the current default scope, so that
            mmengine's builders look up fcosdet's registries first.
    """
    import fcosdet.apis  # noqa: F401
    import fcosdet.datasets  # noqa: F401
    import fcosdet.deployment  # noqa: F401  (safe without onnx/onnxruntime: imported lazily)
    import fcosdet.engine  # noqa: F401
    import fcosdet.evaluation  # noqa: F401
    import fcosdet.models  # noqa: F401
    import fcosdet.visualization  # noqa: F401

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
