"""CPUAmpOptimWrapper(dtype='auto'): a fair probe (warm-up and data loading excluded, the two
precisions interleaved, more than three samples each), one log line, the decision saved in the
checkpoint (readable with weights_only=True) and kept on resume."""
import importlib.util
import logging
import statistics
import sys
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.logging import MMLogger
from torch import nn

from fcosdet.engine.optimizers import STATE_KEY, CPUAmpOptimWrapper, PrecisionProbe

REPO = Path(__file__).resolve().parents[2]
F, B = False, True  # float32 / bfloat16 steps
# probe_iters=4: one untimed step of each, then 4 timed of each in ABBA order
PROBE_SCHEDULE = [F, B, F, B, B, F, F, B, B, F]


class Recorder(logging.Handler):
    """Collects the messages logged through the current MMLogger."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines() -> list[str]:
    logger = MMLogger.get_instance(f'precision_probe_{uuid.uuid4().hex}')  # the current one
    recorder = Recorder()
    logger.addHandler(recorder)
    yield recorder.lines
    logger.removeHandler(recorder)


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    """A fake clock read by the wrapper (only by it: mmengine's own timers are untouched)."""
    now = [0.0]
    monkeypatch.setattr(sys.modules[CPUAmpOptimWrapper.__module__], '_clock', lambda: now[0])
    return now


def make_wrapper(model: nn.Module, **kwargs) -> CPUAmpOptimWrapper:
    return CPUAmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.01), **kwargs)


def train(wrapper: CPUAmpOptimWrapper, model: nn.Module, clock: list[float], steps: int,
          compute, loading=lambda previous_bf16: 0.0) -> list[bool]:
    """``steps`` iterations as mmengine's ``train_step`` runs them: data loading (the clock
    advances by ``loading(previous step in bf16)``), forward under ``optim_context``, then
    ``update_params``; the step's compute takes ``compute(step, bf16)`` seconds.
    Returns whether each forward ran in bfloat16."""
    modes = [False]
    for step in range(steps):
        clock[0] += loading(modes[-1])
        with wrapper.optim_context(model):
            out = model(torch.ones(1, 2))
        bf16 = out.dtype == torch.bfloat16
        clock[0] += compute(step, bf16)
        wrapper.update_params(out.float().sum())
        modes.append(bf16)
    return modes[1:]


def test_schedule_interleaves_and_times_compute_only(clock, log_lines):
    model = nn.Linear(2, 2)
    wrapper = make_wrapper(model, dtype='auto', probe_iters=4)
    fp32_times = iter([30.0, 1.0, 1.3, 0.9, 1.1])  # the first one is the warm-up
    bf16_times = iter([50.0, 0.8, 0.7, 0.6, 0.9])

    def compute(step, bf16):
        return next(bf16_times if bf16 else fp32_times, 0.5 if bf16 else 1.0)

    # 3 s of data loading after every bf16 step: it must not count
    modes = train(wrapper, model, clock, 14, compute, loading=lambda bf16: 3.0 * bf16)
    assert modes[:10] == PROBE_SCHEDULE
    assert modes[10:] == [B] * 4
    # medians of the timed steps only: warm-up (30 s, 50 s) and loading excluded
    record = wrapper.record
    assert record['float32_s'] == pytest.approx(statistics.median([1.0, 1.3, 0.9, 1.1]))
    assert record['bfloat16_s'] == pytest.approx(statistics.median([0.8, 0.7, 0.6, 0.9]))
    assert record['precision'] == 'bfloat16' and record['samples'] == 4
    assert record['source'] == 'probe'
    (line,) = [line for line in log_lines if 'CPUAmpOptimWrapper' in line]
    assert 'training in bfloat16' in line
    assert '1.0500 s in float32, 0.7500 s in bfloat16, 4 interleaved timed steps' in line


@pytest.mark.parametrize('bf16_seconds, expected', [(0.97, 'float32'), (0.95, 'bfloat16'),
                                                     (1.2, 'float32')])
def test_bfloat16_must_be_clearly_faster(clock, bf16_seconds, expected):
    """min_speedup 1.05: 1/0.97 = 1.031 keeps float32 (exact), 1/0.95 = 1.053 picks bf16."""
    model = nn.Linear(2, 2)
    wrapper = make_wrapper(model, dtype='auto', probe_iters=4)
    modes = train(wrapper, model, clock, 12, lambda step, bf16: bf16_seconds if bf16 else 1.0)
    assert wrapper.record['precision'] == expected
    assert modes[10:] == [expected == 'bfloat16'] * 2


