"""Helpers of the converter tests: hand-written images and files, the tools as modules."""
import importlib.util
from pathlib import Path

from PIL import Image

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'


def load_tool(name: str):
    """Import a converter script as a module."""
    spec = importlib.util.spec_from_file_location(f'{name}_tool', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image(path: Path, width: int, height: int, orientation: int | None = None) -> Path:
    """Write a blank image (a JPEG with an EXIF orientation if given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new('RGB', (width, height))
    if orientation is None:
        img.save(path)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def boxes_of(coco: dict) -> dict[str, list[tuple[str, list[float], int]]]:
    """``file_name -> [(class name, bbox, iscrowd), ...]`` of a COCO dict."""
    names = {c['id']: c['name'] for c in coco['categories']}
    files = {i['id']: i['file_name'] for i in coco['images']}
    out = {name: [] for name in files.values()}
    for ann in coco['annotations']:
        out[files[ann['image_id']]].append((names[ann['category_id']], ann['bbox'],
                                            ann['iscrowd']))
    return out
