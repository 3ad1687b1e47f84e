"""The ``fcosdet`` metadata of an end-to-end ONNX file: what the runtime needs to feed it.

``tools/deployment/pytorch2onnx.py`` writes a JSON object under the ``metadata_props`` key
``fcosdet``: the class names, the test pipeline's resize, the pad divisor and the
post-processing settings baked into the graph (see ``docs/deployment.md``).
"""
import json
from dataclasses import dataclass, field

METADATA_KEY = 'fcosdet'
FORMAT_VERSION = 1
INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic', 'area', 'lanczos')
INPUT_NAMES = ('images', 'img_shapes')
OUTPUT_NAMES = ('dets', 'scores', 'labels', 'num_dets')


@dataclass(frozen=True)
class ModelMeta:
    """What an end-to-end file says about itself.

    Attributes:
        kind: ``'end2end'`` (image batch → detections) or ``'raw'`` (network outputs only).
        classes: Class names, index = label.
        scale: ``(w, h)`` of the test pipeline's ``Resize`` (None: no resize).
        keep_ratio: Rescale keeping the aspect ratio (MMCV's rule) or resize to ``scale``.
        interpolation: MMCV's interpolation name (``'bilinear'``: ``cv2.INTER_LINEAR``).
        pad_size_divisor: Padded height and width are multiples of this.
        detector: Detector type (``'FCOS'``, ``'ATSS'``, ...).
        extra: Every other key of the JSON object (mean, std, thresholds, ...).
    """

    kind: str
    classes: tuple[str, ...]
    scale: tuple[int, int] | None
    keep_ratio: bool = True
    interpolation: str = 'bilinear'
    pad_size_divisor: int = 32
    detector: str = ''
    extra: dict = field(default_factory=dict)


def parse_metadata(text: str | None, source: str) -> ModelMeta:
    """Parse and check the ``fcosdet`` metadata JSON of ``source``.

    Args:
        text: The JSON text (None: the file has no such key).
        source: The file name, for error messages.

    Returns:
        The checked metadata.

    Raises:
        ValueError: No metadata, bad JSON, a format newer than this runtime, or a missing or
            bad key; the message names the file and the key.
    """
    if text is None:
        raise ValueError(f'{source} has no {METADATA_KEY!r} metadata: export it with '
                         'tools/deployment/pytorch2onnx.py (end-to-end, the default mode)')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f'{source}: metadata {METADATA_KEY!r} is not JSON ({err})') from err
    if not isinstance(data, dict):
        raise ValueError(f'{source}: metadata {METADATA_KEY!r} must be a JSON object')
    if data.get('format', FORMAT_VERSION) > FORMAT_VERSION:
        raise ValueError(f'{source}: metadata format {data["format"]} is newer than this '
                         f'runtime reads ({FORMAT_VERSION}); upgrade fcosdet-runtime')
    kind = data.get('kind')
    if kind == 'raw':
        return ModelMeta(kind='raw', classes=tuple(data.get('classes', ())), scale=None)
    if kind != 'end2end':
        raise ValueError(f"{source}: metadata kind must be 'end2end' or 'raw', got {kind!r}")
    resize = data.get('resize')
    if resize is not None and not isinstance(resize, dict):
        raise ValueError(f"{source}: metadata key 'resize' must be an object or null, "
                         f'got {resize!r}')
    resize = resize or {}  # null: the test pipeline has no Resize
    scale = resize.get('scale')
    if scale is not None and (not isinstance(scale, list) or len(scale) != 2 or
                              not all(isinstance(v, int) and v > 0 for v in scale)):
        raise ValueError(f'{source}: metadata resize.scale must be [w, h] positive ints, '
                         f'got {scale!r}')
    interpolation = resize.get('interpolation', 'bilinear')
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f'{source}: metadata resize.interpolation must be one of '
                         f'{INTERPOLATIONS}, got {interpolation!r}')
    divisor = data.get('pad_size_divisor', 1)
    if not isinstance(divisor, int) or divisor < 1:
        raise ValueError(f'{source}: metadata pad_size_divisor must be a positive int, '
                         f'got {divisor!r}')
    classes = _require(data, 'classes', list, source)
    known = {'format', 'kind', 'resize', 'pad_size_divisor', 'classes', 'detector'}
    return ModelMeta(kind=kind, classes=tuple(str(c) for c in classes),
                     scale=None if scale is None else (scale[0], scale[1]),
                     keep_ratio=bool(resize.get('keep_ratio', True)),
                     interpolation=interpolation, pad_size_divisor=divisor,
                     detector=str(data.get('detector', '')),
                     extra={k: v for k, v in data.items() if k not in known})


def _require(data: dict, key: str, kind: type, source: str, name: str | None = None) -> object:
    """``data[key]``, which must be a ``kind``; ValueError naming ``source`` and the key."""
    value = data.get(key)
    if not isinstance(value, kind):
        raise ValueError(f'{source}: metadata key {name or key!r} must be a '
                         f'{kind.__name__}, got {value!r}')
    return value
