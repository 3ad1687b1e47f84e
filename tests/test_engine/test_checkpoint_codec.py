import io

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from fcosdet.engine.checkpoint_codec import (
    decode_checkpoint,
    decode_value,
    encode_checkpoint,
    encode_value,
)


def _weights_only_roundtrip(obj: object) -> object:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_raw_history_buffer_is_refused_by_weights_only_load():
    # the reason for the codec: mmengine's own pickling of a HistoryBuffer needs getattr
    with pytest.raises(Exception, match='HistoryBuffer|getattr'):
        _weights_only_roundtrip({'b': HistoryBuffer([1.0], [1])})


def test_message_hub_survives_weights_only_load():
    hub = MessageHub.get_instance('codec_test_hub')
    for value in (1.0, 3.0, 8.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('best_score', np.float64(0.25))
    hub.update_info('keep_ckpt_ids', [1, 2])
    checkpoint = {'meta': {'epoch': 2, 'seed': np.int64(7)}, 'message_hub': hub.state_dict(),
                  'state_dict': {'w': torch.ones(2)}}

    encode_checkpoint(checkpoint)
    loaded = _weights_only_roundtrip(checkpoint)
    decode_checkpoint(loaded)

    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(4.0)
    assert buffer.current() == 8.0
    assert buffer.statistics('max') == 8.0
    buffer.update(2.0)  # still a working buffer
    assert buffer.mean(2) == pytest.approx(5.0)
    assert loaded['message_hub']['runtime_info']['best_score'] == 0.25
    assert type(loaded['message_hub']['runtime_info']['best_score']) is float
    assert loaded['meta']['seed'] == 7
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))

    restored = MessageHub.get_instance('codec_test_hub_restored')
    restored.load_state_dict(loaded['message_hub'])
    assert restored.get_scalar('train/loss').current() == 2.0


def test_encode_keeps_structure_and_converts_arrays():
    value = {'a': [np.arange(3), (np.float32(1.5), 'x')], 'b': None}
    encoded = encode_value(value)
    assert torch.equal(encoded['a'][0], torch.arange(3))
    assert encoded['a'][1] == (1.5, 'x') and isinstance(encoded['a'][1], tuple)
    assert encoded['b'] is None
    assert decode_value({'c': [1, {'d': 2}]}) == {'c': [1, {'d': 2}]}
