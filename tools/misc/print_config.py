"""Print the fully merged config: ``python tools/misc/print_config.py CONFIG [--cfg-options]``."""
import argparse
from collections.abc import Sequence

from mmengine.config import DictAction

from fcosdet.utils.cli import load_config, run_cli


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and print the merged config."""
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config values; the parent of every key must exist')
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    print(f'Config:\n{cfg.pretty_text}')


if __name__ == '__main__':
    run_cli(main)
