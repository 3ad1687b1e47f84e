"""The --slice-* flags of tools/test.py, tools/infer.py and tools/image_demo.py: one-line
errors, the test config they build, and tools/test.py's sliced predictions equal the API's
(which tests/test_apis/test_sliced_inference.py checks against a tile-by-tile reference)."""
import importlib.util
import pickle
from pathlib import Path

import mmcv
import pytest
import torch

from fcosdet.apis import inference_detector, init_detector
from fcosdet.utils.cli import CLIError

from ._cli_utils import assert_ok, run_tool

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f'{name}_slice_tool', REPO / 'tools' / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_tool = _load('test.py')


@pytest.mark.parametrize('flags, match', [
    (['--slice-size', '0', '64'], 'slice size must be'),
    (['--slice-size', '64', '64', '--slice-overlap', '1'], r'overlap must be a ratio in \[0, 1\)'),
    (['--slice-size', '64', '64', '--slice-overlap', '-0.2'], 'overlap'),
    (['--slice-merge', 'nmm'], 'need --slice-size'),
    (['--slice-full-image'], 'need --slice-size'),
    (['--slice-overlap', '0.2'], 'need --slice-size'),
    (['--slice-size', '64', '64', '--tta'], '--slice-size and --tta exclude each other'),
])
def test_bad_slice_flags(tiny_config, tiny_checkpoint, flags, match):
    args = test_tool.parse_args([tiny_config, str(tiny_checkpoint), *flags])
    with pytest.raises(CLIError, match=match):
        test_tool.build_cfg(args)


def test_slice_merge_choices(capsys):
    with pytest.raises(SystemExit):
        test_tool.parse_args(['c.py', 'k.pth', '--slice-size', '8', '8', '--slice-merge', 'wbf'])
    assert "invalid choice: 'wbf'" in capsys.readouterr().err


def test_sliced_test_config(tiny_config, tiny_checkpoint):
    cfg = test_tool.build_cfg(test_tool.parse_args(
        [tiny_config, str(tiny_checkpoint), '--slice-size', '48', '64', '--slice-merge', 'nmm',
         '--slice-full-image']))
    assert cfg.model.type == 'SlicedDetModel' and cfg.model.module.type == 'FCOS'
    assert cfg.model.slice_cfg == dict(slice_size=(48, 64), overlap=0.2, merge='nmm',
                                       full_image=True)
    # the dataset loads whole images; each tile is resized and packed
    assert [s['type'] for s in cfg.test_dataloader.dataset.pipeline] == [
        'LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs']
    assert [s['type'] for s in cfg.model.tile_pipeline] == ['Resize', 'PackDetInputs']


def test_test_py_slicing_equals_api(tiny_config, tiny_checkpoint, tmp_path):
    out = tmp_path / 'sliced.pkl'
    result = run_tool(['tools/test.py', tiny_config, str(tiny_checkpoint), '--out', str(out),
                       '--work-dir', str(tmp_path / 'work'), '--slice-size', '48', '64',
                       '--slice-merge', 'nmm'])
    assert_ok(result)
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    samples = pickle.load(open(out, 'rb'))
    model = init_detector(tiny_config, str(tiny_checkpoint))
    assert len(samples) == 5
    for sample in samples:
        img = mmcv.imread(sample['img_path'])
        assert tuple(sample['ori_shape']) == img.shape[:2]  # whole images, not tiles
        ref = inference_detector(model, img, slice_size=(48, 64), slice_merge='nmm')
        pred = sample['pred_instances']
        assert len(pred['scores']) == len(ref.pred_instances) > 0
        torch.testing.assert_close(pred['bboxes'], ref.pred_instances.bboxes, atol=1e-3,
                                   rtol=0)
        torch.testing.assert_close(pred['scores'], ref.pred_instances.scores, atol=1e-5,
                                   rtol=0)


def test_infer_and_image_demo_flags(tiny_config, tiny_checkpoint, tiny_data_root, tmp_path):
    img = str(tiny_data_root / 'val' / '000001.png')
    infer = _load('infer.py')
    with pytest.raises(CLIError, match=r'^--slice-size/--slice-overlap: slice overlap must be '
                                       r'a ratio in \[0, 1\), got 1.5$'):
        infer.main([img, tiny_config, str(tiny_checkpoint), '--slice-size', '32', '32',
                    '--slice-overlap', '1.5', '--out-dir', str(tmp_path)])
    demo = _load('image_demo.py')
    demo.main([img, tiny_config, str(tiny_checkpoint), '--slice-size', '32', '48',
               '--out-file', str(tmp_path / 'out.png')])
    assert mmcv.imread(str(tmp_path / 'out.png')).shape == mmcv.imread(img).shape
