"""Tells the model's head which training epoch is running (TOOD's warm-up switch)."""
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner

from fcosdet.registry import HOOKS


@HOOKS.register_module()
class SetEpochInfoHook(Hook):
    """Set ``model.bbox_head.epoch`` to the runner's (0-based) epoch at ``before_train_epoch``.

    MMDetection's hook of the same name; TOOD's head uses the epoch to switch from ATSS to
    task-aligned assignment after ``initial_epoch`` epochs. Without the hook the head follows
    the runner's epoch from mmengine's ``MessageHub`` (the same number); the hook pins it on the
    head itself. A resumed run sets the resumed epoch. DDP and TTA wrappers are looked through.

    Raises:
        ValueError: The model has no ``bbox_head`` with an ``epoch`` attribute (the hook
            would otherwise do nothing, silently).
    """

    def before_train_epoch(self, runner: Runner) -> None:
        """Copy ``runner.epoch`` into the (unwrapped) model's head."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):
            model = model.module
        head = getattr(model, 'bbox_head', None)
        if not hasattr(head, 'epoch'):
            raise ValueError(f'SetEpochInfoHook: {type(model).__name__}.bbox_head '
                             f'({type(head).__name__}) has no epoch attribute to set; remove '
                             'the hook from custom_hooks or use a head that has one (TOODHead)')
        head.epoch = runner.epoch
