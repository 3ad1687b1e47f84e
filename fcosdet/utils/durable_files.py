"""Atomic, durable file writes: a crash at any moment leaves the old file or the new one.

The bytes go to the hidden name ``.<name>.<pid>.tmp`` in the same folder, are fsynced, renamed
over the final name, and the folder entry is fsynced.
"""
import os
import os.path as osp
from collections.abc import Callable


def tmp_path_for(path: str) -> str:
    """The hidden temporary name used while ``path`` is written."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}.tmp')


def fsync_dir(folder: str) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # e.g. folders on some network file systems
        pass
    finally:
        os.close(fd)


def commit_file(tmp_path: str, path: str) -> None:
    """Make the fully written ``tmp_path`` durable under the name ``path``."""
    with open(tmp_path, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp_path, path)
    fsync_dir(osp.dirname(path))


def write_durably(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, then commit the result to ``path``.

    The temporary file is removed if ``write`` raises; ``path`` keeps its old content.
    """
    tmp_path = tmp_path_for(path)
    try:
        write(tmp_path)
        commit_file(tmp_path, path)
    finally:
        if osp.exists(tmp_path):
            os.remove(tmp_path)


def write_text_durably(path: str, text: str) -> None:
    """Replace the content of a text file atomically and durably."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as f:
            f.write(text)
    write_durably(path, write)
