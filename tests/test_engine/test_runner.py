import os

import mmengine.runner.runner as mmengine_runner_module
import pytest
import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import TensorDataset

from fcosdet.engine import DetRunner


class _Toy(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.fc(inputs)


@pytest.fixture
def runner(tmp_path) -> DetRunner:
    loader = dict(dataset=TensorDataset(torch.zeros(2, 2)), batch_size=1,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    runner = DetRunner(model=_Toy(), work_dir=str(tmp_path), default_scope='fcosdet',
                       experiment_name=f'toy_{tmp_path.name}', train_dataloader=loader,
                       train_cfg=dict(by_epoch=True, max_epochs=1),
                       optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)))
    runner.message_hub.update_scalar('train/loss', 0.5)
    return runner


def test_checkpoint_is_plain_data_and_loads_back(runner, tmp_path):
    runner.save_checkpoint(str(tmp_path), 'ckpt.pth', save_optimizer=False,
                           save_param_scheduler=False)
    assert [n for n in os.listdir(tmp_path) if 'ckpt' in n] == ['ckpt.pth']  # no temp file
    raw = torch.load(tmp_path / 'ckpt.pth', weights_only=True)  # no allow-list needed
    assert torch.equal(raw['state_dict']['fc.weight'], runner.model.fc.weight.detach())
    with torch.no_grad():
        runner.model.fc.weight.zero_()
    checkpoint = runner.load_checkpoint(str(tmp_path / 'ckpt.pth'))
    assert torch.equal(runner.model.fc.weight, raw['state_dict']['fc.weight'])
    assert checkpoint['message_hub']['log_scalars']['train/loss'].current() == 0.5


def test_failed_save_keeps_previous_checkpoint(runner, tmp_path, monkeypatch):
    runner.save_checkpoint(str(tmp_path), 'ckpt.pth', save_optimizer=False,
                           save_param_scheduler=False)
    good = (tmp_path / 'ckpt.pth').read_bytes()

    def crash_midway(checkpoint, filename, **kwargs):
        with open(filename, 'wb') as f:
            f.write(b'half a checkpoint')
        raise OSError('disk full')

    monkeypatch.setattr(mmengine_runner_module, 'save_checkpoint', crash_midway)
    with pytest.raises(OSError, match='disk full'):
        runner.save_checkpoint(str(tmp_path), 'ckpt.pth', save_optimizer=False,
                               save_param_scheduler=False)
    assert (tmp_path / 'ckpt.pth').read_bytes() == good
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
