"""Configs equal MMDetection 3.3's config of the same name, key by key.

``shared/reference/mmdet_configs/<name>.json`` (beside the repository, as for
``tests/test_models/test_state_dict.py``) holds MMDetection 3.3.0's resolved values of its config
``<name>.py``: ``model`` (with ``train_cfg``/``test_cfg``), ``train_pipeline``,
``test_pipeline``, the dataloaders' ``batch_size``/``sampler``/``batch_sampler``/dataset type/
``filter_cfg``, ``val_evaluator``, ``optim_wrapper``, ``param_scheduler``, ``train_cfg`` and
``auto_scale_lr``. Every ``configs/**/<name>.py`` with such a file is compared with it. A
deliberate difference is listed in ``ALLOWED`` with its reason (and in the README of the
config's folder); a listed difference that no longer exists fails too, so the list stays true.
"""
import json
from pathlib import Path

import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]
# CI clones the repository with shared/ beside it.
REFERENCE = REPO.parent / 'shared' / 'reference' / 'mmdet_configs'
CONFIGS = {p.stem: p for p in sorted((REPO / 'configs').rglob('*.py'))
           if (REFERENCE / f'{p.stem}.json').is_file()}

# (config name, dotted key) -> why fcosdet's value differs from MMDetection's
ALLOWED: dict[tuple[str, str], str] = {}
# reference configs that have no fcosdet config yet -> why
NOT_YET: dict[str, str] = {}


def plain(value: object) -> object:
    """Dicts and lists all the way down (tuples become lists, as in JSON)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def innermost(dataset: dict) -> dict:
    """The dataset inside wrappers such as ``RepeatDataset``."""
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def comparable(cfg: Config) -> dict:
    """The values of ``cfg`` that the reference files hold, in their layout."""
    values = plain(cfg.to_dict())
    out = dict(model=values['model'],
               train_pipeline=innermost(values['train_dataloader']['dataset'])['pipeline'],
               test_pipeline=innermost(values['val_dataloader']['dataset'])['pipeline'])
    for split in ('train_dataloader', 'val_dataloader'):
        loader = values[split]
        out[split] = dict(batch_size=loader['batch_size'], sampler=loader.get('sampler'),
                          batch_sampler=loader.get('batch_sampler'),
                          dataset_type=loader['dataset']['type'],
                          filter_cfg=loader['dataset'].get('filter_cfg'))
    for key in ('val_evaluator', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'auto_scale_lr'):
        out[key] = values.get(key)
    return out


def differences(ours: object, theirs: object, path: str = '') -> dict[str, tuple]:
    """``{dotted key: (ours, theirs)}`` of every leaf that differs (``'<missing>'`` if absent)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = {}
        for key in sorted(set(ours) | set(theirs), key=str):
            sub = f'{path}.{key}' if path else str(key)
            if key not in ours or key not in theirs:
                found[sub] = (ours.get(key, '<missing>'), theirs.get(key, '<missing>'))
            else:
                found.update(differences(ours[key], theirs[key], sub))
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        found = {}
        for index, (a, b) in enumerate(zip(ours, theirs)):
            found.update(differences(a, b, f'{path}.{index}'))
        return found
    same = ours == theirs and isinstance(ours, bool) == isinstance(theirs, bool)
    return {} if same else {path: (ours, theirs)}


def test_differences_are_found_by_key():
    ours = dict(a=dict(b=[1, dict(c=0.5)], d=True, e=(1, 2)), f=1.0)
    theirs = dict(a=dict(b=[1, dict(c=0.25)], d=1, e=[1, 2], g=None), f=1)
    assert differences(plain(ours), theirs) == {
        'a.b.1.c': (0.5, 0.25), 'a.d': (True, 1), 'a.g': ('<missing>', None)}


def test_the_shipped_configs_are_compared():
    assert REFERENCE.is_dir(), (f'{REFERENCE} is missing; the repository must be checked out '
                                'with shared/ beside it')
    assert 'fcos_r50-caffe_fpn_gn-head_1x_coco' in CONFIGS
    assert 'fcos_x101-64x4d_fpn_gn-head_ms-640-800-2x_coco' in CONFIGS
    missing = {path.stem for path in REFERENCE.glob('*.json')} - set(CONFIGS)
    assert missing <= set(NOT_YET), sorted(missing - set(NOT_YET))


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_config_equals_mmdetection(name: str):
    reference = json.loads((REFERENCE / f'{name}.json').read_text())
    found = differences(comparable(Config.fromfile(CONFIGS[name])), reference)
    allowed = {key for (config, key) in ALLOWED if config == name}
    unexpected = {key: pair for key, pair in found.items() if key not in allowed}
    assert not unexpected, '\n'.join(f'{name}: {key}: fcosdet {a!r}, MMDetection {b!r}'
                                     for key, (a, b) in unexpected.items())
    stale = allowed - set(found)
    assert not stale, f'{name}: {sorted(stale)} no longer differ: remove them from ALLOWED'


def test_readme_lists_every_allowed_difference():
    for (config, key) in ALLOWED:
        rows = [line for line in (CONFIGS[config].parent / 'README.md').read_text().splitlines()
                if line.startswith('|') and f'`{key}`' in line]
        assert any(config in row for row in rows), (config, key)
