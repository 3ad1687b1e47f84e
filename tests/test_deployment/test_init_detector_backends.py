"""init_detector(backend='onnxruntime'): same detections as PyTorch; ORTDetector registration."""
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from fcosdet.apis import inference_detector, init_detector, init_ort_detector
from fcosdet.datasets.demo_dataset import render_demo_image
from fcosdet.deployment import ORTDetector


def _demo_images() -> list:
    """Three BGR demo images of two sizes (resized to at most 96 x 64 by the pipeline)."""
    images = [render_demo_image(0, 1, i, 120, 180)[0][..., ::-1].copy() for i in range(2)]
    return [*images, render_demo_image(0, 1, 2, 150, 100)[0][..., ::-1].copy()]


def test_onnxruntime_backend_gives_pytorch_detections(tiny_files, dynamic_onnx):
    config, checkpoint = tiny_files
    reference = init_detector(config, checkpoint)
    model = init_detector(config, dynamic_onnx, backend='onnxruntime')
    assert isinstance(model, ORTDetector) and not model.training
    assert model.cfg.model.type == 'ORTDetector' and model.cfg.model.onnx_file == dynamic_onnx
    # no checkpoint meta on this backend: the class names come from the config's dataset
    assert model.dataset_meta['classes'] == ('a', 'b', 'c')
    images = _demo_images()
    expected = inference_detector(reference, images)
    actual = inference_detector(model, images)
    # one image in, one sample out (a batch of one is padded less: compare with its own run)
    single, single_expected = (inference_detector(m, images[2]) for m in (model, reference))
    for act, exp in zip([*actual, single], [*expected, single_expected], strict=True):
        act, exp = act.pred_instances, exp.pred_instances
        assert len(exp) > 0
        assert torch.equal(act.labels, exp.labels)
        torch.testing.assert_close(act.bboxes, exp.bboxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(act.scores, exp.scores, atol=1e-5, rtol=0)


def test_init_ort_detector_passes_threads_and_options(tiny_files, dynamic_onnx):
    model = init_ort_detector(tiny_files[0], dynamic_onnx, num_threads=1,
                              cfg_options={'model.test_cfg.max_per_img': 3})
    assert model.session.get_session_options().intra_op_num_threads == 1
    assert model.bbox_head.test_cfg['max_per_img'] == 3
    result = inference_detector(model, _demo_images()[0])
    assert len(result.pred_instances) == 3


def test_onnxruntime_backend_errors(tiny_files, dynamic_onnx, tmp_path):
    config, checkpoint = tiny_files
    with pytest.raises(ValueError, match="got 'tensorrt'"):
        init_detector(config, dynamic_onnx, backend='tensorrt')
    with pytest.raises(ValueError, match='needs the .onnx file.*tiny_fcos.pth'):
        init_detector(config, checkpoint, backend='onnxruntime')
    with pytest.raises(ValueError, match="use backend 'onnxruntime'"):
        init_detector(config, dynamic_onnx)
    with pytest.raises(ValueError, match="device='cuda:0'"):
        init_detector(config, dynamic_onnx, device='cuda:0', backend='onnxruntime')
    with pytest.raises(FileNotFoundError, match='missing.onnx'):
        init_detector(config, str(tmp_path / 'missing.onnx'), backend='onnxruntime')


def test_fast_path_of_config_is_ignored_with_a_warning(tiny_files, dynamic_onnx):
    options = {'fast_path': dict(fuse_bn=True)}
    with pytest.warns(UserWarning, match="ignored by backend 'onnxruntime'"):
        model = init_detector(tiny_files[0], dynamic_onnx, cfg_options=options,
                              backend='onnxruntime')
    assert isinstance(model, ORTDetector)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # all-off fast path: no warning
        init_detector(tiny_files[0], dynamic_onnx, backend='onnxruntime',
                      cfg_options={'fast_path': dict(fuse_bn=False)})


def test_ort_detector_found_by_scope_without_onnx_packages():
    """A fresh process where onnx and onnxruntime cannot be imported: the scope 'fcosdet' finds
    ORTDetector through the MODELS locations, and building it names the missing package."""
    code = textwrap.dedent("""
        import sys
        sys.modules['onnx'] = None
        sys.modules['onnxruntime'] = None
        from mmengine.registry import MODELS as ROOT_MODELS
        from fcosdet.registry import MODELS
        assert 'fcosdet.deployment' not in sys.modules
        # what a builder does under default_scope='fcosdet'
        with ROOT_MODELS.switch_scope_and_registry('fcosdet') as registry:
            cls = registry.get('ORTDetector')
        assert cls is not None and cls.__module__ == 'fcosdet.deployment.ort_detector', cls
        from fcosdet.utils import register_all_modules
        register_all_modules()
        try:
            MODELS.build(dict(type='ORTDetector', onnx_file='x.onnx',
                              bbox_head=dict(type='FCOSHead', num_classes=2, in_channels=8)))
        except ImportError as err:
            print('IMPORT-ERROR:', err)
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'IMPORT-ERROR: onnxruntime is needed' in result.stdout
    assert 'pip install onnxruntime' in result.stdout
