"""Strip a training checkpoint for release and name it by its hash.

Example::

    python tools/model_converters/publish_model.py work_dirs/fcos/epoch_12.pth fcos_r50.pth
    # -> fcos_r50-1a2b3c4d.pth

The checkpoint is first written to a temporary file next to the output, so the tool never
replaces or removes a file it did not create: ``out_file`` naming the input is refused, and so
is a published name that exists already, unless ``--overwrite`` (never the input itself).
"""
import argparse
import hashlib
import os
import tempfile
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
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing file of the published name')
    return parser.parse_args(argv)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one existing file (also through links)."""
    return a.exists() and b.exists() and os.path.samefile(a, b)


def _check_target(in_file: Path, final_file: Path, overwrite: bool) -> None:
    """Refuse a published name that is the input, or that exists without ``overwrite``."""
    if _same_file(in_file, final_file):
        raise ValueError(f'the published file {final_file} would replace the input checkpoint '
                         f'{in_file}; give another out_file')
    if final_file.exists() and not overwrite:
        raise FileExistsError(f'{final_file} exists already; remove it or pass --overwrite')


def publish_model(in_file: str | Path, out_file: str | Path, overwrite: bool = False) -> Path:
    """Drop the training state of a checkpoint, save it, and add a hash to its name.

    Args:
        in_file: Checkpoint saved by the runner.
        out_file: Output path, e.g. ``fcos.pth``; the saved file is ``fcos-<sha256[:8]>.pth``.
            ``out_file`` itself is never written.
        overwrite: Replace an existing file of the published name (never ``in_file``).

    Returns:
        The path of the published file.

    Raises:
        CheckpointError: ``in_file`` is missing, unreadable, holds objects that weights-only
            loading refuses (it never runs code from the file), or is not a dict.
        ValueError: ``out_file`` or the published name is ``in_file``.
        FileExistsError: The published name exists and ``overwrite`` is False.
    """
    in_file, out_file = Path(in_file), Path(out_file)
    if _same_file(in_file, out_file):
        raise ValueError(f'out_file {out_file} is the input checkpoint; give another name '
                         '(the hash is added to it)')
    checkpoint = read_checkpoint(str(in_file))
    checkpoint = {k: v for k, v in checkpoint.items() if k not in DROP_KEYS}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=out_file.suffix, prefix=f'.{out_file.stem}-',
                                    dir=out_file.parent)
    os.close(fd)
    tmp_file = Path(tmp_name)
    try:
        with open(tmp_file, 'wb') as file:  # a file object: the archive name is not tmp's
            torch.save(checkpoint, file)
        final_file = out_file.with_name(
            f'{out_file.stem}-{file_sha256(tmp_file)[:8]}{out_file.suffix}')
        _check_target(in_file, final_file, overwrite)
        tmp_file.replace(final_file)
    finally:
        tmp_file.unlink(missing_ok=True)  # only the temporary file this call created
    return final_file


def main(argv: Sequence[str] | None = None) -> None:
    """Publish ``in_file`` as ``out_file`` with a hash suffix."""
    args = parse_args(argv)
    print(f'Published {publish_model(args.in_file, args.out_file, args.overwrite)}')


if __name__ == '__main__':
    run_cli(main)
