"""Image inputs of the command line and the per-image JSON files it writes.

The layout is ``tools/infer.py``'s: ``<out-dir>/preds/<image stem>.json`` holding ``bboxes``
(x1y1x2y2, original pixels), ``scores``, ``labels`` and ``label_names``.
"""
import glob
import json
import os
import os.path as osp
from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: Sequence[str]) -> list[str]:
    """The image files named by ``inputs``: files, folders (their image files, sorted) and
    glob patterns (their matches, sorted).

    Raises:
        FileNotFoundError: A path that does not exist, or a folder or pattern without images.
    """
    images = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, name) for name in os.listdir(item)
                           if osp.splitext(name)[1].lower() in IMG_EXTENSIONS
                           and osp.isfile(osp.join(item, name)))
        elif osp.isfile(item):
            found = [item]
        elif glob.has_magic(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if osp.isfile(p))
        else:
            raise FileNotFoundError(f'image file or folder not found: {item}')
        if not found:
            raise FileNotFoundError(f'no image files ({", ".join(IMG_EXTENSIONS)}) in {item}')
        images.extend(found)
    return images


def json_names(images: Sequence[str]) -> list[str]:
    """JSON file name of each image's predictions, the rule of ``tools/infer.py``:
    ``<image stem>.json``, but ``<image name>.json`` (``a.png.json``, ``a.jpg.json``) for images
    whose stems collide.

    Raises:
        ValueError: Two images with the same base name (their JSON files would collide).
    """
    names = [osp.basename(img) for img in images]
    stems = [osp.splitext(name)[0] for name in names]
    count = Counter(stems)
    files = [f'{stem if count[stem] == 1 else name}.json' for stem, name in zip(stems, names)]
    seen: dict[str, str] = {}
    for file, img in zip(files, images):
        if file in seen:
            raise ValueError(f'two inputs share the output name {file!r} ({seen[file]} and '
                             f'{img}); their predictions would overwrite each other')
        seen[file] = img
    return files


def read_image(path: str) -> np.ndarray:
    """Decode an image file into BGR ``uint8 [H, W, 3]`` as fcosdet's loader does
    (``cv2.imdecode`` with ``IMREAD_COLOR``: grey is replicated, alpha dropped, EXIF applied).

    Raises:
        ValueError: The file cannot be decoded.
    """
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise ValueError(f'image file cannot be decoded (corrupt or not an image): {path}')
    return img


def write_json(data: dict, path: str) -> None:
    """Write ``data`` as JSON, creating the folder."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(data, f)
