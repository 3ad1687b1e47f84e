"""Shared pieces of the command-line tools (``tools/train.py``, ``tools/test.py``, ...)."""
import argparse
import math
import os
import os.path as osp
import sys
from collections.abc import Callable, Mapping, Sequence

from mmengine.config import Config, DictAction
from mmengine.dataset import BaseDataset
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from fcosdet.registry import DATASETS, RUNNERS

from . import config_utils
from .dist_utils import shutdown_dist
from .error_format import error_message
from .setup_env import register_all_modules


class CLIError(Exception):
    """A bad command-line argument; the tools print it as one line and exit with status 1."""


def load_config(path: str, cfg_options: Mapping[str, object] | None = None) -> Config:
    """:func:`fcosdet.utils.config_utils.load_config` for the tools: errors become a CLIError.

    Args:
        path: Config file.
        cfg_options: Parsed ``--cfg-options`` overrides (see
            :func:`fcosdet.utils.config_utils.check_cfg_options` for which keys are accepted).

    Returns:
        The config with the overrides merged in.

    Raises:
        CLIError: The file does not exist or cannot be parsed, or an override key is bad.
    """
    try:
        return config_utils.load_config(path, cfg_options)
    except (FileNotFoundError, ValueError, TypeError, KeyError) as err:
        raise CLIError(err.args[0]) from err


def unit_interval(flag: str) -> Callable[[str], float]:
    """An argparse ``type`` for a score threshold: a number in [0, 1] (not NaN).

    A bad value raises :class:`CLIError` (one line naming the flag and the value), which
    argparse lets through instead of printing its usage.
    """
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:  # also NaN and words
            raise CLIError(f'{flag} must be a number in [0, 1], got {text}')
        return value

    parse.__name__ = flag  # argparse names the type in its own messages
    return parse


def check_checkpoint(path: str) -> None:
    """Raise :class:`CLIError` unless ``path`` is an existing file or a URL."""
    if '://' not in path and not osp.isfile(path):
        raise CLIError(f'checkpoint file not found: {path}')


def work_dir_of(cli_work_dir: str | None, cfg: Config, config_path: str) -> str:
    """Work dir by precedence: command line, then config, then ``work_dirs/<config name>``."""
    if cli_work_dir is not None:
        return cli_work_dir
    if cfg.get('work_dir') is not None:
        return cfg.work_dir
    return osp.join('work_dirs', osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg: Config) -> Runner:
    """A runner of the config's ``runner_type`` (mmengine's Runner when not set)."""
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def build_test_dataset(cfg: Config) -> BaseDataset:
    """The config's ``test_dataloader.dataset``, built from fcosdet's registries.

    Raises:
        CLIError: The config has no ``test_dataloader.dataset`` or the dataset cannot be built
            (e.g. a missing annotation file; the message names it).
    """
    if cfg.get('test_dataloader', {}).get('dataset') is None:
        raise CLIError(f'the config {cfg.filename} has no test_dataloader.dataset')
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'fcosdet')):
        try:
            return DATASETS.build(cfg.test_dataloader.dataset)
        except (OSError, ValueError, KeyError) as err:
            raise CLIError(f'cannot build test_dataloader.dataset: {err}') from err


def _config_of_argv(argv: Sequence[str]) -> Config | None:
    """The config of a command line (its first ``.py`` file plus ``--cfg-options``), if any."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    try:
        known, rest = parser.parse_known_args(argv)
        path = next((a for a in rest if a.endswith('.py') and osp.isfile(a)), None)
        cfg = Config.fromfile(path) if path else None
        if cfg is not None:
            cfg.merge_from_dict(known.cfg_options)
        return cfg
    except (Exception, SystemExit):  # only used to name a key in a message
        return None


def check_cfg_options_argv(argv: Sequence[str]) -> None:
    """Raise :class:`CLIError` for a ``--cfg-options`` item without ``=``.

    mmengine's ``DictAction`` fails on it with ``not enough values to unpack``, naming nothing.
    """
    items: list[str] = []
    collecting = False
    for arg in argv:
        if arg.startswith('--cfg-options='):
            items.append(arg.split('=', 1)[1])
        collecting = arg == '--cfg-options' or (collecting and not arg.startswith('-'))
        if collecting and arg != '--cfg-options':
            items.append(arg)
    for item in items:
        if '=' not in item:
            raise CLIError(f"--cfg-options: '{item}' is not key=value (e.g. "
                           'train_cfg.max_epochs=12)')


def run_cli(main: Callable[[Sequence[str] | None], None],
            expected: tuple[type[BaseException], ...] = ()) -> None:
    """Run a tool's ``main``; any error becomes one line on stderr and exit status 1.

    The line names the file/key/value (see :func:`fcosdet.utils.error_format.error_message`).
    ``--debug`` on the command line (removed before ``main`` parses it) or the environment
    variable ``FCOSDET_DEBUG=1`` shows the full traceback instead. After a successful ``main``
    a distributed process group, if any, is shut down cleanly
    (:func:`fcosdet.utils.dist_utils.shutdown_dist`).

    Args:
        main: The tool's entry point, taking ``argv`` (``None``: ``sys.argv[1:]``).
        expected: Kept for callers; every ``Exception`` is reported as one line.
    """
    debug = '--debug' in sys.argv[1:] or os.environ.get('FCOSDET_DEBUG', '') not in ('', '0')
    if '--debug' in sys.argv[1:]:
        sys.argv.remove('--debug')
    try:
        check_cfg_options_argv(sys.argv[1:])
        main(None)
    except Exception as err:
        if debug:
            raise
        cfg = None if isinstance(err, CLIError) else _config_of_argv(sys.argv[1:])
        print(f'{osp.basename(sys.argv[0])}: error: {error_message(err, cfg)}', file=sys.stderr)
        sys.exit(1)
    # only after success: a barrier would hang if another rank had failed
    shutdown_dist()
