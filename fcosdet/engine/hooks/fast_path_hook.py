"""Switches the model to the inference fast paths before a test run (``tools/test.py``)."""
from mmengine.hooks import Hook
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner

from fcosdet.models.utils import FastPathSpec, apply_fast_path, parse_fast_path
from fcosdet.registry import HOOKS


@HOOKS.register_module()
class FastPathHook(Hook):
    """Apply :func:`fcosdet.models.utils.apply_fast_path` once, at ``before_test_epoch``.

    The fast paths change the model in place (BN folding removes the BN layers, bf16 wraps the
    forward), which would corrupt a model that is still being trained. So the hook acts only on
    the test loop (``Runner.test()``, run by ``tools/test.py``, after the checkpoint has been
    loaded), never on the validation loop of a training run, and refuses a training run that
    starts after it has acted. ``tools/test.py`` adds it with ``--fast-path``, the config's
    ``fast_path`` key or, by default, ``DEFAULT_FAST_PATH`` (not with ``--no-fast-path``); it is
    not meant for training configs (``ChannelsLastHook`` is the training counterpart).

    Args:
        fast_path: The selection, as for :func:`fcosdet.models.utils.parse_fast_path`.

    Raises:
        KeyError, TypeError: A bad fast-path name or value (at construction).
    """

    priority = 'VERY_LOW'  # after the other hooks have seen the unchanged model

    def __init__(self, fast_path: FastPathSpec) -> None:
        self.fast_path = parse_fast_path(fast_path)
        self.applied: dict[str, bool] | None = None

    def before_test_epoch(self, runner: Runner) -> None:
        """Put the (unwrapped) model in eval mode and apply the fast paths, the first time."""
        if self.applied is not None:
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if isinstance(model, BaseTTAModel):  # tools/test.py --tta: the detector inside
            model = model.module
        model.eval()
        self.applied = apply_fast_path(model, self.fast_path)
        enabled = [name for name, on in self.applied.items() if on]
        runner.logger.info(f'FastPathHook: inference fast paths enabled: {enabled or "none"}')

    def before_train(self, runner: Runner) -> None:
        """Refuse to train a model that the fast paths have already changed."""
        if self.applied is not None and any(self.applied.values()):
            raise RuntimeError('FastPathHook: the model was changed in place for inference '
                               f'({self.applied}); it cannot be trained afterwards')
