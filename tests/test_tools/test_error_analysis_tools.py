"""Tests of tools/analysis_tools/{confusion_matrix,analyze_results,eval_metric}.py on a tiny
hand-made dataset and results pickle (the format of ``tools/test.py --out``)."""
import contextlib
import importlib.util
import io
import json
from pathlib import Path

import cv2
import mmcv
import mmengine
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcosdet.utils.cli import CLIError

from ._cli_utils import run_tool

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'analysis_tools'
CLASSES = ('cat', 'dog', 'bird')
CAT_IDS = (4, 7, 9)
# image a: cat gt G1, G2, crowd cat G4, dog G3; image b: one dog; image c: no gt
GT = {1: [([0, 0, 10, 10], 0, 0), ([20, 0, 30, 10], 0, 0), ([40, 0, 50, 10], 0, 1),
          ([0, 20, 10, 30], 1, 0)],
      2: [([0, 0, 20, 20], 1, 0)],
      3: []}
DETS = {1: [([0, 0, 10, 10], .9, 0), ([0, 0, 10, 10], .8, 0), ([40, 0, 50, 10], .7, 0),
            ([20, 0, 30, 7.8], .6, 0), ([60, 60, 70, 70], .95, 1), ([0, 20, 10, 30], .3, 1),
            ([0, 0, 5, 5], .99, 2)],
        2: [([0, 0, 20, 10], .5, 1), ([0, 0, 20, 20], .4, 1)],
        3: [([0, 0, 5, 5], .95, 0)]}
NAMES = {1: 'a', 2: 'b', 3: 'c'}


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def setup(tmp_path_factory) -> dict:
    """Images, annotation file, config and results pickle in a temporary folder."""
    root = tmp_path_factory.mktemp('analysis')
    images, anns = [], []
    for img_id, boxes in GT.items():
        images.append(dict(id=img_id, file_name=f'{NAMES[img_id]}.png', width=80, height=72))
        cv2.imwrite(str(root / f'{NAMES[img_id]}.png'), np.full((72, 80, 3), 90, np.uint8))
        for (x1, y1, x2, y2), label, crowd in boxes:
            anns.append(dict(id=len(anns) + 1, image_id=img_id, category_id=CAT_IDS[label],
                             bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                             iscrowd=crowd))
    cats = [dict(id=i, name=n) for i, n in zip(CAT_IDS, CLASSES)]
    (root / 'gt.json').write_text(json.dumps(dict(images=images, annotations=anns,
                                                  categories=cats)))
    config = root / 'config.py'
    config.write_text(
        "default_scope = 'fcosdet'\n"
        f"test_dataloader = dict(dataset=dict(type='CocoDataset', data_root='{root}/', "
        f"ann_file='gt.json', data_prefix=dict(img=''), metainfo=dict(classes={CLASSES}), "
        "test_mode=True, pipeline=[]))\n"
        f"test_evaluator = dict(type='CocoMetric', ann_file='{root}/gt.json')\n")
    results = []
    for img_id, dets in DETS.items():
        boxes, scores, labels = zip(*dets)
        results.append(dict(img_id=img_id, ori_shape=(72, 80), img_path=str(root / 'x.png'),
                            pred_instances=dict(bboxes=torch.tensor(boxes),
                                                scores=torch.tensor(scores),
                                                labels=torch.tensor(labels))))
    mmengine.dump(results, root / 'results.pkl')
    return dict(root=root, config=str(config), pkl=str(root / 'results.pkl'))


def test_confusion_matrix_tool(setup, capsys):
    out_dir = setup['root'] / 'cm'
    load_tool('confusion_matrix').main([setup['config'], setup['pkl'], str(out_dir)])
    lines = capsys.readouterr().out.splitlines()
    # by hand (score >= 0.3, IoU >= 0.5): a, b, e and f match their own gt boxes; the
    # crowd-box detection counts nowhere; the dog at (60, 60) and the bird (IoU 0.25 with G1)
    # are background false positives; image b's two dogs both count; image c's cat is a
    # false positive
    table = lines[lines.index(next(x for x in lines if x.startswith('gt \\ pred'))):][:5]
    assert [row.split() for row in table[1:]] == [
        ['cat', '3', '0', '0', '0'], ['dog', '0', '3', '0', '0'], ['bird', '0', '0', '0', '0'],
        ['background', '1', '1', '1', '0']]
    image = mmcv.imread(str(out_dir / 'confusion_matrix.png'))
    assert image.ndim == 3 and min(image.shape[:2]) >= 300

    load_tool('confusion_matrix').main([setup['config'], setup['pkl'], str(out_dir),
                                        '--tp-iou-thr', '0.6', '--score-thr', '0.35'])
    lines = capsys.readouterr().out.splitlines()
    # image b's IoU-0.5 dog becomes a background false positive; f (score 0.3) is dropped,
    # so the dog gt G3 is missed
    assert ['dog', '0', '1', '0', '1'] in [x.split() for x in lines]
    assert ['background', '1', '2', '1', '0'] in [x.split() for x in lines]

    load_tool('confusion_matrix').main([setup['config'], setup['pkl'], str(out_dir),
                                        '--nms-iou-thr', '0.4'])
    rows = [x.split() for x in capsys.readouterr().out.splitlines()]
    # per-class NMS removes b (a's duplicate) and image b's second dog (IoU 0.5 > 0.4)
    assert ['cat', '2', '0', '0', '0'] in rows and ['dog', '0', '2', '0', '0'] in rows
    assert ['background', '1', '1', '1', '0'] in rows


