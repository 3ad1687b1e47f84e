"""Helpers of the fault tests: a very small iteration-based training run and kill -9 of it.

Shape letters: none (files and processes only).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBES_DIR = Path(__file__).resolve().parent

# iteration-based, a checkpoint every iteration, only one kept (the demo config's setting),
# no validation: the run is all saves. Model at 1/8 width (ResNet-18, 8 base channels).
FAULT_CONFIG = """\
_base_ = '{tiny_config}'
custom_imports = dict(imports=['fault_probes'], allow_failed_imports=False)
model = dict(
    backbone=dict(base_channels=8),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    bbox_head=dict(in_channels=16, feat_channels=16, norm_cfg=dict(num_groups=4)))
train_dataloader = dict(batch_size=1)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={max_iters},
                 val_interval=100000)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
log_processor = dict(by_epoch=False)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(type='{hook}', by_epoch=False, interval=1, max_keep_ckpts=1,
                    save_best=None))
custom_hooks = [dict(type='CheckInvalidLossHook', interval=1){extra_hooks}]
"""


def write_fault_config(path: Path, tiny_config: str, max_iters: int = 12,
                       hook: str = 'CheckpointHook', extra_hooks: str = '') -> Path:
    """Write the fault-test config (``extra_hooks``: more ``, dict(...)`` custom hooks)."""
    path.write_text(FAULT_CONFIG.format(tiny_config=tiny_config, max_iters=max_iters, hook=hook,
                                        extra_hooks=extra_hooks))
    return path


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=f'{REPO}{os.pathsep}{PROBES_DIR}')


def train(config: Path, work_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """Run tools/train.py to the end."""
    return subprocess.run([sys.executable, 'tools/train.py', str(config), '--work-dir',
                           str(work_dir), *extra], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=600)


def tmp_files(work_dir: Path) -> list[str]:
    """Hidden ``.<name>.<pid>.tmp`` files of unfinished saves."""
    return sorted(p.name for p in work_dir.glob('.*.tmp')) if work_dir.is_dir() else []


def _is_ckpt_tmp(name: str) -> bool:
    return name.startswith('.iter_') and name.endswith('.tmp')


def kill_during_save(config: Path, work_dir: Path, min_saved: int = 2, *extra: str,
                     timeout: float = 300) -> bool:
    """Start a training run and kill -9 it while a checkpoint is being written.

    Polls the work dir; once ``iter_<min_saved>.pth`` or a later checkpoint exists and the
    temporary file of a checkpoint save appears, the process is killed at once. With mmengine's
    own hook and ``max_keep_ckpts=1`` the previous checkpoint is already gone at that moment.

    Args:
        extra: More tools/train.py arguments (``'--resume'``).

    Returns:
        True if the kill landed mid-save (the checkpoint's temporary file is still there
        afterwards); False if the save finished first or the run ended before a kill.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    log = open(work_dir.parent / f'{work_dir.name}.log', 'w')
    proc = subprocess.Popen([sys.executable, 'tools/train.py', str(config), '--work-dir',
                             str(work_dir), *extra], cwd=REPO, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    newest = 0  # mmengine's hook may already have removed every finished checkpoint
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            names = os.listdir(work_dir)
            newest = max([newest] + [int(n[5:-4]) for n in names
                                     if n.startswith('iter_') and n.endswith('.pth')])
            if newest >= min_saved and any(_is_ckpt_tmp(n) for n in names):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return any(_is_ckpt_tmp(n) for n in tmp_files(work_dir))
            time.sleep(0.0005)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
