"""COCO evaluation backends: pycocotools, or a faster package that gives the same numbers.

A backend is a pair of pycocotools-compatible classes (``COCO`` with ``loadRes``, ``getImgIds``,
``getCatIds``, ``loadCats``; ``COCOeval`` with ``params``, ``evaluate``, ``accumulate``,
``summarize``, ``stats`` and ``eval['precision']``). ``hotcoco`` (Rust) gave all 12 summary
numbers and the whole precision array bit-identical to pycocotools on the tests and on a
COCO-sized synthetic set, about 50x faster; see ``docs/benchmark.md``.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from typing import Any, NamedTuple


class CocoApi(NamedTuple):
    """The two classes of a backend.

    Attributes:
        name: Backend name (a key of :data:`COCO_BACKENDS`).
        coco: The ``COCO`` class (ground-truth index, ``loadRes``).
        cocoeval: The ``COCOeval`` class.
    """

    name: str
    coco: type
    cocoeval: type


# name -> (module of COCO, class, module of COCOeval, class, pip requirement)
COCO_BACKENDS: dict[str, tuple[str, str, str, str, str]] = {
    'pycocotools': ('pycocotools.coco', 'COCO', 'pycocotools.cocoeval', 'COCOeval',
                    'pycocotools'),
    'hotcoco': ('hotcoco', 'COCO', 'hotcoco', 'COCOeval', 'fcosdet[fast-eval]'),
}


def coco_api(backend: str) -> CocoApi:
    """Import the classes of a backend.

    Args:
        backend: A key of :data:`COCO_BACKENDS`.

    Returns:
        The backend's classes.

    Raises:
        KeyError: Unknown backend name.
        ImportError: The backend's package is not installed (says what to pip install).
    """
    if backend not in COCO_BACKENDS:
        raise KeyError(f'CocoMetric: unknown backend {backend!r}; choose from '
                       f'{list(COCO_BACKENDS)}')
    coco_module, coco_name, eval_module, eval_name, requirement = COCO_BACKENDS[backend]
    try:
        coco = getattr(importlib.import_module(coco_module), coco_name)
        cocoeval = getattr(importlib.import_module(eval_module), eval_name)
    except ImportError as err:
        raise ImportError(f'CocoMetric: backend {backend!r} needs `pip install '
                          f'"{requirement}"` ({err})') from err
    return CocoApi(backend, coco, cocoeval)


def coco_from_dict(dataset: dict, api: CocoApi | None = None) -> Any:
    """A ``COCO`` ground-truth index over an already decoded COCO-format dict (quietly).

    Args:
        dataset: ``images``, ``annotations`` (each with ``area``) and ``categories``.
        api: Backend; default pycocotools.
    """
    api = api or coco_api('pycocotools')
    with contextlib.redirect_stdout(io.StringIO()):
        if api.name == 'pycocotools':  # its constructor only reads files
            coco = api.coco()
            coco.dataset = dataset
            coco.createIndex()
            return coco
        return api.coco(dataset)


def run_cocoeval(api: CocoApi, coco_gt: Any, dets: list[dict], cat_ids: list[int],
                 img_ids: list[int], max_dets: list[int], iou_thrs: Any) -> tuple[Any, str]:
    """Load the detections and run ``evaluate``, ``accumulate`` and ``summarize``.

    Args:
        api: Backend.
        coco_gt: Ground-truth index of the same backend.
        dets: COCO results format (``image_id``, ``bbox`` xywh, ``score``, ``category_id``).
        cat_ids: Categories to evaluate. Passed sorted: the summary does not depend on the
            order, and hotcoco lays out ``eval['precision']`` in sorted order whatever
            ``params.catIds`` says (pycocotools follows ``params.catIds``).
        img_ids: Images to evaluate.
        max_dets: The three max-detection numbers.
        iou_thrs: IoU thresholds (numpy array).

    Returns:
        The summarized ``COCOeval`` and the text it printed.
    """
    log = io.StringIO()
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        # hotcoco warns when maxDets or iouThrs are not the defaults; its numbers are right
        warnings.filterwarnings('ignore', message='hotcoco: .* differ', category=UserWarning)
        coco_eval = api.cocoeval(coco_gt, coco_gt.loadRes(dets), 'bbox')
        coco_eval.params.catIds = sorted(cat_ids)
        coco_eval.params.imgIds = list(img_ids)
        coco_eval.params.maxDets = list(max_dets)
        coco_eval.params.iouThrs = iou_thrs
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval, log.getvalue()
