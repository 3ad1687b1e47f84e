"""Strip a training checkpoint for release and name it by its hash.

Example::

    python tools/model_converters/publish_model.py work_dirs/fcos/epoch_12.pth fcos_r50.pth
    # -> fcos_r50-1a2b3c4d.pth
"""
import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from fcosdet.engine.checkpoint_loading import read_checkpoint
from fcosdet.utils.cli import run_cli

# Training state that a released model does not need.
DROP_KEYS = ('optimizer', 'message_hub', 'param_schedulers', 'ema_state_dict')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description='Prepare a checkpoint for publishing')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_file', help='output checkpoint (the hash is added to its name)')
    return parser.parse_args(argv)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def publish_model(in_file: str | Path, out_file: str | Path) -> Path:
    """Drop the training state of a checkpoint, save it, and add a hash to its name.

    Args:
        in_file: Checkpoint saved by the runner.
        out_file: Output path, e.g. ``fcos.pth``; the saved file is ``fcos-<sha256[:8]>.pth``.

    Returns:
        The path of the published file.

    Raises:
        CheckpointError: ``in_file`` is missing, unreadable, holds objects that weights-only
            loading refuses (it never runs code from the file), or is not a dict.
    """
    in_file, out_file = Path(in_file), Path(out_file)
    checkpoint = read_checkpoint(str(in_file))
    checkpoint = {k: v for k, v in checkpoint.items() if k not in DROP_KEYS}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out_file)
    final_file = out_file.with_name(f'{out_file.stem}-{file_sha256(out_file)[:8]}{out_file.suffix}')
    out_file.replace(final_file)
    return final_file


def main(argv: Sequence[str] | None = None) -> None:
    """Publish ``in_file`` as ``out_file`` with a hash suffix."""
    args = parse_args(argv)
    print(f'Published {publish_model(args.in_file, args.out_file)}')


if __name__ == '__main__':
    run_cli(main)
