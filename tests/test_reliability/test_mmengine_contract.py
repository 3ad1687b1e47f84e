"""What DetRunner and fcosdet's CheckpointHook rely on in mmengine, pinned.

Both override mmengine methods and call back into them; these tests fail, naming the
assumption, when an mmengine release changes one. Re-check the override named in the message.
"""
import inspect

import pytest
from mmengine.hooks import CheckpointHook as MMEngineCheckpointHook
from mmengine.runner import Runner

from fcosdet.engine import DetRunner
from fcosdet.engine.hooks import CheckpointHook

# (mmengine function, text its source must hold, what fcosdet relies on)
CONTRACT = [
    (Runner.load_or_resume, 'if self._resume and self._load_from is None',
     'DetRunner.load_or_resume sets _load_from so that mmengine resumes from it'),
    (Runner.load_or_resume, 'resume_from = self._load_from',
     'DetRunner.load_or_resume: a set _load_from is resumed from'),
    (Runner.load_or_resume, 'if self._has_loaded', 'DetRunner reads _has_loaded'),
    (Runner.train, 'self._train_loop = self.build_train_loop(',
     'DetRunner.load_checkpoint: a built train loop means training (partial loads allowed)'),
    (Runner.train, 'self.load_or_resume()', 'loading happens after the train loop is built'),
    (Runner.resume, 'self.load_checkpoint(', "resume loads through DetRunner.load_checkpoint "
                                              "(weights_only, message hub decoding)"),
    (Runner.resume, "self.message_hub.load_state_dict(checkpoint['message_hub'])",
     'the message hub is restored from the decoded checkpoint'),
    (Runner.load_checkpoint, "self.call_hook('after_load_checkpoint', checkpoint=checkpoint)",
     'DetRunner.load_checkpoint re-implements this call'),
    (Runner.load_checkpoint, 'self._has_loaded = True',
     'DetRunner.load_checkpoint re-implements this flag'),
    (Runner.save_checkpoint, "self.call_hook('before_save_checkpoint', checkpoint=checkpoint)",
     "CheckpointHook.before_save_checkpoint encodes the message hub"),
    (Runner.save_checkpoint, 'save_checkpoint(checkpoint, filepath',
     'DetRunner.save_checkpoint: mmengine writes exactly to out_dir/filename (the temp file)'),
    (MMEngineCheckpointHook._save_best_checkpoint, 'if best_ckpt_path and is_main_process()',
     'CheckpointHook hides the old best path (None) so mmengine does not remove it first'),
    (MMEngineCheckpointHook._save_best_checkpoint, 'self._save_checkpoint_with_step(runner, ',
     "the best-checkpoint re-save goes through CheckpointHook._save_checkpoint_with_step"),
    (MMEngineCheckpointHook._save_best_checkpoint, 'runner.save_checkpoint(',
     'best checkpoints are written by DetRunner.save_checkpoint (durably)'),
    (MMEngineCheckpointHook._save_checkpoint, 'self._save_checkpoint_with_step(runner, step',
     'periodic saves go through CheckpointHook._save_checkpoint_with_step'),
    (MMEngineCheckpointHook.before_train, "runner.message_hub.get_info('keep_ckpt_ids')",
     'CheckpointHook.before_train empties keep_ckpt_ids so mmengine does not prune early'),
    (MMEngineCheckpointHook.after_train_iter, 'self._save_checkpoint(runner)',
     'CheckpointHook.after_train_iter confirms before mmengine may save'),
]


def test_test_and_val_do_not_build_the_train_loop():
    for function in (Runner.test, Runner.val):
        assert 'build_train_loop' not in inspect.getsource(function), (
            f'{function.__qualname__} builds the train loop: DetRunner.load_checkpoint would '
            'load test checkpoints partially')


@pytest.mark.parametrize('function, text, reason', CONTRACT,
                         ids=[f'{f.__qualname__}:{i}' for i, (f, _, _) in enumerate(CONTRACT)])
def test_mmengine_source_still_does_what_fcosdet_relies_on(function, text, reason):
    source = ''.join(inspect.getsource(function).split())  # formatting-independent
    assert ''.join(text.split()) in source, (
        f'mmengine changed {function.__qualname__}: "{text}" is gone; {reason}')


def test_overridden_signatures_match_mmengine():
    pairs = [(DetRunner.load_checkpoint, Runner.load_checkpoint),
             (DetRunner.save_checkpoint, Runner.save_checkpoint),
             (DetRunner.load_or_resume, Runner.load_or_resume),
             (DetRunner.setup_env, Runner.setup_env),
             (DetRunner.wrap_model, Runner.wrap_model),
             (CheckpointHook._save_checkpoint_with_step,
              MMEngineCheckpointHook._save_checkpoint_with_step),
             (CheckpointHook._save_best_checkpoint, MMEngineCheckpointHook._save_best_checkpoint),
             (CheckpointHook.before_train, MMEngineCheckpointHook.before_train),
             (CheckpointHook.after_train_iter, MMEngineCheckpointHook.after_train_iter),
             (CheckpointHook.after_train, MMEngineCheckpointHook.after_train)]
    for ours, theirs in pairs:
        ours_params = list(inspect.signature(inspect.unwrap(ours)).parameters)
        theirs_params = list(inspect.signature(inspect.unwrap(theirs)).parameters)
        assert ours_params == theirs_params, f'{theirs.__qualname__} changed its arguments'


def test_det_runner_overrides_only_what_no_hook_can_do():
    overridden = sorted(name for name, value in vars(DetRunner).items()
                        if callable(value) and not name.startswith('__'))
    assert overridden == ['load_checkpoint', 'load_or_resume', 'save_checkpoint', 'setup_env',
                          'wrap_model']
