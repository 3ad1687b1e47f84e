"""Tests of tools/image_demo.py, tools/analysis_tools/* and tools/model_converters/publish_model."""
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import mmcv
import pytest
import torch
from mmengine.analysis.print_helper import _format_size
from torch import nn

from fcosdet.apis import init_detector

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


def load_tool(relative_path: str):
    """Import a tool script as a module."""
    path = TOOLS / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


analyze_logs = load_tool('analysis_tools/analyze_logs.py')

TRAIN_TIMES = [0.5, 0.7, 0.9, 1.3]  # mean 0.85


def write_log(path: Path) -> Path:
    lines = []
    for i, t in enumerate(TRAIN_TIMES):
        step = 10 * (i + 1)
        lines.append(dict(lr=0.01, time=t, data_time=0.1, loss=2.0 - 0.1 * i,
                          loss_cls=1.0 - 0.1 * i, loss_bbox=0.5 + 0.01 * i,
                          epoch=1 + i // 2, iter=step, step=step))
        if i % 2 == 1:  # a validation line after every epoch; its `time` is not training time
            lines.append({'coco/bbox_mAP': 0.1 * (i + 1), 'time': 5.0, 'step': 1 + i // 2})
    path.write_text('\n'.join(json.dumps(line) for line in lines) + '\n')
    return path


def test_plot_curve_writes_png(tmp_path):
    log = write_log(tmp_path / 'scalars.json')
    out = tmp_path / 'plots' / 'curve.png'
    analyze_logs.main(['plot_curve', str(log), str(log), '--keys', 'loss_cls', 'coco/bbox_mAP',
                       '--out', str(out), '--title', 'run'])
    assert out.read_bytes()[:4] == b'\x89PNG'
    assert mmcv.imread(str(out)).shape == (500, 800, 3)  # figsize 8x5 at 100 dpi

    xs, ys = analyze_logs.extract_curve(analyze_logs.load_json_log(log), 'coco/bbox_mAP', 'l')
    assert xs.tolist() == [1, 2] and ys.tolist() == pytest.approx([0.2, 0.4])
    xs, ys = analyze_logs.extract_curve(analyze_logs.load_json_log(log), 'loss_cls', 'l')
    assert xs.tolist() == [10, 20, 30, 40] and ys.tolist() == pytest.approx([1.0, 0.9, 0.8, 0.7])


def test_cal_train_time_prints_mean(tmp_path, capsys):
    log = write_log(tmp_path / 'scalars.json')
    analyze_logs.main(['cal_train_time', str(log)])
    out = capsys.readouterr().out
    assert 'average iter time: 0.8500 s/iter' in out
    assert 'over 4 logged iterations' in out


def test_analyze_logs_errors(tmp_path):
    log = write_log(tmp_path / 'scalars.json')
    with pytest.raises(KeyError, match='loss_nope.*scalars.json'):
        analyze_logs.main(['plot_curve', str(log), '--keys', 'loss_nope',
                           '--out', str(tmp_path / 'x.png')])
    with pytest.raises(FileNotFoundError, match='absent.json'):
        analyze_logs.main(['cal_train_time', str(tmp_path / 'absent.json')])
    bad = tmp_path / 'bad.json'
    bad.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match='bad.json:2'):
        analyze_logs.load_json_log(bad)
    with pytest.raises(ValueError, match='--legend needs 2'):
        analyze_logs.main(['plot_curve', str(log), '--keys', 'loss_cls', 'loss_bbox',
                           '--legend', 'one', '--out', str(tmp_path / 'x.png')])


def test_publish_model_drops_training_state_and_names_by_hash(tmp_path, capsys):
    publish = load_tool('model_converters/publish_model.py')
    state = dict(w=torch.arange(6.0).view(2, 3))
    torch.save(dict(state_dict=state, meta=dict(epoch=12),
                    optimizer=dict(state={}, param_groups=[]),
                    message_hub=dict(log_scalars={}), param_schedulers=[dict(last_epoch=3)]),
               tmp_path / 'epoch_12.pth')
    publish.main([str(tmp_path / 'epoch_12.pth'), str(tmp_path / 'out' / 'fcos.pth')])

    published = list((tmp_path / 'out').iterdir())
    assert len(published) == 1
    digest = hashlib.sha256(published[0].read_bytes()).hexdigest()
    assert published[0].name == f'fcos-{digest[:8]}.pth'
    assert str(published[0]) in capsys.readouterr().out
    ckpt = torch.load(published[0], weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert torch.equal(ckpt['state_dict']['w'], state['w']) and ckpt['meta'] == dict(epoch=12)

    with pytest.raises(ValueError, match='checkpoint file not found: .*nothing.pth'):
        publish.main([str(tmp_path / 'nothing.pth'), str(tmp_path / 'o.pth')])


def test_publish_model_never_removes_a_file_it_did_not_create(tmp_path, capsys):
    publish = load_tool('model_converters/publish_model.py')
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), optimizer=dict(state={})), ckpt)
    original = ckpt.read_bytes()
    with pytest.raises(ValueError, match=f'out_file {ckpt} is the input checkpoint'):
        publish.main([str(ckpt), str(ckpt)])
    assert ckpt.read_bytes() == original and sorted(tmp_path.iterdir()) == [ckpt]

    unrelated = tmp_path / 'notes.pth'  # an existing file named as the output stays as it was
    unrelated.write_bytes(b'my notes')
    publish.main([str(ckpt), str(unrelated)])
    assert unrelated.read_bytes() == b'my notes'
    (published,) = tmp_path.glob('notes-*.pth')
    assert torch.load(published, weights_only=True)['state_dict']['w'].tolist() == [1.0, 1.0]

    with pytest.raises(FileExistsError, match=f'{published} exists already; .* --overwrite'):
        publish.main([str(ckpt), str(unrelated)])
    published.write_bytes(b'stale')
    publish.main([str(ckpt), str(unrelated), '--overwrite'])
    assert torch.load(published, weights_only=True)['state_dict']['w'].tolist() == [1.0, 1.0]
    # the published file published again under its own name would replace itself: refused
    with pytest.raises(ValueError, match=f'would replace the input checkpoint {published}'):
        publish.main([str(published), str(unrelated), '--overwrite'])
    assert ckpt.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['epoch_1.pth', 'notes.pth', published.name])  # no temporary file left behind


