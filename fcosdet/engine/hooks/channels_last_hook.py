"""Trains the model in channels-last memory format (``custom_hooks`` of the default runtime)."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from fcosdet.models.utils import to_channels_last
from fcosdet.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Switch the model to channels-last memory (:func:`fcosdet.models.utils.to_channels_last`)
    at ``before_train``, after the checkpoint has been loaded or resumed.

    Convolutions forward and backward, BatchNorm and GroupNorm then run on NHWC tensors: a demo
    training step took 0.77x the CPU time of NCHW (docs/benchmark.md). The numbers are those of
    NCHW up to float rounding; checkpoints hold the same values (strides are not part of a state
    dict). Under DDP the model is already wrapped when hooks run: gradients then no longer match
    the bucket layout and DDP copies them (it warns once), which costs some of the gain.
    """

    priority = 'VERY_HIGH'  # before other hooks see the model of the first iteration

    def before_train(self, runner: Runner) -> None:
        """Convert the (unwrapped) model, once per training run."""
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        to_channels_last(model)
        runner.logger.info('ChannelsLastHook: training in channels-last memory format')
