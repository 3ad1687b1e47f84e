"""Stop a run early when the head's class count does not match the dataset's class list."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from fcosdet.registry import HOOKS


@HOOKS.register_module()
class NumClassCheckHook(Hook):
    """Check ``model.bbox_head.num_classes`` against ``len(dataset.metainfo['classes'])``.

    A mismatch (the usual slip when training on one's own data) otherwise trains silently with
    wrong labels or fails deep inside the loss; here it stops before the first iteration with
    a message naming both numbers and the keys to change.
    """

    def _check(self, runner, split: str) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        num_classes = getattr(getattr(model, 'bbox_head', None), 'num_classes', None)
        dataset = getattr(runner, f'{split}_loop').dataloader.dataset
        classes = getattr(dataset, 'metainfo', {}).get('classes')
        if num_classes is None or classes is None or len(classes) == num_classes:
            return
        raise ValueError(
            f'model.bbox_head.num_classes is {num_classes} but the {split} dataset '
            f'({type(dataset).__name__}) has {len(classes)} classes {tuple(classes)}: set '
            f'model.bbox_head.num_classes={len(classes)} or the dataset\'s metainfo.classes')

    def before_train(self, runner) -> None:
        self._check(runner, 'train')

    def before_val(self, runner) -> None:
        self._check(runner, 'val')

    def before_test(self, runner) -> None:
        self._check(runner, 'test')
