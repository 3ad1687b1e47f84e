"""Where a YOLO dataset keeps its class names, images and label files.

Two layouts are read:

- Ultralytics: ``DIR/data.yaml`` (or ``dataset.yaml``) with ``names`` (a list, or a dict
  ``{0: name, ...}``), optional ``path`` (the dataset root; relative to the YAML's folder) and
  split keys (``train``, ``val``, ``test``: a folder of images, a ``.txt`` list of images, or a
  list of those, relative to the root; a missing ``../x`` is read as ``x``). Labels of
  ``.../images/.../x.jpg`` are ``.../labels/.../x.txt``. Without a split key, ``images/S`` is
  split ``S``.
- Flat: ``DIR/classes.txt`` (one name per line) and the images with their ``.txt`` labels side by
  side in ``DIR`` (or in ``DIR/images`` and ``DIR/labels``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .image_files import is_image, list_images
from .records import ConversionError, check_names

YAML_NAMES = ('data.yaml', 'dataset.yaml')
_SPLIT_KEYS = ('train', 'val', 'test')


@dataclass
class YoloSource:
    """What to convert: the dataset root, the class names and the image files."""

    root: Path
    names: list[str]
    images: list[Path]


def label_path(image: Path) -> Path:
    """The label file of an image: the last ``images`` folder of its path becomes ``labels``
    (Ultralytics' rule); without one, the ``.txt`` beside the image."""
    parts = list(image.parts)
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == 'images':
            parts[index] = 'labels'
            return Path(*parts).with_suffix('.txt')
    return image.with_suffix('.txt')


def _yaml_names(raw: object, path: Path) -> list[str]:
    """``names`` of a data.yaml: a list, or a dict whose keys are 0..C-1."""
    if isinstance(raw, list) and raw:
        return check_names([str(name) for name in raw], str(path))
    if isinstance(raw, dict) and raw:
        keys = sorted(raw, key=str)
        if sorted(k for k in raw if isinstance(k, int)) != list(range(len(raw))):
            raise ConversionError(f"{path}: the keys of 'names' must be 0..{len(raw) - 1}, "
                                  f'got {keys}')
        return check_names([str(raw[i]) for i in range(len(raw))], str(path))
    raise ConversionError(f"{path}: 'names' must be a non-empty list or dict of class names, "
                          f'got {raw!r:.80}')


def read_data_yaml(path: Path) -> tuple[dict, list[str], Path]:
    """The YAML mapping, its class names and the dataset root.

    Raises:
        ConversionError: Bad YAML, no ``names``, ``nc`` differing from ``names``, or a
            ``path`` that is not a folder.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConversionError(f'{path}: malformed YAML: {" ".join(str(err).split())}') from err
    if not isinstance(data, dict) or 'names' not in data:
        raise ConversionError(f"{path}: no 'names' (the class names) in the file")
    names = _yaml_names(data['names'], path)
    if 'nc' in data and data['nc'] != len(names):
        raise ConversionError(f"{path}: 'nc' is {data['nc']} but 'names' has {len(names)} "
                              'classes')
    root = path.parent
    if data.get('path'):
        root = (path.parent / str(data['path'])).resolve()
        if not root.is_dir():
            raise ConversionError(f"{path}: 'path' {data['path']} is not a folder ({root})")
    return data, names, root


def read_classes_txt(path: Path) -> list[str]:
    """Names of a ``classes.txt``, one a line (blank lines ignored)."""
    return check_names([line.strip() for line in path.read_text().splitlines() if line.strip()],
                       str(path))


def _images_of_entry(entry: str, root: Path, where: str) -> list[Path]:
    """Images of one split entry: a folder (searched recursively) or a ``.txt`` list.

    A missing ``../x`` is looked for as ``x`` (Ultralytics does so: Roboflow's exports write
    ``train: ../train/images`` beside ``train/``).
    """
    path = Path(entry) if Path(entry).is_absolute() else root / entry
    if not path.exists() and entry.startswith('../'):
        path = root / entry[3:]
    if path.is_dir():
        return list_images(path)
    if path.is_file() and path.suffix == '.txt':
        images = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                image = Path(line.strip())
                image = image if image.is_absolute() else path.parent / image
                if not image.is_file():
                    raise ConversionError(f'{path}:{number}: image file not found: {image}')
                images.append(image)
        return images
    raise ConversionError(f'{where}: {entry} is neither a folder nor a .txt list of images '
                          f'({path})')


def _images_folder(base: Path, split: str | None, where: str) -> list[Path]:
    """Images of ``base`` (``split`` None) or of ``base/split``."""
    folder = base if split is None else base / split
    if not folder.is_dir():
        raise ConversionError(f'{where}: split folder {folder} not found')
    if split is None:
        direct = [p for p in folder.iterdir() if p.is_file() and is_image(p)]
        subs = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != 'labels')
        if not direct and subs:
            raise ConversionError(f'{folder} holds split folders {subs}: choose one with --split')
    return list_images(folder)


def find_source(root: Path, split: str | None) -> YoloSource:
    """Class names and images of the YOLO dataset in ``root`` (see the module docstring).

    Raises:
        ConversionError: No class list, an unknown split, or a split that is not given when
            the dataset has several.
    """
    yaml_path = next((root / n for n in YAML_NAMES if (root / n).is_file()), None)
    if yaml_path is not None:
        data, names, root = read_data_yaml(yaml_path)
        keys = [k for k in _SPLIT_KEYS if data.get(k)]
        if split is not None and data.get(split):
            entries = data[split] if isinstance(data[split], list) else [data[split]]
            images = [img for entry in entries
                      for img in _images_of_entry(str(entry), root, f'{yaml_path} {split!r}')]
            return YoloSource(root, names, images)
        if split is None and keys:
            raise ConversionError(f'{yaml_path} names splits {keys}: choose one with --split')
    elif (root / 'classes.txt').is_file():
        names = read_classes_txt(root / 'classes.txt')
    else:
        raise ConversionError(f'no class list in {root}: expected one of {list(YAML_NAMES)} '
                              '(Ultralytics) or classes.txt')
    base = root / 'images' if (root / 'images').is_dir() else root
    return YoloSource(root, names, _images_folder(base, split, str(yaml_path or root)))
