"""``DumpDetResults``: every prediction into a pickle (``tools/test.py --out``), on any nodes."""
from mmengine.evaluator import DumpResults

from fcosdet.registry import METRICS

from .gather import evaluate_gathered


@METRICS.register_module()
class DumpDetResults(DumpResults):
    """mmengine's ``DumpResults`` (same file: a list of sample dicts, tensors on the CPU), with
    the ranks' predictions gathered through the process group instead of a shared folder
    (:func:`~fcosdet.evaluation.metrics.gather.gather_results`), so a distributed test over
    machines that share no filesystem can dump them too. Rank 0 writes the file.

    Args:
        out_file_path: The ``.pkl`` or ``.pickle`` file to write.
        collect_device: ``'cpu'`` (in memory over gloo) or ``'gpu'``.
    """

    def __init__(self, out_file_path: str, collect_device: str = 'cpu') -> None:
        super().__init__(out_file_path, collect_device=collect_device)

    def evaluate(self, size: int) -> dict:
        """Gather every rank's predictions on rank 0 and dump them there.

        Args:
            size: Length of the dataset (the sampler's padding is dropped).

        Returns:
            An empty dict (nothing is scored).
        """
        return evaluate_gathered(self, size)
