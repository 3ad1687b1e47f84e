"""tools/train.py and tools/test.py end to end on the tiny dataset (few subprocess runs, each
checked for many things)."""
import json
from pathlib import Path

import pytest
import torch

from fcosdet.utils.safe_pickle import load_results_pickle

from ._cli_utils import assert_ok, free_port, run_tool, scalar_logs

# deterministic data: no random flip (the flip draws from the global RNG, which resuming
# cannot restore)
NO_FLIP = 'train_dataloader.dataset.pipeline.3.prob=0.0'
KEEP_ONE = 'default_hooks.checkpoint.max_keep_ckpts=1'
SCORE_ALL = 'model.test_cfg.score_thr=0.0'


@pytest.fixture(scope='module')
def full_run(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 epochs (8 iterations) in one go."""
    work_dir = tmp_path_factory.mktemp('full')
    assert_ok(run_tool(['tools/train.py', tiny_config, '--work-dir', str(work_dir),
                        '--cfg-options', NO_FLIP, KEEP_ONE]))
    return work_dir


def _state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_work_dir_contents_and_overrides(full_run: Path, tiny_config: str):
    names = {p.name for p in full_run.iterdir()}
    assert {'epoch_2.pth', 'last_checkpoint', Path(tiny_config).name} <= names
    assert 'epoch_1.pth' not in names  # --cfg-options max_keep_ckpts=1 took effect
    assert len([n for n in names if n.startswith('best_coco_bbox_mAP_epoch_')]) == 1
    assert not [n for n in names if n.endswith('.tmp')]
    assert (full_run / 'last_checkpoint').read_text() == 'epoch_2.pth'  # relative, atomic
    dumped = (full_run / Path(tiny_config).name).read_text()
    assert 'max_keep_ckpts=1' in dumped and 'prob=0.0' in dumped


def test_log_json_keys(full_run: Path):
    logs = scalar_logs(full_run)
    train = [x for x in logs if 'loss' in x]
    val = [x for x in logs if 'coco/bbox_mAP' in x]
    assert [x['iter'] for x in train] == list(range(1, 9))
    for row in train:
        assert {'loss', 'loss_cls', 'loss_bbox', 'loss_centerness', 'lr', 'grad_norm',
                'epoch'} <= set(row)
        assert row['loss'] == pytest.approx(
            row['loss_cls'] + row['loss_bbox'] + row['loss_centerness'], rel=1e-3)
    # linear warm-up from lr/3 over 4 iterations, then x0.1 after epoch 1
    assert train[0]['lr'] == pytest.approx(0.01 / 3)
    assert train[3]['lr'] == pytest.approx(0.01)
    assert train[4]['lr'] == pytest.approx(0.001)
    assert len(val) == 2
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'} <= set(val[0])


def test_checkpoint_loadable(full_run: Path):
    ckpt = _state(full_run / 'epoch_2.pth')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 8
    assert ckpt['meta']['dataset_meta']['classes'] == ('ellipse', 'rectangle', 'triangle',
                                                       'cross')
    assert ckpt['state_dict']['bbox_head.conv_cls.weight'].shape == (4, 32, 3, 3)
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)


def test_resume_matches_uninterrupted_training(full_run: Path, tiny_config: str,
                                               tmp_path: Path):
    first = run_tool(['tools/train.py', tiny_config, '--work-dir', str(tmp_path),
                      '--cfg-options', NO_FLIP, 'train_cfg.max_epochs=1'])
    assert_ok(first)
    assert_ok(run_tool(['tools/train.py', tiny_config, '--work-dir', str(tmp_path),
                        '--resume', '--cfg-options', NO_FLIP]))
    resumed = _state(tmp_path / 'epoch_2.pth')
    straight = _state(full_run / 'epoch_2.pth')
    assert resumed['meta']['iter'] == 8
    for key, value in straight['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=1e-4, atol=1e-5,
                                   msg=key)
    momentum = [s['momentum_buffer'] for s in straight['optimizer']['state'].values()]
    momentum_resumed = [s['momentum_buffer'] for s in resumed['optimizer']['state'].values()]
    for a, b in zip(momentum, momentum_resumed, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_nan_loss_stops_training_and_keeps_last_checkpoint(tiny_config: str, tmp_path: Path):
    config = tmp_path / 'nan.py'
    config.write_text(f"_base_ = '{tiny_config}'\n"
                      "custom_imports = dict(imports=['fcosdet_test_probes'])\n"
                      "custom_hooks = [dict(type='CheckInvalidLossHook'),\n"
                      "                dict(type='NaNInjectionHook', at_iter=5)]\n"
                      "train_cfg = dict(val_interval=10)\n")  # no validation: faster
    result = run_tool(['tools/train.py', str(config), '--work-dir', str(tmp_path / 'wd')])
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith('train.py: error: non-finite loss at iteration 6 (epoch 2)')
    assert 'loss_bbox=nan' in last_line
    saved = sorted(p.name for p in (tmp_path / 'wd').glob('epoch_*.pth'))
    assert saved == ['epoch_1.pth']
    weights = _state(tmp_path / 'wd' / 'epoch_1.pth')['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values())


@pytest.fixture(scope='module')
def single_test(full_run: Path, tiny_config: str,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/test.py on the final checkpoint: predictions dumped and drawn."""
    work_dir = tmp_path_factory.mktemp('single_test')
    assert_ok(run_tool(['tools/test.py', tiny_config, str(full_run / 'epoch_2.pth'),
                        '--work-dir', str(work_dir), '--out', str(work_dir / 'preds.pkl'),
                        '--show-dir', 'drawn', '--cfg-options', SCORE_ALL]))
    return work_dir


def _load_preds(path: Path) -> list[dict]:
    """The dump read by the analysis tools' restricted unpickler (so the format stays readable)."""
    return load_results_pickle(str(path))


def test_test_tool_dumps_and_draws(single_test: Path):
    preds = _load_preds(single_test / 'preds.pkl')
    assert [p['img_id'] for p in preds] == [1, 2, 3, 4, 5]
    for p in preds:
        boxes = p['pred_instances']['bboxes']
        assert boxes.shape[0] == 20  # score_thr 0 keeps max_per_img boxes
        h, w = p['ori_shape']
        assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
    drawn = list(single_test.glob('*/drawn/*.png'))
    assert len(drawn) == 5
    logs = scalar_logs(single_test, '*/*.json')
    assert 'coco/bbox_mAP' in logs[-1]


def test_dist_test_scores_every_image_once(full_run: Path, single_test: Path, tiny_config: str,
                                           tmp_path: Path):
    """2 gloo processes; 5 val images, so the sampler pads one rank with a repeated image."""
    out = tmp_path / 'preds.pkl'
    result = run_tool(['tools/dist_test.sh', tiny_config, str(full_run / 'epoch_2.pth'), '2',
                       '--work-dir', str(tmp_path / 'wd'), '--out', str(out),
                       '--cfg-options', SCORE_ALL], env=dict(PORT=free_port()))
    assert_ok(result)
    dist_preds = _load_preds(out)
    single_preds = _load_preds(single_test / 'preds.pkl')
    assert [p['img_id'] for p in dist_preds] == [1, 2, 3, 4, 5]
    for a, b in zip(dist_preds, single_preds, strict=True):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(a['pred_instances'][key], b['pred_instances'][key],
                                       rtol=1e-4, atol=1e-3)
    single_map = scalar_logs(single_test, '*/*.json')[-1]['coco/bbox_mAP']
    assert scalar_logs(tmp_path / 'wd', '*/*.json')[-1]['coco/bbox_mAP'] == single_map


def test_dist_train_averages_num_pos_over_ranks(tiny_config: str, tmp_path: Path):
    config = tmp_path / 'probed.py'
    config.write_text(f"_base_ = '{tiny_config}'\n"
                      "custom_imports = dict(imports=['fcosdet_test_probes'])\n")
    probe_dir = tmp_path / 'probe'
    probe_dir.mkdir()
    result = run_tool(['tools/dist_train.sh', str(config), '2', '--work-dir',
                       str(tmp_path / 'wd'), '--cfg-options', 'train_cfg.max_epochs=1'],
                      env=dict(PORT=free_port(), PROBE_DIR=str(probe_dir)))
    assert_ok(result)
    assert 'gloo process group (rank 1 of 2)' in result.stdout + result.stderr
    ranks = [[json.loads(line) for line in (probe_dir / f'rank{r}.jsonl').read_text()
              .splitlines()] for r in (0, 1)]
    # 8 images / 2 ranks / batch 2 = 2 iterations, two cross-rank means each (num_pos and
    # the centre-ness normaliser)
    assert len(ranks[0]) == len(ranks[1]) == 4
    for (local0, out0), (local1, out1) in zip(*ranks, strict=True):
        assert out0 == pytest.approx((local0 + local1) / 2)
        assert out1 == pytest.approx(out0)
    assert any(r0[0] != r1[0] for r0, r1 in zip(*ranks))  # ranks saw different images
    ckpt = _state(tmp_path / 'wd' / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == 2
    logs = scalar_logs(tmp_path / 'wd')
    assert [x['iter'] for x in logs if 'loss' in x] == [1, 2]
    assert 'coco/bbox_mAP' in logs[-1]