def test_get_flops_counts(tiny_config, capsys):
    get_flops = load_tool('analysis_tools/get_flops.py')
    conv = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    info = get_flops.model_complexity(conv, 8, 8)
    assert info['flops'] == 4 * 3 * 3 * 3 * 8 * 8  # one multiply-add per weight and pixel
    assert info['params'] == 4 * 3 * 3 * 3 + 4
    assert get_flops.padded_shape(800, 1333, 32) == (800, 1344)
    with pytest.raises(ValueError, match='shape'):
        get_flops.padded_shape(0, 10, 32)

    get_flops.main([tiny_config, '--shape', '60', '90'])
    out = capsys.readouterr().out
    assert 'Input shape: (1, 3, 64, 96)' in out
    num_params = sum(p.numel() for p in init_detector(tiny_config).parameters())
    assert f'Params: {_format_size(num_params)}\n' in out
    assert 'Flops: ' in out
    assert re.search(r'\|\s+bbox_head\s+\|', out)  # the per-module table is printed


def test_image_demo_writes_png(tiny_config, tiny_data_root, tmp_path):
    image_demo = load_tool('image_demo.py')
    img = sorted((Path(tiny_data_root) / 'val').glob('*.png'))[0]
    model = init_detector(tiny_config)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=model.dataset_meta)),
               ckpt)
    out = tmp_path / 'demo' / 'result.png'
    image_demo.main([str(img), tiny_config, str(ckpt), '--out-file', str(out),
                     '--score-thr', '0.0'])
    assert mmcv.imread(str(out)).shape == mmcv.imread(str(img)).shape  # predictions panel only

    with pytest.raises(FileNotFoundError, match='missing.png'):
        image_demo.main([str(tmp_path / 'missing.png'), tiny_config, str(ckpt)])


def test_browse_dataset_writes_each_sample(tiny_config, tmp_path):
    browse = load_tool('analysis_tools/browse_dataset.py')
    out_dir = tmp_path / 'browse'
    browse.main([tiny_config, '--output-dir', str(out_dir), '--not-show', '--max-samples', '3',
                 '--cfg-options', 'train_pipeline.3.prob=0.0'])
    written = sorted(out_dir.glob('*.png'))
    assert len(written) == 3 and written[0].name.startswith('000000_')
    # Tiny-config images are resized to fit 128x96, drawn with their gt boxes (one panel).
    h, w = mmcv.imread(str(written[0])).shape[:2]
    assert max(h, w) <= 128 and min(h, w) <= 96
    with pytest.raises(ValueError, match='--not-show'):
        browse.main([tiny_config, '--not-show'])
