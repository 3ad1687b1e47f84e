"""Two nodes that share no filesystem: ``tools/dist_train.sh`` and ``tools/dist_test.sh`` with
``NNODES=2``, one process per node, both on this machine (127.0.0.1).

Node 1 runs in its own mount namespace (``unshare --mount``) where ``/tmp`` and the node's folder
are fresh tmpfs mounts into which the node's inputs (config, data, and for testing the
checkpoint) are unpacked, as a user copies them to a second machine. Both nodes see the same
absolute paths, but no file written by one node is visible to the other: a result collection
through a folder that rank 0 names (mmengine's ``collect_results`` in ``'cpu'`` mode) fails
here as it does on two machines.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
from test_reliability._toy import ToyModel, toy_runner
from tiny_setup import REPO_ROOT, TINY_IMG_SIZE, TINY_NUM_TRAIN, TINY_NUM_VAL, write_tiny_config
from torch.utils.data import default_collate

from fcosdet.apis import inference_detector, init_detector
from fcosdet.datasets.demo_dataset import generate_demo_dataset
from fcosdet.engine import DetRunner
from fcosdet.evaluation.functional.det_results import load_det_results

TIMEOUT_S = 180
NO_FLIP = 'train_dataloader.dataset.pipeline.3.prob=0.0'
SCORE_ALL = 'model.test_cfg.score_thr=0.0'
# node 1: unpack the inputs (fd 3, opened before the mounts hide the archive) into private
# mounts, run the command there, then list the node's files for the test to check
NODE1_SCRIPT = """\
set -e
root=$1; archive=$2; shift 2
exec 3<"$archive"
for dir in $PRIVATE_DIRS; do mkdir -p "$dir"; mount -t tmpfs tmpfs "$dir"; done
tar -x -C "$root" <&3
mkdir -p "${TMPDIR:-/tmp}"
cd "$root"
set +e
"$@"; rc=$?
echo "node 1 files:"; find "$root" -type f | sort
exit $rc
"""


def _unshare_cmd() -> list[str]:
    """``unshare`` for a private mount namespace (a user namespace too when not root)."""
    cmd = ['unshare', '--mount', '--propagation', 'private']
    return cmd if os.geteuid() == 0 else [*cmd, '--map-root-user']


def _require_unshare() -> None:
    """Skip where this machine cannot make a mount namespace (CI runs as root and can)."""
    try:
        probe = subprocess.run([*_unshare_cmd(), 'sh', '-c', 'mount -t tmpfs tmpfs /tmp'],
                               capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip('no `unshare` on this machine (util-linux)')
    if probe.returncode != 0:
        pytest.skip(f'cannot make a private mount namespace here: {probe.stderr.strip()}')


def _private_dirs(root: Path) -> list[str]:
    """Node 1's private mounts: ``/tmp`` (unless the code lives there) and the node's folder."""
    code = [REPO_ROOT.resolve(), Path(sys.prefix).resolve()]
    tmp = Path('/tmp')
    private_tmp = not any(tmp == p or tmp in p.parents for p in code)
    return ([str(tmp)] if private_tmp else []) + [str(root)]


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _env(node_rank: int, port: tuple[str, str], **extra: str) -> dict[str, str]:
    """The environment of a node; ``port``: the variable (PORT or MASTER_PORT) and its value."""
    env = {k: v for k, v in os.environ.items() if k not in ('PORT', 'MASTER_PORT')}
    return dict(env, NNODES='2', NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1',
                OMP_NUM_THREADS='1', PYTHONPATH=str(REPO_ROOT), **{port[0]: port[1]}, **extra)


def _archive(root: Path, names: list[str], path: Path) -> Path:
    """Pack ``names`` (relative to ``root``) into the tar file ``path``."""
    with tarfile.open(path, 'w') as tar:
        for name in names:
            tar.add(root / name, arcname=name)
    return path


def _run_two_nodes(cmd: list[str], root: Path, archive: Path,
                   port_variable: str = 'PORT') -> tuple[str, str]:
    """Run ``cmd`` as node 0 (in ``root``) and as node 1 (private copy of ``archive``).

    Returns:
        The combined stdout and stderr of node 0 and of node 1.
    """
    port = (port_variable, _free_port())
    private = _private_dirs(root)
    tmpdir = {} if private[0] == '/tmp' else dict(TMPDIR=str(root / 'tmp'))
    node1 = subprocess.Popen(
        [*_unshare_cmd(), 'sh', '-c', NODE1_SCRIPT, 'sh', str(root), str(archive), *cmd],
        env=_env(1, port, PRIVATE_DIRS=' '.join(private), **tmpdir),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    node0 = subprocess.Popen(cmd, cwd=root, env=_env(0, port), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    outs = []
    try:
        for proc in (node0, node1):
            outs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in (node0, node1):  # a hung node: its torchrun and workers too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    codes = [node0.returncode, node1.returncode]
    assert codes == [0, 0], f'exit codes {codes}\n' + '\n'.join(
        f'--- node {rank} errors:\n' + '\n'.join(
            line for line in out.splitlines() if '.py: error:' in line)
        for rank, out in enumerate(outs)) + f'\n--- node 1 output:\n{outs[1][-3000:]}'
    return outs[0], outs[1]


def _node1_files(out: str, root: Path) -> set[str]:
    """Files node 1 had at the end (its listing), relative to ``root``."""
    listing = out.split('node 1 files:\n')[-1].splitlines()
    return {str(Path(line).relative_to(root)) for line in listing if line.startswith(str(root))}


def _printed_metrics(out: str) -> dict[str, str]:
    """The ``coco/bbox_*`` values of the last evaluation logged in ``out``, as printed."""
    lines = [line for line in out.splitlines() if 'coco/bbox_mAP:' in line]
    assert lines, out[-3000:]
    return dict(re.findall(r'(coco/bbox_\w+): (\S+)', lines[-1]))


def _self_made_gt(config: str, ckpt: str, data: Path) -> Path:
    """A val annotation file whose boxes are the checkpoint's own top-2 detections per image.

    A model trained for 2 iterations detects nothing of the real boxes (mAP 0 everywhere); scored
    against its own detections its mAP is well above 0 and depends on every image's detections,
    so a rank's missing or repeated images change it.
    """
    ann = json.loads((data / 'annotations' / 'instances_val.json').read_text())
    model = init_detector(config, ckpt, fast_path=False)
    cat_id = {cat['name']: cat['id'] for cat in ann['categories']}
    cat_ids = [cat_id[name] for name in model.dataset_meta['classes']]
    preds = inference_detector(model, [str(data / 'val' / img['file_name'])
                                       for img in ann['images']])
    ann['annotations'] = []
    for img, pred in zip(ann['images'], preds, strict=True):
        for (x1, y1, x2, y2), label in zip(pred.pred_instances.bboxes[:2].tolist(),
                                           pred.pred_instances.labels[:2].tolist()):
            ann['annotations'].append(dict(
                id=len(ann['annotations']) + 1, image_id=img['id'], category_id=cat_ids[label],
                bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    path = data / 'annotations' / 'self_made_val.json'
    path.write_text(json.dumps(ann))
    return path


def test_two_nodes_without_shared_filesystem(tmp_path: Path, tiny_checkpoint: Path):
    """Train 2 iterations + validate, save on rank 0 only, test: mAP as one process.

    Training starts from ``tiny_checkpoint`` (``load_from``: each node has its copy); the test
    scores against the checkpoint's own detections (:func:`_self_made_gt`).
    """
    _require_unshare()
    root = tmp_path / 'node'
    generate_demo_dataset(root / 'data', num_train=TINY_NUM_TRAIN, num_val=TINY_NUM_VAL,
                          img_size=TINY_IMG_SIZE, seed=0)
    config = str(write_tiny_config(root / 'fcos_tiny.py', root / 'data'))
    shutil.copy(tiny_checkpoint, root / 'init.pth')
    inputs = ['data', 'fcos_tiny.py', 'init.pth']

    train = ['bash', str(REPO_ROOT / 'tools' / 'dist_train.sh'), config, '1', '--work-dir',
             str(root / 'work'), '--cfg-options', 'train_cfg.max_epochs=1', NO_FLIP,
             f'load_from={root / "init.pth"}']
    out0, out1 = _run_two_nodes(train, root, _archive(root, inputs, tmp_path / 'train.tar'))
    assert 'gloo process group (rank 1 of 2)' in out1
    assert (root / 'work' / 'epoch_1.pth').is_file()
    assert 'coco/bbox_mAP:' in out0  # validation during training gathered both ranks
    written1 = _node1_files(out1, root) - {'init.pth'}
    assert not [n for n in written1 if n.endswith('.pth') or 'checkpoint' in n]  # rank 0 saves

    ckpt = str(root / 'work' / 'epoch_1.pth')
    options = ['--cfg-options', SCORE_ALL,
               f'test_evaluator.ann_file={_self_made_gt(config, ckpt, root / "data")}']
    single = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / 'tools' / 'test.py'), config, ckpt, '--work-dir',
         str(root / 'single'), '--out', str(root / 'single.pkl'), *options],
        cwd=root, env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO_ROOT)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    test = ['bash', str(REPO_ROOT / 'tools' / 'dist_test.sh'), config, ckpt, '1',
            '--work-dir', str(root / 'dist'), '--out', str(root / 'dist.pkl'), *options]
    try:
        out0, out1 = _run_two_nodes(
            test, root, _archive(root, [*inputs, 'work/epoch_1.pth'], tmp_path / 'test.tar'),
            port_variable='MASTER_PORT')
        single_out = single.communicate(timeout=TIMEOUT_S)[0]
    finally:
        if single.poll() is None:
            single.kill()
            single.communicate()
    assert single.returncode == 0, single_out[-4000:]

    dist_metrics, single_metrics = _printed_metrics(out0), _printed_metrics(single_out)
    assert dist_metrics == single_metrics
    assert 0.2 < float(dist_metrics['coco/bbox_mAP']) < 1  # not 0 == 0, nor all found
    (dist_log,), (single_log,) = (list((root / name).glob('*/*.json'))
                                  for name in ('dist', 'single'))
    dist_map, single_map = (json.loads(log.read_text().splitlines()[-1])['coco/bbox_mAP']
                            for log in (dist_log, single_log))
    assert dist_map == pytest.approx(single_map, abs=1e-6)
    dist_preds, single_preds = load_det_results(str(root / 'dist.pkl')), load_det_results(
        str(root / 'single.pkl'))
    assert [i for i, _ in dist_preds] == list(range(1, TINY_NUM_VAL + 1))  # both ranks, once
    for (_, a), (_, b) in zip(dist_preds, single_preds, strict=True):
        np.testing.assert_allclose(a.bboxes, b.bboxes, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(a.labels, b.labels)
    # rank 1 wrote nothing the gathering relied on, and rank 0 read no folder of parts
    assert 'dist.pkl' not in _node1_files(out1, root)
    assert not list(root.rglob('part_*.pkl')) and not (root / '.dist_test').exists()


def _private_tmpfs(path: Path) -> None:
    """Mount a fresh tmpfs over ``path`` for this process only (a mount namespace of its own)."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x20000, 0x4000, 1 << 18
    if (libc.unshare(clone_newns) or libc.mount(b'none', b'/', None, ms_rec | ms_private, None)
            or libc.mount(b'tmpfs', str(path).encode(), b'tmpfs', 0, None)):
        raise OSError(ctypes.get_errno(), f'cannot mount a private tmpfs over {path}')


