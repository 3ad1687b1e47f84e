"""``Detector``: an end-to-end fcosdet ONNX file run by onnxruntime on BGR images.

Shape letters: N images, K detections of an image, H/W height/width.
"""
import os
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from .metadata import INPUT_NAMES, METADATA_KEY, OUTPUT_NAMES, ModelMeta, parse_metadata
from .postprocess import split_detections
from .preprocess import pad_batch, padded_size, resize_image

Detections = dict[str, np.ndarray]


def open_session(onnx_file: str, providers: Sequence[str] | None = None,
                 num_threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session with all graph optimisations.

    Args:
        onnx_file: The ``.onnx`` file.
        providers: Execution providers (None: the CPU).
        num_threads: Intra-op threads (None: onnxruntime's default, one per core).

    Raises:
        FileNotFoundError: The file does not exist.
    """
    if not os.path.isfile(onnx_file):
        raise FileNotFoundError(f'ONNX file not found: {onnx_file}')
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_file, sess_options=options,
                                providers=list(providers or ['CPUExecutionProvider']))


class Detector:
    """Detect objects with an end-to-end ONNX file of ``tools/deployment/pytorch2onnx.py``.

    The file's metadata says how to resize and pad (as the config's test pipeline); the graph
    normalises, runs the network, decodes and applies NMS; the boxes are mapped back to each
    image's own pixels.

    Example::

        detector = Detector('fcos.onnx', num_threads=2)
        result = detector(cv2.imread('photo.jpg'))   # dict(bboxes, scores, labels)
        results = detector([img1, img2])              # batched: one onnxruntime run

    Args:
        onnx_file: The end-to-end ``.onnx`` file.
        providers: onnxruntime execution providers (None: ``['CPUExecutionProvider']``).
        num_threads: Intra-op threads (None: onnxruntime's default).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not an end-to-end export (no or bad metadata, the raw network,
            other inputs or outputs).
    """

    def __init__(self, onnx_file: str, providers: Sequence[str] | None = None,
                 num_threads: int | None = None) -> None:
        self.onnx_file = str(onnx_file)
        self.session = open_session(self.onnx_file, providers, num_threads)
        text = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        self.meta: ModelMeta = parse_metadata(text, self.onnx_file)
        if self.meta.kind != 'end2end':
            raise ValueError(f'{self.onnx_file} is the raw-network export (--raw): fcosdet '
                             'runtime needs the end-to-end export (pytorch2onnx.py without '
                             '--raw)')
        self._check_io()

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, index = label."""
        return self.meta.classes

    def _check_io(self) -> None:
        """The graph must have the contract's input and output names."""
        inputs = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if inputs != INPUT_NAMES or outputs != OUTPUT_NAMES:
            raise ValueError(f'{self.onnx_file}: an end-to-end file has inputs {INPUT_NAMES} '
                             f'and outputs {OUTPUT_NAMES}, got {inputs} and {outputs}')
        shape = self.session.get_inputs()[0].shape
        # a static export fixes N, H and W: ints here, names when dynamic
        self.fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self.fixed_size = tuple(shape[2:]) if all(isinstance(s, int) for s in shape[2:]) \
            else None

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray,
                                                                list[tuple[float, float]]]:
        """Resize and pad BGR images into the graph's inputs.

        Returns:
            ``images`` float32 ``[N, 3, H, W]``, ``img_shapes`` float32 ``[N, 2]`` and the N
            scale factors ``(w_scale, h_scale)``.
        """
        resized, factors = zip(*(resize_image(img, self.meta) for img in images))
        size = self.fixed_size or padded_size([r.shape[:2] for r in resized],
                                               self.meta.pad_size_divisor)
        batch, shapes = pad_batch(resized, size)
        return batch, shapes, list(factors)

    def run(self, images: np.ndarray, img_shapes: np.ndarray) -> tuple[np.ndarray, ...]:
        """One onnxruntime run: ``dets [N, K, 4]``, ``scores [N, K]``, ``labels [N, K]`` and
        ``num_dets [N]``, boxes in the resized images' pixels."""
        try:
            return tuple(self.session.run(list(OUTPUT_NAMES), {
                INPUT_NAMES[0]: images, INPUT_NAMES[1]: img_shapes}))
        except Exception as err:  # onnxruntime raises its own exception types
            raise RuntimeError(f'{self.onnx_file} failed on images of shape '
                               f'{tuple(images.shape)}: {err}') from err

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect objects in BGR ``uint8 [H, W, 3]`` images, as one batch (or in chunks of a
        static graph's batch size).

        Returns:
            Per image ``dict(bboxes=float32 [K, 4] x1y1x2y2 in the image's pixels,
            scores=float32 [K], labels=int64 [K])``, by descending score.
        """
        step = self.fixed_batch or max(len(images), 1)
        results = []
        for start in range(0, len(images), step):
            chunk = list(images[start:start + step])
            batch, shapes, factors = self.preprocess(chunk)
            if self.fixed_batch is not None and len(chunk) < step:  # fill the static batch
                batch = np.concatenate([batch, np.repeat(batch[:1], step - len(chunk), 0)])
                shapes = np.concatenate([shapes, np.repeat(shapes[:1], step - len(chunk), 0)])
            results += split_detections(*self.run(batch, shapes), factors)[:len(chunk)]
        return results

    def __call__(self, img: np.ndarray | Sequence[np.ndarray]) -> Detections | list[Detections]:
        """Detections of one image (a dict) or of a list of images (a list of dicts, one
        batched run); see :meth:`detect`."""
        if isinstance(img, np.ndarray):
            return self.detect([img])[0]
        if not img:
            raise ValueError('Detector: got an empty list of images')
        return self.detect(img)
