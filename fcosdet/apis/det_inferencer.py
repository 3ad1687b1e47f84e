"""``DetInferencer``: batched detection on images, folders or globs, for scripts and notebooks.

Shape letters: K detections of an image, H, W image height/width.

Built on :func:`fcosdet.apis.init_detector` (config + checkpoint, PyTorch or onnxruntime) and
the config's test pipeline (:func:`fcosdet.apis.build_test_pipeline`); the images of a batch go
through ``model.test_step`` together. Follows MMDetection's ``DetInferencer`` interface:
``DetInferencer(model=CONFIG, weights=CHECKPOINT)(inputs, batch_size=..., out_dir=...)``
returns ``dict(predictions=[...], visualization=[...])``; with ``out_dir`` the drawings go to
``out_dir/vis/<image name>`` and the predictions to ``out_dir/preds/<image stem>.json``
(``<image name>.json`` for images whose stems collide, see :func:`prediction_file_names`).
"""
import glob
import json
import os.path as osp
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from rich.progress import track

from fcosdet.datasets.transforms.loading import to_three_channel_uint8
from fcosdet.structures import DetDataSample
from fcosdet.visualization import DetLocalVisualizer

from .inference import build_test_pipeline, init_detector
from .slicing import sliced_detector

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
ImageInput = str | np.ndarray


