"""tools/test.py with --backend onnxruntime and the fast paths, tools/image_demo.py --backend, and
the FastPathHook, on the tiny dataset. Three subprocess runs of tools/test.py in all."""
import importlib.util
import math
import pickle
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
from tiny_setup import randomise_bn_stats

from fcosdet.apis import init_detector
from fcosdet.deployment import export_onnx
from fcosdet.engine.hooks import FastPathHook
from fcosdet.utils.cli import CLIError

from ._cli_utils import REPO, assert_ok, run_tool, scalar_logs

# every candidate scored; up to 100 boxes per image so that the mAP is not 0
KEEP_ALL = ['model.test_cfg.score_thr=0.0', 'model.test_cfg.max_per_img=100']


def _load_tool(relpath: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relpath).stem + '_dt', REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEST = _load_tool('tools/test.py')
IMAGE_DEMO = _load_tool('tools/image_demo.py')


@pytest.fixture(scope='module')
def model_files(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(checkpoint, dynamic ONNX file) of the tiny model: random weights, non-trivial BN
    statistics, and distances near 10 px (boxes of about the objects' size, so some match)."""
    folder = tmp_path_factory.mktemp('deploy_tools')
    torch.manual_seed(0)
    model = init_detector(tiny_config)
    randomise_bn_stats(model, seed=1)
    with torch.no_grad():
        model.bbox_head.conv_reg.weight.mul_(0.05)
        model.bbox_head.conv_reg.bias.fill_(math.log(10.0))
    checkpoint = folder / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    onnx_file = export_onnx(init_detector(tiny_config, str(checkpoint)),
                            str(folder / 'tiny.onnx'), shape=(96, 128), dynamic=True)
    return str(checkpoint), onnx_file


@pytest.fixture(scope='module')
def test_runs(tiny_config: str, model_files: tuple[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """tools/test.py three ways: plain pytorch (``--no-fast-path``), onnxruntime, and pytorch
    by default (the fp32 fast path). ``{name: (work dir, stdout + stderr)}``."""
    checkpoint, onnx_file = model_files
    root = tmp_path_factory.mktemp('deploy_test_runs')
    runs = dict(pytorch=[tiny_config, checkpoint, '--no-fast-path'],
                onnxruntime=[tiny_config, onnx_file, '--backend', 'onnxruntime'],
                fast_path=[tiny_config, checkpoint])
    outputs = {}
    for name, args in runs.items():
        work_dir = root / name
        result = run_tool(['tools/test.py', *args, '--work-dir', str(work_dir),
                           '--out', str(work_dir / 'preds.pkl'), '--cfg-options', *KEEP_ALL])
        assert_ok(result)
        outputs[name] = (work_dir, result.stdout + result.stderr)
    return outputs


def _preds(work_dir: Path) -> list[dict]:
    with open(work_dir / 'preds.pkl', 'rb') as f:
        return pickle.load(f)


def _metrics(work_dir: Path) -> dict:
    return scalar_logs(work_dir, '*/*.json')[-1]


@pytest.mark.parametrize('name', ['onnxruntime', 'fast_path'])
def test_same_predictions_and_map_as_pytorch(test_runs, name):
    reference_dir, _ = test_runs['pytorch']
    work_dir, _ = test_runs[name]
    reference = _metrics(reference_dir)
    assert reference['coco/bbox_mAP_50'] > 0  # a non-trivial comparison
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'):
        assert _metrics(work_dir)[key] == reference[key], key
    expected, actual = _preds(reference_dir), _preds(work_dir)
    assert [p['img_id'] for p in actual] == [1, 2, 3, 4, 5]
    for act, exp in zip(actual, expected, strict=True):
        act, exp = act['pred_instances'], exp['pred_instances']
        assert len(exp['labels']) == 100
        assert torch.equal(act['labels'], exp['labels'])
        torch.testing.assert_close(act['bboxes'], exp['bboxes'], atol=1e-3, rtol=0)
        torch.testing.assert_close(act['scores'], exp['scores'], atol=1e-5, rtol=0)


def test_fast_path_applied_by_default_only(test_runs):
    assert ("FastPathHook: inference fast paths enabled: ['channels_last', 'fuse_bn']"
            in test_runs['fast_path'][1])
    for name in ('pytorch', 'onnxruntime'):
        assert 'FastPathHook' not in test_runs[name][1]
    assert "type='ORTDetector'" in test_runs['onnxruntime'][1]  # the dumped config


def _cfg(argv: list[str]):
    return TEST.build_cfg(TEST.parse_args(argv))


def _fast_path_hooks(cfg) -> list[dict]:
    return [h for h in cfg.get('custom_hooks', []) if h['type'] == 'FastPathHook']


def test_build_cfg_backend_and_fast_path(tiny_config, model_files, tmp_path):
    checkpoint, onnx_file = model_files
    cfg = _cfg([tiny_config, onnx_file, '--backend', 'onnxruntime'])
    assert cfg.model.type == 'ORTDetector' and cfg.model.onnx_file == onnx_file
    assert cfg.model.bbox_head.num_classes == 4 and cfg.load_from is None
    cfg = _cfg([tiny_config, checkpoint, '--fast-path', 'fuse_bn', 'bf16'])
    assert cfg.load_from == checkpoint
    assert cfg.custom_hooks[-1] == dict(
        type='FastPathHook', fast_path=dict(channels_last=False, fuse_bn=True, bf16=True))
    (hook,) = _fast_path_hooks(_cfg([tiny_config, checkpoint]))  # the default
    assert hook['fast_path'] == dict(channels_last=True, fuse_bn=True, bf16=False)
    assert not _fast_path_hooks(_cfg([tiny_config, checkpoint, '--no-fast-path']))
    with pytest.raises(CLIError, match='--no-fast-path and --fast-path NAMES exclude'):
        _cfg([tiny_config, checkpoint, '--no-fast-path', '--fast-path', 'fuse_bn'])
    # the flag overrides the config key; an empty flag turns every fast path off
    keyed = tmp_path / 'keyed.py'
    keyed.write_text(f"_base_ = '{tiny_config}'\nfast_path = dict(channels_last=True)\n")
    assert not _fast_path_hooks(_cfg([str(keyed), checkpoint, '--fast-path']))
    (hook,) = _fast_path_hooks(_cfg([str(keyed), checkpoint]))
    assert hook['fast_path'] == dict(channels_last=True, fuse_bn=False, bf16=False)
    with pytest.warns(UserWarning, match='ignored by --backend onnxruntime'):
        _cfg([str(keyed), onnx_file, '--backend', 'onnxruntime'])


def test_test_tool_rejects_bad_backend_input(tiny_config, model_files, tmp_path, capsys):
    checkpoint, onnx_file = model_files
    with pytest.raises(CLIError, match="'onnxruntime' needs the .onnx file.*tiny.pth"):
        _cfg([tiny_config, checkpoint, '--backend', 'onnxruntime'])
    with pytest.raises(CLIError, match="tiny.onnx is an ONNX file: use backend 'onnxruntime'"):
        _cfg([tiny_config, onnx_file])
    with pytest.raises(CLIError, match='--fast-path applies to --backend pytorch only'):
        _cfg([tiny_config, onnx_file, '--backend', 'onnxruntime', '--fast-path', 'fuse_bn'])
    bad_key = tmp_path / 'bad_key.py'
    bad_key.write_text(f"_base_ = '{tiny_config}'\nfast_path = dict(fuse=True)\n")
    with pytest.raises(CLIError, match="unknown key 'fuse'"):
        _cfg([str(bad_key), checkpoint])
    with pytest.raises(SystemExit):
        TEST.parse_args([tiny_config, checkpoint, '--backend', 'tensorrt'])
    assert "invalid choice: 'tensorrt'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        TEST.parse_args([tiny_config, checkpoint, '--fast-path', 'fp16'])


def test_image_demo_onnxruntime(tiny_config, tiny_data_root, model_files, tmp_path, capsys):
    out_file = tmp_path / 'drawn.png'
    image = next((Path(tiny_data_root) / 'val').glob('*.png'))
    IMAGE_DEMO.main([str(image), tiny_config, model_files[1], '--backend', 'onnxruntime',
                     '--out-file', str(out_file), '--score-thr', '0.0'])
    import mmcv
    assert mmcv.imread(str(out_file)).shape == mmcv.imread(str(image)).shape
    assert f'Result written to {out_file}' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        IMAGE_DEMO.parse_args([str(image), tiny_config, model_files[1], '--backend', 'trt'])


def test_fast_path_hook_acts_once_on_test_and_blocks_training(tiny_config, model_files):
    model = init_detector(tiny_config, model_files[0], fast_path=False)
    model.train()
    messages = []
    runner = SimpleNamespace(model=model, logger=SimpleNamespace(info=messages.append))
    hook = FastPathHook(['fuse_bn', 'channels_last'])
    hook.before_train(runner)  # nothing applied yet: training is allowed
    hook.before_test_epoch(runner)
    assert not model.training
    assert torch.nn.BatchNorm2d not in {type(m) for m in model.modules()}
    assert len(model.backbone._forward_pre_hooks) == 1
    hook.before_test_epoch(runner)  # a second test epoch does not apply it again
    assert len(model.backbone._forward_pre_hooks) == 1 and len(messages) == 1
    with pytest.raises(RuntimeError, match='cannot be trained'):
        hook.before_train(runner)
    with pytest.raises(KeyError, match="'fp16'"):
        FastPathHook(['fp16'])


def test_fast_path_hook_is_registered():
    from fcosdet.registry import HOOKS
    assert HOOKS.get('FastPathHook') is FastPathHook
    assert sys.modules['fcosdet.engine.hooks.fast_path_hook'].FastPathHook is FastPathHook


PYTORCH2ONNX = _load_tool('tools/deployment/pytorch2onnx.py')


def test_int8_export_evaluates_close_to_pytorch(tiny_config, model_files, test_runs, tmp_path,
                                                capsys):
    """--int8: calibrated on the training images; tools/test.py then runs the int8 file."""
    int8_file = tmp_path / 'int8.onnx'
    PYTORCH2ONNX.main([tiny_config, model_files[0], '--out', str(int8_file), '--raw',
                       '--shape', '96', '128', '--int8', '--calib-images', '4',
                       '--calib-split', 'train'])
    # ResNet-18: stem + 16 block convs + 3 downsamples; FPN: 3 lateral + 3 output + 2 extra;
    # head: 1 cls + 1 reg tower conv at each of 5 levels -> 20 + 8 + 10 = 38 quantized
    assert ('int8: 38 convs quantized, 15 prediction convs kept fp32, activation ranges from 4 '
            'train images') in capsys.readouterr().out
    work_dir = tmp_path / 'run'
    assert_ok(run_tool(['tools/test.py', tiny_config, str(int8_file), '--backend', 'onnxruntime',
                        '--work-dir', str(work_dir), '--out', str(work_dir / 'preds.pkl'),
                        '--cfg-options', *KEEP_ALL]))
    expected, actual = _preds(test_runs['pytorch'][0]), _preds(work_dir)
    assert [p['img_id'] for p in actual] == [1, 2, 3, 4, 5]
    assert _metrics(work_dir)['coco/bbox_mAP_50'] > 0
    differences = []
    for act, exp in zip(actual, expected, strict=True):
        top_act = act['pred_instances']['scores'][:20]  # sorted by score
        top_exp = exp['pred_instances']['scores'][:20]
        differences.append(float((top_act - top_exp).abs().max()))
    # the best scores (about 0.4 here) move by quantization noise only, and do move
    assert max(differences) < 0.02 and max(differences) > 0
