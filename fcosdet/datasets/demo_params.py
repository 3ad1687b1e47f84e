"""The generation parameters of the demo dataset (:mod:`fcosdet.datasets.demo_dataset`):
checked, and recorded as a JSON-able dict in the dataset's marker file."""
import numpy as np

FORMAT_VERSION = 1
DEFAULT_OBJECTS_PER_IMAGE = (2, 6)


def _is_int(v: object) -> bool:
    """True for a Python or numpy int (not a bool)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _check_range(key: str, value: object, low: int) -> list[int]:
    """``value`` as ``[lo, hi]`` with ``low <= lo <= hi``; a ValueError names ``key``."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(_is_int(v) for v in value) or not low <= value[0] <= value[1]):
        raise ValueError(f'generate_demo_dataset: {key} must be (lo, hi), two ints with '
                         f'{low} <= lo <= hi, got {value!r}')
    return [int(v) for v in value]


def check_demo_params(num_train: int, num_val: int, img_size: tuple[int, int], seed: int,
                  box_sides: tuple[int, int] | None = None,
                  objects_per_image: tuple[int, int] = (2, 6)) -> dict:
    """Validate the generation arguments; return them as a JSON-able dict.

    ``box_sides`` and ``objects_per_image`` enter the dict only when not the defaults, so a
    dataset generated before they existed still matches its parameters.
    """
    checks = (('num_train', num_train, 1), ('num_val', num_val, 1), ('seed', seed, 0))
    for key, value, low in checks:
        if not _is_int(value) or value < low:
            raise ValueError(f'generate_demo_dataset: {key} must be an int >= {low}, got {value!r}')
    if (not isinstance(img_size, (tuple, list)) or len(img_size) != 2
            or not all(_is_int(v) and v >= 64 for v in img_size)):
        raise ValueError('generate_demo_dataset: img_size must be (height, width), two ints '
                         f'>= 64, got {img_size!r}')
    params = dict(version=FORMAT_VERSION, num_train=int(num_train), num_val=int(num_val),
                  img_size=[int(v) for v in img_size], seed=int(seed))
    if box_sides is not None:
        params['box_sides'] = _check_range('box_sides', box_sides, 8)
    per_image = _check_range('objects_per_image', objects_per_image, 0)
    if per_image != list(DEFAULT_OBJECTS_PER_IMAGE):
        params['objects_per_image'] = per_image
    return params