def list_images(inputs: str | np.ndarray | Sequence[str | np.ndarray]) -> list[ImageInput]:
    """The images named by ``inputs``: a file, a folder (its image files, sorted), a glob
    pattern (its matches, sorted), a BGR array [H, W, 3], or a list of these.

    Raises:
        FileNotFoundError: A path that does not exist, or a folder or glob without images.
    """
    items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    images: list[ImageInput] = []
    for item in items:
        if isinstance(item, np.ndarray):
            images.append(item)
            continue
        item = str(item)
        if osp.isdir(item):
            found = sorted(str(p) for p in Path(item).iterdir()
                           if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
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


def output_names(images: Sequence[ImageInput]) -> list[str]:
    """File name of each image's outputs: its base name, or ``00000003.jpg`` for arrays.

    Raises:
        ValueError: Two image files with the same base name (their outputs would collide).
    """
    names = [osp.basename(img) if isinstance(img, str) else f'{i:08d}.jpg'
             for i, img in enumerate(images)]
    _refuse_collisions(names, images, lambda name, a, b: (
        f'two inputs share the file name {name!r} ({a} and {b}); their outputs would overwrite '
        'each other'))
    return names


def prediction_file_names(names: Sequence[str]) -> list[str]:
    """JSON file name of each image's predictions: ``<stem>.json`` as in MMDetection, but
    ``<name>.json`` (``a.png.json``, ``a.jpg.json``) for the images whose stems collide.

    Args:
        names: The images' output names (:func:`output_names`, unique).

    Raises:
        ValueError: Two names that still collide (``a.png`` and ``a.png.jpg``).
    """
    stems = [osp.splitext(name)[0] for name in names]
    count = Counter(stems)
    files = [f'{stem if count[stem] == 1 else name}.json' for stem, name in zip(stems, names)]
    _refuse_collisions(files, names, lambda file, a, b: (
        f'the predictions of {a} and {b} would both be written to {file}; rename one of them'))
    return files


def _refuse_collisions(keys: Sequence[str], items: Sequence, message: Callable) -> None:
    """Raise ``ValueError(message(key, first_item, second_item))`` for the first repeated key."""
    seen: dict[str, object] = {}
    for key, item in zip(keys, items):
        if key in seen:
            raise ValueError(message(key, seen[key], item))
        seen[key] = item


class DetInferencer(BaseInferencer):
    """Detect objects in images in batches; draw and save the results.

    Example::

        inferencer = DetInferencer('configs/fcos/fcos_r18_fpn_gn-head_demo.py',
                                   'work_dirs/fcos_r18_fpn_gn-head_demo/epoch_40.pth')
        result = inferencer('data/fcos_demo/val/', batch_size=4, out_dir='outputs')
        result['predictions'][0]  # dict(bboxes=[[x1, y1, x2, y2], ...], scores, labels,
                                  #      label_names)

    Args:
        model: Config file or Config.
        weights: Checkpoint (``.onnx`` file for onnxruntime); None: random weights.
        device: ``'cpu'``, ``'cuda:0'``, ...; None: CUDA when available, else the CPU.
        backend: ``'pytorch'`` or ``'onnxruntime'`` (see :func:`init_detector`).
        cfg_options: Overrides merged into the config.
        show_progress: Show a progress bar over the batches.
        slice_size: Sliced inference: tile ``(h, w)`` (see :func:`inference_detector`);
            None: whole images.
        slice_overlap: Overlap ratio of neighbouring tiles, in [0, 1).
        slice_merge: ``'nms'`` or ``'nmm'`` (merging of the tiles' detections).
        slice_full_image: Add one pass over the whole image.
    """

    preprocess_kwargs: set = set()
    forward_kwargs: set = set()
    visualize_kwargs: set = {'return_vis', 'show', 'wait_time', 'draw_pred', 'pred_score_thr',
                             'img_out_dir', 'no_save_vis'}
    postprocess_kwargs: set = {'print_result', 'pred_out_dir', 'no_save_pred',
                               'return_datasamples'}

    def __init__(self, model: str | Config, weights: str | None = None,
                 device: str | None = None, backend: str = 'pytorch',
                 cfg_options: dict | None = None, show_progress: bool = True,
                 slice_size: Sequence[int] | None = None, slice_overlap: float = 0.2,
                 slice_merge: str = 'nms', slice_full_image: bool = False) -> None:
        # not BaseInferencer.__init__: init_detector builds the model (all backends, fast
        # paths, class names from the checkpoint) and checks the files
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.model = init_detector(model, weights, device=device, cfg_options=cfg_options,
                                   backend=backend)
        self.cfg = self.model.cfg
        if slice_size is not None:  # the model predicts tiles; the pipeline loads whole images
            self.model, self.cfg = sliced_detector(
                self.model, self.cfg, slice_size=slice_size, slice_overlap=slice_overlap,
                slice_merge=slice_merge, slice_full_image=slice_full_image)
        self.scope = self.cfg.get('default_scope', 'fcosdet')
        self.pipeline = self._init_pipeline(self.cfg)
        self.collate_fn = pseudo_collate
        self.visualizer = self._init_visualizer(self.cfg)
        self.show_progress = show_progress

    def _init_pipeline(self, cfg: Config) -> dict:
        """The test pipeline for image files and the one for arrays."""
        return dict(file=build_test_pipeline(cfg), array=build_test_pipeline(cfg, True))

    def _init_visualizer(self, cfg: Config) -> DetLocalVisualizer:
        """A new :class:`DetLocalVisualizer` with the model's class names."""
        name = f'DetInferencer-{datetime.now().timestamp()}-{id(self)}'
        visualizer = DetLocalVisualizer(name=name)
        visualizer.dataset_meta = self.model.dataset_meta
        return visualizer

    def preprocess(self, inputs: list[ImageInput], batch_size: int = 1,
                   **kwargs) -> Iterator[tuple[list[int], dict]]:
        """Batches of ``batch_size`` images, each ``(input indices, collated data)``."""
        def load(index_img: tuple[int, ImageInput]) -> tuple[int, dict]:
            i, img = index_img
            if isinstance(img, np.ndarray):
                return i, self.pipeline['array'](dict(img=img, img_id=i))
            return i, self.pipeline['file'](dict(img_path=img, img_id=i))

        for chunk in self._get_chunk_data(map(load, enumerate(inputs)), batch_size):
            yield [i for i, _ in chunk], self.collate_fn([data for _, data in chunk])

    def __call__(self, inputs: str | np.ndarray | Sequence[str | np.ndarray],
                 batch_size: int = 1, out_dir: str = '', return_datasamples: bool = False,
                 **kwargs) -> dict:
        """Detect objects in ``inputs`` (see :func:`list_images`).

        Args:
            inputs: Image file(s), folder(s), glob pattern(s) or BGR arrays.
            batch_size: Images per forward pass.
            out_dir: Save drawings to ``out_dir/vis/`` and predictions to ``out_dir/preds/``
                (unless ``no_save_vis`` / ``no_save_pred``); '' saves nothing.
            return_datasamples: Return :class:`DetDataSample` objects instead of dicts.
            **kwargs: ``return_vis``, ``show``, ``wait_time``, ``draw_pred``,
                ``pred_score_thr`` (drawing only; default 0.3), ``no_save_vis``,
                ``no_save_pred``, ``print_result``.

        Returns:
            ``dict(predictions=[one per image], visualization=[RGB uint8 [H, W, 3]] or None)``;
            a prediction is ``dict(bboxes=[[x1, y1, x2, y2]] (original pixels), scores=[...],
            labels=[...], label_names=[...])`` with all the model's detections, by score.
        """
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        vis_kwargs, post_kwargs = self._dispatch_kwargs(**kwargs)[2:]
        images = list_images(inputs)
        names = output_names(images)
        pred_files = prediction_file_names(names)
        if out_dir:
            vis_kwargs.setdefault('img_out_dir', osp.join(out_dir, 'vis'))
            post_kwargs.setdefault('pred_out_dir', osp.join(out_dir, 'preds'))
        batches: Iterable = self.preprocess(images, batch_size=batch_size)
        if self.show_progress:
            batches = track(batches, description='Inference',
                            total=(len(images) + batch_size - 1) // batch_size)
        results: dict[str, list] = dict(predictions=[], visualization=[])
        for indices, data in batches:
            preds = self.forward(data)
            batch_images = [images[i] for i in indices]
            batch_names = [names[i] for i in indices]
            vis = self.visualize(batch_images, preds, names=batch_names, **vis_kwargs)
            out = self.postprocess(preds, vis, return_datasamples,
                                   pred_files=[pred_files[i] for i in indices], **post_kwargs)
            results['predictions'].extend(out['predictions'])
            results['visualization'].extend(out['visualization'] or [])
        if not results['visualization']:
            results['visualization'] = None
        return results

    def visualize(self, inputs: list[ImageInput], preds: list[DetDataSample],
                  return_vis: bool = False, show: bool = False, wait_time: float = 0,
                  draw_pred: bool = True, pred_score_thr: float = 0.3,
                  img_out_dir: str = '', no_save_vis: bool = False,
                  names: Sequence[str] | None = None) -> list[np.ndarray] | None:
        """Draw the predictions (score > ``pred_score_thr``) on each image.

        Returns:
            The drawings (RGB uint8 [H, W, 3]) when ``return_vis``, else None.
        """
        save = bool(img_out_dir) and not no_save_vis
        if not (return_vis or show or save):
            return None
        names = names or output_names(inputs)
        drawings = []
        for img, pred, name in zip(inputs, preds, names):
            image = (mmcv.imread(img, channel_order='rgb') if isinstance(img, str)
                     else mmcv.bgr2rgb(to_three_channel_uint8(img)))
            out_file = osp.join(img_out_dir, name) if save else None
            self.visualizer.add_datasample(name, image, pred, draw_gt=False,
                                           draw_pred=draw_pred, show=show,
                                           wait_time=wait_time, out_file=out_file,
                                           pred_score_thr=pred_score_thr)
            if return_vis:
                drawings.append(self.visualizer.get_image())
        return drawings if return_vis else None

    def pred2dict(self, data_sample: DetDataSample) -> dict:
        """A prediction as JSON-ready lists: ``bboxes``, ``scores``, ``labels``,
        ``label_names``."""
        pred = data_sample.pred_instances
        classes = list(self.model.dataset_meta.get('classes') or [])
        labels = pred.labels.tolist()
        return dict(
            bboxes=pred.bboxes.tolist(),
            scores=pred.scores.tolist(),
            labels=labels,
            label_names=[classes[i] if i < len(classes) else str(i) for i in labels])

    def postprocess(self, preds: list[DetDataSample], visualization: list[np.ndarray] | None,
                    return_datasamples: bool = False, print_result: bool = False,
                    pred_out_dir: str = '', no_save_pred: bool = False,
                    pred_files: Sequence[str] | None = None) -> dict:
        """Turn the data samples into dicts; write ``<pred_out_dir>/<pred_files[i]>``
        (default ``00000000.json``, ...; see :func:`prediction_file_names`)."""
        dicts = [self.pred2dict(p) for p in preds]
        if pred_out_dir and not no_save_pred:
            Path(pred_out_dir).mkdir(parents=True, exist_ok=True)
            for pred, file in zip(dicts, pred_files or [f'{i:08d}.json' for i in
                                                        range(len(dicts))]):
                with open(osp.join(pred_out_dir, file), 'w') as f:
                    json.dump(pred, f)
        if print_result:
            for pred in dicts:
                print(pred)
        return dict(predictions=preds if return_datasamples else dicts,
                    visualization=visualization)
