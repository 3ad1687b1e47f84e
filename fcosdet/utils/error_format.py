"""One-line messages for the errors the command-line tools report.

An unknown registry type (``ResNett``) or an unexpected keyword argument (``num_clases``) is
reported with the config key that holds it and the closest registered name or argument; every
other error by its message, squashed to one line.
"""
import difflib
import inspect
import re
from collections.abc import Iterator, Mapping

from mmengine.config import Config
from mmengine.registry import Registry

from fcosdet import registry as fcosdet_registry

_NOT_REGISTERED = re.compile(r'^(\S+) is not in the (?:(\w+)::)?(\S+) registry')
_UNEXPECTED_KW = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


def _registries() -> list[Registry]:
    """fcosdet's registries."""
    return [r for r in vars(fcosdet_registry).values() if isinstance(r, Registry)]


def _names(registry: Registry) -> set[str]:
    """Names registered in ``registry`` and its parents."""
    names: set[str] = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    return names


def _find_class(name: str) -> type | None:
    """A class registered as ``name`` in any fcosdet registry (or a parent)."""
    for registry in _registries():
        found = registry.get(name)
        if inspect.isclass(found):
            return found
    return None


def _walk(node: object, path: str = '') -> Iterator[tuple[str, Mapping]]:
    """``(key path, dict)`` of every dict nested in ``node``."""
    if isinstance(node, Mapping):
        yield path, node
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, value in items:
        yield from _walk(value, f'{path}.{key}' if path else str(key))


def _key_path(cfg: Config | None, type_name: str, key: str) -> str | None:
    """Config path of ``key`` in the first dict with ``type=type_name`` that has it."""
    if cfg is None:
        return None
    for path, node in _walk(cfg.to_dict()):
        if node.get('type') == type_name and key in node:
            return f'{path}.{key}' if path else key
    return None


def _suggest(word: str, choices: set[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``''``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ''


def _unknown_type(match: re.Match, cfg: Config | None) -> str:
    name, scope, registry_name = match.group(1), match.group(2) or 'fcosdet', match.group(3)
    registry = next((r for r in _registries() if (r.name, r.scope) == (registry_name, scope)),
                    None)
    suggestion = _suggest(name, _names(registry)) if registry is not None else ''
    where = _key_path(cfg, name, 'type')
    prefix = f'{cfg.filename}: {where}=' if where else ''
    return f"{prefix}'{name}' is not a registered {registry_name} type{suggestion}"


def _unexpected_keyword(match: re.Match, cfg: Config | None) -> str:
    class_name, key = match.group(1), match.group(2)
    cls = _find_class(class_name)
    params = set(inspect.signature(cls.__init__).parameters) - {'self'} if cls else set()
    where = _key_path(cfg, class_name, key)
    prefix = f'{cfg.filename}: {where}: ' if where else ''
    return f"{prefix}{class_name} has no argument '{key}'{_suggest(key, params)}"


def error_message(err: BaseException, cfg: Config | None = None) -> str:
    """One line describing ``err`` for a user.

    Args:
        err: The exception a tool raised.
        cfg: The tool's config, if known, to name the key that holds a bad value.

    Returns:
        The message, without line breaks.
    """
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    text = ' '.join(text.split())
    for pattern, describe in ((_NOT_REGISTERED, _unknown_type),
                              (_UNEXPECTED_KW, _unexpected_keyword)):
        match = pattern.search(text)
        if match:
            return describe(match, cfg)
    if len(text.split()) < 3:  # a bare value (e.g. KeyError: 'x') needs its type to make sense
        return f'{type(err).__name__}: {text}'.rstrip(': ')
    return text