def _resume_worker(rank: int, tmp: str, port: str, copy_for_rank1: bool) -> None:
    """One rank of a toy DDP run with ``--resume`` in ``tmp/node/work``; rank 1 sees a private,
    empty ``tmp/node`` (with a copy of the checkpoint if ``copy_for_rank1``)."""
    node = Path(tmp) / 'node'
    if rank == 1:
        _private_tmpfs(node)
        if copy_for_rank1:
            (node / 'work').mkdir()
            shutil.copy(Path(tmp) / 'copy' / 'iter_2.pth', node / 'work')
    os.environ.update(RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
                      MASTER_PORT=port)
    data = [dict(inputs=torch.full((2,), float(i))) for i in range(4)]
    runner = DetRunner(
        model=ToyModel(), work_dir=str(node / 'work'), default_scope='fcosdet',
        launcher='pytorch', env_cfg=dict(dist_cfg=dict(timeout=60)),
        experiment_name=f'rank{rank}_{port}',
        train_dataloader=dict(dataset=data, batch_size=1, collate_fn=default_collate,
                              sampler=dict(type='DefaultSampler', shuffle=False)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        resume=True, log_level='WARNING')
    try:
        runner.train()
        out = dict(iter=runner.iter, weight=runner.model.module.fc.weight.tolist())
    except FileNotFoundError as err:
        out = dict(error=str(err))
    finally:
        torch_dist.destroy_process_group()
    (Path(tmp) / f'out{rank}.json').write_text(json.dumps(out))


def _resume_two_ranks(tmp_path: Path, copy_for_rank1: bool) -> list[dict]:
    torch.multiprocessing.start_processes(
        _resume_worker, args=(str(tmp_path), _free_port(), copy_for_rank1), nprocs=2,
        start_method='fork')
    return [json.loads((tmp_path / f'out{r}.json').read_text()) for r in (0, 1)]


def test_resume_when_only_rank0_has_the_checkpoint(tmp_path: Path):
    """Rank 0 chooses the checkpoint; a rank without its copy stops every rank (it used to start
    from scratch, run 4 iterations against rank 0's 2 and leave rank 0 waiting)."""
    _require_unshare()
    work = tmp_path / 'node' / 'work'
    toy_runner(work, max_iters=2, name='first').train()
    (tmp_path / 'copy').mkdir()
    shutil.copy(work / 'iter_2.pth', tmp_path / 'copy')
    assert _resume_two_ranks(tmp_path, copy_for_rank1=False) == [dict(
        error=f'--resume: {work}/iter_2.pth is missing on rank(s) [1] of 2; machines that '
              'share no folder each need a copy of it at this path')] * 2

    outs = _resume_two_ranks(tmp_path, copy_for_rank1=True)
    assert [out['iter'] for out in outs] == [4, 4]
    assert outs[0]['weight'] == outs[1]['weight']
