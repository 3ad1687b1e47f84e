"""Every shipped ``configs/*/*_demo.py`` as a user runs it: ``tools/train.py`` until past its
precision probe (dtype='auto' as shipped), then ``tools/test.py``, ``tools/image_demo.py``,
``tools/infer.py`` and ``init_detector`` with their defaults (fast path on).

``--cfg-options`` only shrink the data (4 generated images of 64x80, batch 2, no workers) and
the schedule (7 epochs = 14 iterations: the 12 probe steps and 2 in the chosen precision);
model, precision and fast path stay as shipped. One checkpoint per config, shared by the tests
of this module (the fixture is module-scoped and parametrized, so pytest trains each config
once). The tools run in this process (their ``main``), as their command lines would.
"""
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import mmcv
import pytest
import torch
from torch import nn

from fcosdet.apis import inference_detector, init_detector
from fcosdet.datasets.demo_dataset import generate_demo_dataset
from fcosdet.engine.optimizers import STATE_KEY

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIGS = sorted(REPO.glob('configs/*/*_demo.py'))
DEMO_CFG = dict(num_train=4, num_val=2, img_size=(64, 80), seed=0)
EPOCHS = 7  # 2 iterations each


def _load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'{name}_tool', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRAIN, TEST, IMAGE_DEMO, INFER = (_load_tool(name)
                                  for name in ('train', 'test', 'image_demo', 'infer'))


def data_options(data_root: Path) -> list[str]:
    """``--cfg-options`` pointing every loader and evaluator at the small generated set."""
    height, width = DEMO_CFG['img_size']
    options = []
    for loader, resize in (('train_dataloader', 2), ('val_dataloader', 1),
                           ('test_dataloader', 1)):
        options += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False',
                    f'{loader}.dataset.data_root={data_root}/',
                    f'{loader}.dataset.pipeline.{resize}.scale=({width},{height})',
                    *(f'{loader}.dataset.demo_cfg.{key}={value}'
                      for key, value in DEMO_CFG.items() if key != 'img_size'),
                    f'{loader}.dataset.demo_cfg.img_size=({height},{width})']
    ann_file = f'{data_root}/annotations/instances_val.json'
    return options + [f'val_evaluator.ann_file={ann_file}', f'test_evaluator.ann_file={ann_file}']


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('demo_configs') / 'demo'
    return generate_demo_dataset(root, **DEMO_CFG)


@pytest.fixture(scope='module', params=DEMO_CONFIGS, ids=lambda path: path.stem)
def trained(request: pytest.FixtureRequest, demo_root: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the config with tools/train.py; its config path, work dir and last checkpoint."""
    config = str(request.param.relative_to(REPO))
    work_dir = tmp_path_factory.mktemp(request.param.stem)
    schedule = [f'train_cfg.max_epochs={EPOCHS}', 'train_dataloader.batch_size=2',
                f'default_hooks.checkpoint.interval={EPOCHS}',
                'default_hooks.visualization.draw=False']
    TRAIN.main([config, '--work-dir', str(work_dir), '--cfg-options',
                *data_options(demo_root), *schedule])
    return dict(config=config, work_dir=work_dir, checkpoint=work_dir / f'epoch_{EPOCHS}.pth',
                image=sorted((demo_root / 'val').iterdir())[0])


def test_train_passes_the_probe_and_saves_its_decision(trained: dict):
    (log,) = trained['work_dir'].glob('*/*.log')
    lines = [line for line in log.read_text().splitlines() if 'CPUAmpOptimWrapper:' in line]
    assert len(lines) == 1, lines
    match = re.search(r'training in (float32|bfloat16) \(probe: median step ([\d.]+) s in '
                      r'float32, ([\d.]+) s in bfloat16, 5 interleaved', lines[0])
    assert match, lines[0]
    checkpoint = torch.load(trained['checkpoint'], weights_only=True)
    record = checkpoint['optimizer'][STATE_KEY]
    assert record['precision'] == match[1] and record['source'] == 'probe'
    assert f'{record["float32_s"]:.4f}' == match[2] and f'{record["bfloat16_s"]:.4f}' == match[3]
    # one train log line per epoch (each after 2 steps): all 7 losses finite. (Read from the
    # text log: in one process the tools share mmengine's visualizer, so scalars.json files
    # after the first run go to that run's folder.)
    losses = [float(m[1]) for m in re.finditer(r'Epoch\(train\).* loss: (\S+)', log.read_text())]
    assert len(losses) == EPOCHS and all(torch.isfinite(torch.tensor(losses)))


def test_test_tool_evaluates_with_the_fast_path(trained: dict, demo_root: Path):
    work_dir = trained['work_dir'] / 'test'
    TEST.main([trained['config'], str(trained['checkpoint']), '--work-dir', str(work_dir),
               '--cfg-options', *data_options(demo_root)])
    (log,) = work_dir.glob('*/*.log')
    text = log.read_text()
    assert "inference fast paths enabled: ['channels_last', 'fuse_bn']" in text
    (result,) = work_dir.glob('*/*.json')
    metrics = json.loads(result.read_text())
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0


def test_image_demo_draws(trained: dict, tmp_path: Path):
    out_file = tmp_path / 'drawn.png'
    IMAGE_DEMO.main([str(trained['image']), trained['config'], str(trained['checkpoint']),
                     '--out-file', str(out_file)])
    assert mmcv.imread(out_file).shape == mmcv.imread(trained['image']).shape


def test_infer_writes_the_predictions_of_the_eager_model(trained: dict, tmp_path: Path):
    INFER.main([str(trained['image']), trained['config'], str(trained['checkpoint']),
                '--out-dir', str(tmp_path)])
    (pred_file,) = (tmp_path / 'preds').glob('*.json')
    pred = json.loads(pred_file.read_text())
    eager = init_detector(trained['config'], str(trained['checkpoint']), fast_path=False)
    expected = inference_detector(eager, str(trained['image'])).pred_instances
    # same detections up to float rounding (the order of near-equal scores may differ)
    assert sorted(pred['labels']) == sorted(expected.labels.tolist())
    torch.testing.assert_close(torch.tensor(pred['scores']).reshape(-1).sort().values,
                               expected.scores.sort().values, atol=1e-4, rtol=1e-4)


def test_init_detector_fast_path_folds_and_matches_eager(trained: dict):
    fast = init_detector(trained['config'], str(trained['checkpoint']))
    eager = init_detector(trained['config'], str(trained['checkpoint']), fast_path=False)
    bn_count = [sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
                for model in (fast, eager)]
    assert 0 <= bn_count[0] < bn_count[1]  # folded (the DCN config keeps its DCN -> BN pairs)
    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8, generator=torch.Generator()
                          .manual_seed(0))
    with torch.no_grad():
        outputs = [model._forward(model.data_preprocessor(dict(inputs=[image]))['inputs'])
                   for model in (fast, eager)]
    flat = [[t for level in out for t in level] for out in outputs]
    for actual, expected in zip(*flat):
        torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)
