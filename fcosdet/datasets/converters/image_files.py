"""Image files of the converters: finding them, their decoded size from the header, copying."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from .records import ConversionError

IMAGE_EXTENSIONS = ('.bmp', '.jpeg', '.jpg', '.png', '.tif', '.tiff', '.webp')
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height when decoded
_EXIF_ORIENTATION = 0x0112


def is_image(path: Path) -> bool:
    """Whether the file name has an image extension (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (sub-folders too), sorted by path."""
    return sorted(p for p in folder.rglob('*') if p.is_file() and is_image(p))


def decoded_size(source: str | Path | BinaryIO, name: str | None = None) -> tuple[int, int]:
    """``(height, width)`` of an image as OpenCV/mmcv decode it, read from the header only.

    mmcv (OpenCV) applies the EXIF orientation when decoding, so a photo stored 4000 x 3000 with
    orientation 6 is 3000 wide: its boxes, and the annotation file's size, refer to that.

    Args:
        source: The file, or its bytes as a binary stream.
        name: How messages name it (default: ``source``).

    Raises:
        FileNotFoundError: If the file does not exist.
        ConversionError: If the header cannot be read.
    """
    name = str(source) if name is None else name
    try:
        with Image.open(source) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION)
    except FileNotFoundError:
        raise FileNotFoundError(f'image file not found: {name}') from None
    except Exception as err:  # PIL raises many types on bad headers
        raise ConversionError(f'image file cannot be read: {name} '
                              f'({type(err).__name__}: {err})') from err
    return (width, height) if orientation in _ROTATED else (height, width)


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (``..`` parts resolved, links not),
    or absolute if outside it."""
    path, root = (Path(os.path.normpath(p.absolute())) for p in (path, root))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def output_name(file_name: str, where: str) -> Path:
    """A file name to write under an output folder: relative, and not leaving it.

    Raises:
        ConversionError: If it is absolute or has a ``..`` part.
    """
    path = Path(file_name)
    if path.is_absolute() or '..' in path.parts:
        raise ConversionError(f"{where}: file_name '{file_name}' must be relative to the image "
                              'folder, without ..')
    return path


def place_image(src: Path, dst: Path, symlink: bool) -> None:
    """Copy ``src`` to ``dst`` (or link to it), replacing what is there.

    Raises:
        ConversionError: If ``src`` does not exist.
    """
    if not src.is_file():
        raise ConversionError(f'image file not found: {src}')
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    if symlink:
        os.symlink(src.resolve(), dst)
    else:
        shutil.copy2(src, dst)
