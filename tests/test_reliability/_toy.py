"""A toy DetRunner (one linear layer, dict batches) for fast in-process checkpoint tests."""
from pathlib import Path

import torch
from mmengine.model import BaseModel
from torch import nn
from torch.utils.data import default_collate

from fcosdet.engine import DetRunner


class ToyModel(BaseModel):
    """``loss = mean((w x + b)^2)``."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        return dict(loss=(out ** 2).mean()) if mode == 'loss' else out


def toy_runner(work_dir: Path, max_iters: int = 4, max_keep_ckpts: int = 1,
               custom_hooks: list | None = None, name: str = 'toy', resume: bool = False,
               optimizer: dict | None = None, load_from: str | None = None,
               **hook_args) -> DetRunner:
    """An iteration-based DetRunner saving every iteration with fcosdet's CheckpointHook
    (``optimizer`` default: SGD, lr 0.01, momentum 0.9)."""
    data = [dict(inputs=torch.full((2,), float(i))) for i in range(4)]
    loader = dict(dataset=data, batch_size=2, collate_fn=default_collate,
                  sampler=dict(type='DefaultSampler', shuffle=False))
    return DetRunner(
        model=ToyModel(), work_dir=str(work_dir), default_scope='fcosdet',
        experiment_name=f'{name}_{work_dir.name}', train_dataloader=loader,
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=optimizer or dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1,
                                           max_keep_ckpts=max_keep_ckpts, **hook_args),
                           logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=custom_hooks, resume=resume, load_from=load_from, log_level='WARNING')