def test_decision_is_saved_and_reused_on_resume(clock, log_lines, tmp_path: Path):
    model = nn.Linear(2, 2)
    wrapper = make_wrapper(model, dtype='auto', probe_iters=4)
    train(wrapper, model, clock, 11, lambda step, bf16: 0.5 if bf16 else 1.0)
    path = tmp_path / 'iter_11.pth'
    torch.save(dict(optimizer=wrapper.state_dict()), path)
    state = torch.load(path, weights_only=True)['optimizer']
    assert state[STATE_KEY] == dict(precision='bfloat16', source='probe', float32_s=1.0,
                                    bfloat16_s=0.5, samples=4)

    log_lines.clear()
    resumed = make_wrapper(model, dtype='auto', probe_iters=4)
    resumed.load_state_dict(state)
    # float32 would now be faster: a new probe would switch, the resumed run must not
    modes = train(resumed, model, clock, 12, lambda step, bf16: 9.0 if bf16 else 1.0)
    assert modes == [B] * 12
    assert resumed.record == state[STATE_KEY]
    (line,) = [line for line in log_lines if 'CPUAmpOptimWrapper' in line]
    assert line.startswith('CPUAmpOptimWrapper: resumed, training in bfloat16 (probe: ')
    # the optimizer state itself still loads (SGD's param groups)
    assert resumed.optimizer.param_groups[0]['lr'] == 0.01


def test_a_checkpoint_saved_during_the_probe_probes_again(clock):
    model = nn.Linear(2, 2)
    wrapper = make_wrapper(model, dtype='auto', probe_iters=4)
    train(wrapper, model, clock, 5, lambda step, bf16: 1.0)
    state = wrapper.state_dict()
    assert STATE_KEY not in state and wrapper.use_autocast is None
    resumed = make_wrapper(model, dtype='auto', probe_iters=4)
    resumed.load_state_dict(state)
    modes = train(resumed, model, clock, 11, lambda step, bf16: 2.0 if bf16 else 1.0)
    assert modes == PROBE_SCHEDULE + [F]


def test_a_fixed_dtype_wins_over_the_checkpoint_and_says_so(clock, log_lines):
    model = nn.Linear(2, 2)
    wrapper = make_wrapper(model, dtype='float32')
    wrapper.load_state_dict({**wrapper.state_dict(), STATE_KEY: dict(
        precision='bfloat16', source='probe', float32_s=1.0, bfloat16_s=0.5, samples=4)})
    assert train(wrapper, model, clock, 2, lambda step, bf16: 1.0) == [F, F]
    assert any(line == "CPUAmpOptimWrapper: the checkpoint trained in bfloat16 (probe); "
               "continuing in float32 as dtype='float32' says" for line in log_lines)
    assert "CPUAmpOptimWrapper: training in float32 (dtype='float32'); saved in checkpoints " \
           'and kept by --resume' in log_lines


def test_schedule_of_the_probe():
    probe = PrecisionProbe(samples=3, warmup=2)
    names = [probe.precision(step) for step in range(probe.num_steps)]
    assert names == ['float32', 'bfloat16'] * 2 + ['float32', 'bfloat16', 'bfloat16',
                                                   'float32', 'float32', 'bfloat16']
    for step, seconds in enumerate([9, 9, 9, 9, 1, 2, 4, 3, 5, 6]):
        probe.record(step, seconds)
    assert probe.times == dict(float32=[1, 3, 5], bfloat16=[2, 4, 6])


def _wrapper_lines(work_dir: Path) -> list[list[str]]:
    """The CPUAmpOptimWrapper messages of each run's log in ``work_dir``, oldest run first."""
    logs = sorted(work_dir.glob('*/*.log'))
    return [[line.split(' - INFO - ')[-1] for line in log.read_text().splitlines()
             if 'CPUAmpOptimWrapper:' in line] for log in logs]


def test_tools_train_resume_keeps_the_probed_precision(tiny_config: str, tmp_path: Path):
    """tools/train.py: the probe decides once; --resume logs and keeps that decision."""
    spec = importlib.util.spec_from_file_location('train_tool_probe', REPO / 'tools' / 'train.py')
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    work_dir = tmp_path / 'work'
    options = ['optim_wrapper.type=CPUAmpOptimWrapper', 'optim_wrapper.dtype=auto',
               'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=4']
    train.main([tiny_config, '--work-dir', str(work_dir), '--cfg-options', *options,
                'train_cfg.max_epochs=4', 'experiment_name=probe_first'])  # 16 iterations
    train.main([tiny_config, '--work-dir', str(work_dir), '--resume', '--cfg-options', *options,
                'train_cfg.max_epochs=5', 'experiment_name=probe_resumed'])
    first, resumed = _wrapper_lines(work_dir)
    assert len(first) == 1 and first[0].startswith('CPUAmpOptimWrapper: training in ')
    assert '(probe: median step ' in first[0]
    assert resumed == [first[0].replace('CPUAmpOptimWrapper: ', 'CPUAmpOptimWrapper: resumed, ')]
    records = [torch.load(work_dir / f'epoch_{epoch}.pth', weights_only=True)['optimizer'][
        STATE_KEY] for epoch in (4, 5)]
    assert records[0] == records[1] and records[0]['source'] == 'probe'
    assert f'training in {records[0]["precision"]} ' in first[0]