def test_analyze_results_tool(setup, capsys):
    show_dir = setup['root'] / 'show'
    load_tool('analyze_results').main([setup['config'], setup['pkl'], str(show_dir),
                                       '--topk', '1'])
    # by hand: image a 0.600 (tests/test_evaluation/test_functional/test_image_ap.py),
    # image b: IoU 0.5 -> AP 1, IoU > 0.5 -> AP 0.5, mean 0.55; image c has no gt
    assert sorted(p.name for p in (show_dir / 'good').iterdir()) == ['a_0.600.png']
    assert sorted(p.name for p in (show_dir / 'bad').iterdir()) == ['b_0.550.png']
    drawn = mmcv.imread(str(show_dir / 'good' / 'a_0.600.png'))
    assert drawn.shape == (72, 160, 3)  # gt | predictions
    assert '2 of 3 images have gt boxes; their mean per-image mAP is 0.575' in (
        capsys.readouterr().out)


def test_eval_metric_tool_and_pr_curve(setup, capsys):
    pr_file = setup['root'] / 'pr' / 'pr.png'
    tool = load_tool('eval_metric')
    tool.main([setup['config'], setup['pkl'], '--pr-curve', str(pr_file)])
    out = capsys.readouterr().out
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(setup['root'] / 'gt.json'))
        dets = [dict(image_id=i, category_id=CAT_IDS[c], score=s,
                     bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]])
                for i, ds in DETS.items() for b, s, c in ds]
        ev = COCOeval(coco, coco.loadRes(dets), 'bbox')
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert f'coco/bbox_mAP: {ev.stats[0]:.4f}' in out
    assert f'coco/bbox_mAP_50: {ev.stats[1]:.4f}' in out
    assert mmcv.imread(str(pr_file)).shape[2] == 3
    tool.main([setup['config'], setup['pkl'], '--cfg-options', 'test_evaluator.backend=hotcoco'])
    assert f'coco/bbox_mAP: {ev.stats[0]:.4f}' in capsys.readouterr().out


def test_bad_inputs(setup, tmp_path):
    with pytest.raises(CLIError, match='prediction file not found: .*none.pkl'):
        load_tool('confusion_matrix').main([setup['config'], str(tmp_path / 'none.pkl'),
                                            str(tmp_path)])
    other = mmengine.load(setup['pkl'])
    other[0]['img_id'] = 99
    mmengine.dump(other, tmp_path / 'other.pkl')
    with pytest.raises(CLIError, match=r'image ids \[99\] of the results are not in the '):
        load_tool('analyze_results').main([setup['config'], str(tmp_path / 'other.pkl'),
                                           str(tmp_path)])
    other = mmengine.load(setup['pkl'])
    other[1]['pred_instances']['labels'][0] = 3
    mmengine.dump(other, tmp_path / 'label.pkl')
    with pytest.raises(CLIError, match='label.pkl: a predicted label is >= the 3 classes'):
        load_tool('confusion_matrix').main([setup['config'], str(tmp_path / 'label.pkl'),
                                            str(tmp_path)])
    mmengine.dump({'not': 'a list'}, tmp_path / 'dict.pkl')
    with pytest.raises(CLIError, match='dict.pkl: expected a list'):
        load_tool('confusion_matrix').main([setup['config'], str(tmp_path / 'dict.pkl'),
                                            str(tmp_path)])
    with pytest.raises(CLIError, match='--tp-iou-thr must be in'):
        load_tool('confusion_matrix').main([setup['config'], setup['pkl'], str(tmp_path),
                                            '--tp-iou-thr', '1.5'])
    # as a command: one line on stderr, exit status 1
    result = run_tool(['tools/analysis_tools/analyze_results.py', setup['config'],
                       str(tmp_path / 'none.pkl'), str(tmp_path)])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f'analyze_results.py: error: prediction file not found: {tmp_path / "none.pkl"}']


class _RunsCode:
    """Unpickles as ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os
        return (os.system, (self.command,))


@pytest.mark.parametrize('tool', ['eval_metric', 'analyze_results', 'confusion_matrix'])
def test_results_pickle_that_runs_code_is_refused(setup, tmp_path, tool):
    """A results file whose unpickling would create a file: refused in one line, no file."""
    marker = tmp_path / 'created_by_pickle'
    results = mmengine.load(setup['pkl'])
    results[0]['pred_instances']['scores'] = _RunsCode(f'touch {marker}')
    mmengine.dump(results, tmp_path / 'evil.pkl')
    extra = [] if tool == 'eval_metric' else [str(tmp_path / 'out')]
    with pytest.raises(CLIError) as info:
        load_tool(tool).main([setup['config'], str(tmp_path / 'evil.pkl'), *extra])
    assert not marker.exists()
    message = str(info.value)
    assert '\n' not in message
    assert message.startswith(f'{tmp_path / "evil.pkl"}: cannot read this results pickle')
    assert "'posix.system'" in message or "'nt.system'" in message
