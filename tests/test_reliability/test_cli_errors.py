"""Every tool error is one line naming the file/key/value; ``--debug`` shows the traceback."""
import importlib.util
import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from mmengine import DefaultScope
from mmengine.config import Config

from fcosdet.registry import MODELS
from fcosdet.utils.cli import run_cli
from fcosdet.utils.error_format import error_message

from ._faults import REPO


@pytest.fixture
def cfg(tiny_config: str) -> Config:
    return Config.fromfile(tiny_config)


def _raised(build: dict) -> Exception:
    with DefaultScope.overwrite_default_scope('fcosdet'), pytest.raises(Exception) as err:
        MODELS.build(build)
    return err.value


def test_unknown_type_names_the_key_and_the_closest_type(cfg):
    cfg.model.backbone.type = 'ResNett'
    err = _raised(cfg.model)
    assert error_message(err, cfg) == (f"{cfg.filename}: model.backbone.type='ResNett' is not "
                                       "a registered model type (did you mean 'ResNet'?)")
    assert error_message(err) == "'ResNett' is not a registered model type (did you mean " \
                                 "'ResNet'?)"


def test_unexpected_keyword_names_the_key_and_the_closest_argument(cfg):
    cfg.model.bbox_head.num_clases = 3
    err = _raised(cfg.model)
    assert error_message(err, cfg) == (f"{cfg.filename}: model.bbox_head.num_clases: FCOSHead "
                                       "has no argument 'num_clases' (did you mean "
                                       "'num_classes'?)")


def test_bad_test_cfg_key_and_bare_errors(cfg):
    cfg.model.test_cfg.nms_pree = 5
    assert error_message(_raised(cfg.model)) == (
        "FCOSHead test_cfg: unknown key 'nms_pree'; expected one of ['max_per_img', "
        "'min_bbox_size', 'nms', 'nms_pre', 'score_thr', 'with_sqrt_score']")
    assert error_message(KeyError('img_path')) == 'KeyError: img_path'
    assert error_message(ValueError('a\n  multi-line\tmessage here')) == \
        'a multi-line message here'


def _fail(argv):
    raise ValueError('COCO annotation file x.json: duplicate annotation id 3')


def test_run_cli_one_line_and_debug(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', ['tool.py'])
    monkeypatch.delenv('FCOSDET_DEBUG', raising=False)
    with pytest.raises(SystemExit) as code:
        run_cli(_fail)
    assert code.value.code == 1
    assert capsys.readouterr().err == ('tool.py: error: COCO annotation file x.json: duplicate '
                                       'annotation id 3\n')
    monkeypatch.setattr(sys, 'argv', ['tool.py', '--debug'])
    with pytest.raises(ValueError, match='duplicate annotation id 3'):
        run_cli(_fail)
    assert sys.argv == ['tool.py']  # removed before the tool parses its arguments
    monkeypatch.setenv('FCOSDET_DEBUG', '1')
    with pytest.raises(ValueError):
        run_cli(_fail)


def test_train_tool_prints_one_line_for_an_unknown_type(tiny_config):
    result = subprocess.run(
        [sys.executable, 'tools/train.py', tiny_config, '--cfg-options',
         'model.backbone.type=ResNett'], cwd=REPO, capture_output=True, text=True,
        env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: {tiny_config}: model.backbone.type='ResNett' is not a registered "
        "model type (did you mean 'ResNet'?)")
    assert 'Traceback' not in result.stderr


def _train_error(tiny_config, capsys, monkeypatch, *args: str) -> str:
    """The stderr of tools/train.py (in process, through run_cli) with ``args``."""
    spec = importlib.util.spec_from_file_location('train_tool', REPO / 'tools' / 'train.py')
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    monkeypatch.setattr(sys, 'argv', ['train.py', tiny_config, *args])
    monkeypatch.delenv('FCOSDET_DEBUG', raising=False)
    with pytest.raises(SystemExit) as code:
        run_cli(train.main)
    assert code.value.code == 1
    return capsys.readouterr().err


@pytest.mark.parametrize('args, message', [
    # was: not enough values to unpack (expected 2, got 1)
    (['--cfg-options', 'train_cfg.max_epochs'],
     "--cfg-options: 'train_cfg.max_epochs' is not key=value (e.g. train_cfg.max_epochs=12)"),
    (['--cfg-options', 'randomness.seed=1', 'train_cfg.max_epochs'],
     "--cfg-options: 'train_cfg.max_epochs' is not key=value (e.g. train_cfg.max_epochs=12)"),
    # was: invalid literal for int() with base 10: 'two' (at the start of training)
    (['--cfg-options', 'train_cfg.max_epochs=two'],
     '--cfg-options train_cfg.max_epochs=two: the config {cfg} has a number there ({epochs}), '
     "not 'two'"),
])
def test_cfg_options_typos_name_the_key(tiny_config, cfg, capsys, monkeypatch, args, message):
    err = _train_error(tiny_config, capsys, monkeypatch, *args)
    expected = message.format(cfg=tiny_config, epochs=cfg.train_cfg.max_epochs)
    assert err == f'train.py: error: {expected}\n'


class _DiesAtOne(torch.utils.data.Dataset):
    """A dataset whose worker is killed (as by the OOM killer) when it loads item 1."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> int:
        if index == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return index


WORKER_LINE = ('a DataLoader worker process died ({}); it was killed (out of memory?) or '
               "crashed: lower the dataloader's num_workers or batch_size; training continues "
               'from its last checkpoint with --resume')


def test_killed_dataloader_worker_is_named_whatever_it_surfaced_as():
    with pytest.raises(RuntimeError) as err:
        list(torch.utils.data.DataLoader(_DiesAtOne(), num_workers=1))
    message = error_message(err.value)
    pid = re.search(r'pid\(s\) (\d+)', str(err.value)).group(1)
    assert message == WORKER_LINE.format(f'DataLoader worker (pid(s) {pid}) exited unexpectedly')
    # torch's SIGCHLD handler raised inside mmengine's config formatting, which reported the
    # whole config (6,388 characters) as a syntax error
    with pytest.raises(SyntaxError) as err:
        try:
            raise RuntimeError('DataLoader worker (pid 4242) is killed by signal: Killed. ')
        except RuntimeError:
            raise SyntaxError('Failed to format the config file, please check the syntax of: '
                              '\n' + 'x = 1\n' * 1000)  # noqa: B904 (mmengine's way)
    assert error_message(err.value) == WORKER_LINE.format(
        'DataLoader worker (pid 4242) is killed by signal: Killed.')
    # a worker killed while sending a batch: a connection error raised in multiprocessing code
    namespace: dict = {}
    exec(compile('def recv():\n    raise ConnectionResetError(104, "Connection reset by peer")',
                 os.path.join(os.sep, 'lib', 'multiprocessing', 'connection.py'), 'exec'),
         namespace)
    with pytest.raises(ConnectionResetError) as err:
        namespace['recv']()
    assert error_message(err.value) == WORKER_LINE.format(
        'ConnectionResetError: [Errno 104] Connection reset by peer')


def test_long_messages_are_shortened():
    message = error_message(ValueError('bad ' + 'y' * 5000))
    assert message == f'bad {"y" * 596} ... (5004 characters; --debug shows all)'
