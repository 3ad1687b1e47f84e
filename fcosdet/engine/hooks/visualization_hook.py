"""Draws predictions of the val/test loops with the runner's :class:`DetLocalVisualizer`."""
import os.path as osp
from collections.abc import Sequence
from pathlib import Path

import mmcv
import numpy as np
from mmengine.fileio import get
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.visualization import Visualizer

from fcosdet.registry import HOOKS
from fcosdet.structures import DetDataSample
from fcosdet.visualization import DetLocalVisualizer


@HOOKS.register_module()
class DetVisualizationHook(Hook):
    """Visualize the predictions of validation and testing.

    Validation sends every ``interval``-th sample (counted over the val epoch) to the
    visualizer's backends. Testing draws every sample: into
    ``<work_dir>/<timestamp>/<test_out_dir>/<image name>.png`` when ``test_out_dir`` is set,
    otherwise to the backends. Nothing is drawn unless ``draw`` is True. The original image is
    read from the data sample's ``img_path``.

    Args:
        draw: Switch the hook on.
        interval: Draw one validation sample out of this many.
        score_thr: Predictions with a score at or below this are not drawn.
        show: Also show each drawing in a window.
        wait_time: Seconds a shown window stays open (0: until a key press).
        test_out_dir: Folder (relative to ``<work_dir>/<timestamp>``) for the test drawings.
        backend_args: File backend arguments for reading the images.
    """

    priority = 'NORMAL'

    def __init__(self,
                 draw: bool = False,
                 interval: int = 50,
                 score_thr: float = 0.3,
                 show: bool = False,
                 wait_time: float = 0.,
                 test_out_dir: str | None = None,
                 backend_args: dict | None = None) -> None:
        if interval < 1:
            raise ValueError(f'DetVisualizationHook: interval must be >= 1, got {interval}')
        self.draw = draw
        self.interval = interval
        self.score_thr = score_thr
        self.show = show
        self.wait_time = wait_time
        self.test_out_dir = test_out_dir
        self.backend_args = backend_args
        self._val_count = 0
        self._test_dir: str | None = None

    @staticmethod
    def _visualizer() -> DetLocalVisualizer:
        """The runner's visualizer, which must be a DetLocalVisualizer."""
        visualizer = Visualizer.get_current_instance()
        if not isinstance(visualizer, DetLocalVisualizer):
            raise TypeError("DetVisualizationHook needs the config key `visualizer` to be "
                            f"dict(type='DetLocalVisualizer', ...), got "
                            f'{type(visualizer).__name__}')
        return visualizer

    def _read_image(self, data_sample: DetDataSample) -> np.ndarray:
        """Original RGB uint8 image [H, W, 3] of a data sample, from its ``img_path``."""
        img_path = data_sample.metainfo.get('img_path')
        if img_path is None:
            raise KeyError('DetVisualizationHook needs `img_path` in the data sample metainfo '
                           '(add it to the meta_keys of PackDetInputs)')
        return mmcv.imfrombytes(get(img_path, backend_args=self.backend_args),
                                channel_order='rgb')

    def _draw(self, data_sample: DetDataSample, name: str, step: int,
              out_file: str | None = None) -> None:
        """Draw one sample's gt and predictions to ``out_file`` or the backends."""
        self._visualizer().add_datasample(
            name, self._read_image(data_sample), data_sample=data_sample, show=self.show,
            wait_time=self.wait_time, out_file=out_file, pred_score_thr=self.score_thr,
            step=step)

    def before_val_epoch(self, runner: Runner) -> None:
        """Restart the sample count of the val epoch."""
        self._val_count = 0

    def after_val_iter(self, runner: Runner, batch_idx: int, data_batch: dict | None = None,
                       outputs: Sequence[DetDataSample] | None = None) -> None:
        """Draw every ``interval``-th validation sample to the backends."""
        if not self.draw or not outputs:
            return
        for data_sample in outputs:
            if self._val_count % self.interval == 0:
                name = f"val_{osp.basename(data_sample.metainfo.get('img_path', ''))}"
                self._draw(data_sample, name, step=runner.iter)
            self._val_count += 1

    def before_test(self, runner: Runner) -> None:
        """Create the test output folder ``<work_dir>/<timestamp>/<test_out_dir>``."""
        if not self.draw or self.test_out_dir is None:
            return
        self._test_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir)
        Path(self._test_dir).mkdir(parents=True, exist_ok=True)

    def after_test_iter(self, runner: Runner, batch_idx: int, data_batch: dict | None = None,
                        outputs: Sequence[DetDataSample] | None = None) -> None:
        """Draw every test sample to ``<image name>.png`` files or to the backends."""
        if not self.draw or not outputs:
            return
        for i, data_sample in enumerate(outputs):
            img_path = data_sample.metainfo.get('img_path', '')
            out_file = None
            if self._test_dir is not None:
                out_file = osp.join(self._test_dir, f'{Path(img_path).stem}.png')
            self._draw(data_sample, f'test_{osp.basename(img_path)}',
                       step=batch_idx * len(outputs) + i, out_file=out_file)
