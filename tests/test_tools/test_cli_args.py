"""Command-line handling of tools/train.py, tools/test.py and tools/misc/print_config.py:
bad input gives one line on stderr and exit status 1; flags end up in the config."""
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from ._cli_utils import REPO, run_tool


def _load_tool(relpath: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relpath).stem + '_tool', REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN = _load_tool('tools/train.py')
TEST = _load_tool('tools/test.py')
PRINT_CONFIG = _load_tool('tools/misc/print_config.py')


def _one_line_error(tool: ModuleType, argv: list[str], capsys, monkeypatch) -> str:
    monkeypatch.setattr(sys, 'argv', ['tool.py', *argv])
    with pytest.raises(SystemExit) as exit_info:
        tool.run_cli(tool.main)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_config_as_subprocess():
    result = run_tool(['tools/train.py', 'configs/fcos/no_such_config.py'])
    assert result.returncode == 1
    assert result.stderr.strip() == ('train.py: error: config file not found: '
                                     'configs/fcos/no_such_config.py')


def test_dist_scripts_check_their_files(tmp_path):
    result = run_tool(['tools/dist_train.sh', 'nope.py', '2'])
    assert (result.returncode, result.stderr) == (
        1, 'dist_train.sh: error: config file not found: nope.py\n')
    config = tmp_path / 'c.py'
    config.write_text('')
    result = run_tool(['tools/dist_test.sh', str(config), 'none.pth', '2'])
    assert (result.returncode, result.stderr) == (
        1, 'dist_test.sh: error: checkpoint file not found: none.pth\n')


@pytest.mark.parametrize('tool', [TRAIN, PRINT_CONFIG])
def test_missing_config(tool, capsys, monkeypatch):
    err = _one_line_error(tool, ['nope/cfg.py'], capsys, monkeypatch)
    assert err.endswith('error: config file not found: nope/cfg.py')


def test_bad_cfg_option_keys(tiny_config, capsys, monkeypatch):
    err = _one_line_error(TRAIN, [tiny_config, '--cfg-options', 'trian_cfg.max_epochs=1'],
                          capsys, monkeypatch)
    assert '"trian_cfg.max_epochs": "trian_cfg" is not in the config' in err
    err = _one_line_error(PRINT_CONFIG, [tiny_config, '--cfg-options', 'model.nekc.x=1'],
                          capsys, monkeypatch)
    assert '"model.nekc" is not in the config' in err


def test_test_tool_errors(tiny_config, tmp_path, capsys, monkeypatch):
    missing = str(tmp_path / 'none.pth')
    err = _one_line_error(TEST, [tiny_config, missing], capsys, monkeypatch)
    assert err.endswith(f'checkpoint file not found: {missing}')
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    err = _one_line_error(TEST, ['nope.py', str(ckpt)], capsys, monkeypatch)
    assert 'config file not found: nope.py' in err
    err = _one_line_error(TEST, [tiny_config, str(ckpt), '--cfg-options', 'modle.x=1'],
                          capsys, monkeypatch)
    assert '"modle" is not in the config' in err
    err = _one_line_error(TEST, [tiny_config, str(ckpt), '--out', 'p.json'], capsys, monkeypatch)
    assert '--out must be a .pkl or .pickle file' in err


def test_resume_with_missing_checkpoint(tiny_config, tmp_path, capsys, monkeypatch):
    err = _one_line_error(TRAIN, [tiny_config, '--resume', str(tmp_path / 'x.pth')], capsys,
                          monkeypatch)
    assert 'checkpoint file not found' in err


def test_train_flags_reach_the_config(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TRAIN.build_cfg(TRAIN.parse_args([tiny_config]))
    assert cfg.work_dir == str(Path('work_dirs') / 'fcos_tiny')  # default from the name
    assert cfg.launcher == 'none' and not cfg.resume
    assert cfg.optim_wrapper.type == 'OptimWrapper' and not cfg.auto_scale_lr.enable

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    args = TRAIN.parse_args([tiny_config, '--work-dir', 'wd', '--amp', '--auto-scale-lr',
                             '--resume', '--cfg-options', 'work_dir=ignored'])
    cfg = TRAIN.build_cfg(args)
    assert cfg.work_dir == 'wd'  # command line beats config
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.auto_scale_lr.enable
    assert cfg.resume and cfg.load_from is None

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = TRAIN.build_cfg(TRAIN.parse_args([tiny_config, '--amp', '--cfg-options',
                                            'work_dir=from_cfg']))
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.work_dir == 'from_cfg'  # config beats the default
    # --amp means one thing for every config: a CPU mixed-precision config (the demo's
    # dtype='auto', or 'float32') becomes CUDA AMP on a GPU machine and bfloat16 autocast,
    # without a probe, on a CPU-only one
    for dtype in ('auto', 'float32'):
        options = ['--cfg-options', 'optim_wrapper.type=CPUAmpOptimWrapper',
                   f'optim_wrapper.dtype={dtype}', 'optim_wrapper.probe_iters=4']
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
        cfg = TRAIN.build_cfg(TRAIN.parse_args([tiny_config, '--amp', *options]))
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert 'dtype' not in cfg.optim_wrapper and 'probe_iters' not in cfg.optim_wrapper
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
        monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
        cfg = TRAIN.build_cfg(TRAIN.parse_args([tiny_config, '--amp', *options]))
        assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'
        cfg = TRAIN.build_cfg(TRAIN.parse_args([tiny_config, *options]))  # without --amp
        assert cfg.optim_wrapper.dtype == dtype


def test_test_flags_reach_the_config(tiny_config, tmp_path):
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'')
    args = TEST.parse_args([tiny_config, str(ckpt), '--out', str(tmp_path / 'p.pkl'), '--show',
                            '--show-dir', 'vis'])
    cfg = TEST.build_cfg(args)
    assert cfg.load_from == str(ckpt)
    hook = cfg.default_hooks.visualization
    assert hook.type == 'DetVisualizationHook' and hook.draw and hook.show
    assert hook.test_out_dir == 'vis'
    assert [m['type'] for m in cfg.test_evaluator] == ['CocoMetric', 'DumpDetResults']
    assert cfg.test_evaluator[1]['out_file_path'] == str(tmp_path / 'p.pkl')


INFER = _load_tool('tools/infer.py')
IMAGE_DEMO = _load_tool('tools/image_demo.py')


@pytest.mark.parametrize('value', ['1.5', '-0.5', 'nan', 'high'])
@pytest.mark.parametrize('tool', [INFER, IMAGE_DEMO])
def test_score_thr_outside_0_1_is_one_line(tool, value, capsys, monkeypatch):
    """Was: 1.5, -0.5 and nan accepted (nothing drawn, or everything)."""
    err = _one_line_error(tool, ['img.png', 'cfg.py', 'ckpt.pth', '--score-thr', value],
                          capsys, monkeypatch)
    assert err == f'tool.py: error: --score-thr must be a number in [0, 1], got {value}'


def test_score_thr_in_range_is_parsed():
    assert INFER.parse_args(['i', 'c', 'k', '--pred-score-thr', '1']).score_thr == 1.0
    assert IMAGE_DEMO.parse_args(['i', 'c', 'k', '--score-thr', '0']).score_thr == 0.0
