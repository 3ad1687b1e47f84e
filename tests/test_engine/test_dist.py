import json
import os

import pytest
import torch
import torch.distributed as torch_dist

from fcosdet.engine.dist import (
    check_file_on_every_rank,
    decided_on_rank0,
    dist_backend,
    launcher_env,
)
from fcosdet.utils.cli import CLIError, run_cli


def test_backend_falls_back_to_gloo_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert dist_backend('nccl') == 'gloo'
    assert dist_backend(None) == 'gloo'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert dist_backend('nccl') == 'nccl'
    assert dist_backend(None) == 'nccl'
    assert dist_backend('gloo') == 'gloo'


def test_slurm_and_mpi_layouts(monkeypatch):
    for name in ('MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '5')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('MASTER_ADDR', 'node3')
    assert launcher_env('slurm') == dict(RANK='5', WORLD_SIZE='8', LOCAL_RANK='1',
                                         MASTER_ADDR='node3', MASTER_PORT='29500')
    monkeypatch.delenv('MASTER_ADDR')
    monkeypatch.setenv('MASTER_PORT', '1234')
    monkeypatch.setenv('OMPI_COMM_WORLD_RANK', '2')
    monkeypatch.setenv('OMPI_COMM_WORLD_SIZE', '4')
    monkeypatch.setenv('OMPI_COMM_WORLD_LOCAL_RANK', '0')
    assert launcher_env('mpi') == dict(RANK='2', WORLD_SIZE='4', LOCAL_RANK='0',
                                       MASTER_ADDR='127.0.0.1', MASTER_PORT='1234')


def test_pytorch_launcher_names_missing_variables(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.setenv(name, '0')
    monkeypatch.delenv('WORLD_SIZE')
    with pytest.raises(KeyError, match="WORLD_SIZE.*torchrun"):
        launcher_env('pytorch')
    with pytest.raises(ValueError, match='launcher'):
        launcher_env('none')


def _start_single_rank_group(store_file) -> None:
    torch_dist.init_process_group('gloo', init_method=f'file://{store_file}', rank=0,
                                  world_size=1)


def test_run_cli_shuts_the_process_group_down_after_success(tmp_path):
    seen = []

    def main(argv):
        _start_single_rank_group(tmp_path / 'store')
        seen.append(torch_dist.is_initialized())

    run_cli(main)
    assert seen == [True]
    assert not torch_dist.is_initialized()


def test_run_cli_leaves_the_group_alone_on_error(tmp_path):
    """No barrier after a failure: the other ranks may be gone, and it would hang."""
    def main(argv):
        _start_single_rank_group(tmp_path / 'store')
        raise CLIError('bad flag')

    try:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main)
        assert exit_info.value.code == 1
        assert torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _agree_worker(rank: int, tmp: str) -> None:
    """Each rank in its own folder (a machine of its own); only rank 0's has ``ckpt.pth``."""
    torch_dist.init_process_group('gloo', init_method=f'file://{tmp}/store', rank=rank,
                                  world_size=2)
    try:
        os.chdir(f'{tmp}/node{rank}')
        chosen = decided_on_rank0(lambda: f'ckpt.pth (chosen by rank {rank})')
        try:
            check_file_on_every_rank('ckpt.pth', '--resume')
            message = 'no error'
        except FileNotFoundError as err:
            message = str(err)
        with open('out.json', 'w') as file:
            json.dump(dict(chosen=chosen, message=message), file)
        check_file_on_every_rank('s3://bucket/x.pth', 'load_from')  # URIs are not checked
    finally:
        torch_dist.destroy_process_group()


def test_rank0_chooses_and_a_rank_without_the_file_stops_every_rank(tmp_path):
    """What --resume relies on when the machines share no folder (the test process forked)."""
    for rank in (0, 1):
        (tmp_path / f'node{rank}').mkdir()
    (tmp_path / 'node0' / 'ckpt.pth').touch()
    torch.multiprocessing.start_processes(_agree_worker, args=(str(tmp_path),), nprocs=2,
                                          start_method='fork')
    outs = [json.loads((tmp_path / f'node{r}' / 'out.json').read_text()) for r in (0, 1)]
    assert [out['chosen'] for out in outs] == ['ckpt.pth (chosen by rank 0)'] * 2
    assert [out['message'] for out in outs] == [
        '--resume: ckpt.pth is missing on rank(s) [1] of 2; machines that share no folder '
        'each need a copy of it at this path'] * 2
