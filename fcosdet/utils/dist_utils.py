"""End of a distributed run, for the tools (``run_cli``).

The start-up on CPU-only machines is :mod:`fcosdet.engine.dist`; this lives in ``utils`` because
the tools' shared code (:mod:`fcosdet.utils.cli`) calls it and ``utils`` imports nothing above.
"""
import torch.distributed as torch_dist


def shutdown_dist() -> None:
    """Wait for every rank, then destroy the process group (no-op when none was started).

    Called by the tools after a successful run. Left to interpreter exit, gloo's background
    threads can still be running while the group is torn down, and a rank then aborts
    ("terminate called without an active exception") although its work is done.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()
