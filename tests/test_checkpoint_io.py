"""The one checkpoint reader of the commands: no code runs, BasicSR's keys, BasicSR's prefixes."""
import pytest
import torch

from helpers import MkdirWhenUnpickled
from srcomp_plugin.utils.checkpoint_io import CheckpointReadError, load_state_dict


def test_keys_in_order_then_a_plain_state_dict(tmp_path):
    ema, raw = {'w': torch.ones(1)}, {'w': torch.zeros(1)}
    torch.save({'params': raw, 'params_ema': ema}, tmp_path / 'both.pth')
    state, key = load_state_dict(tmp_path / 'both.pth', ('params_ema', 'params'))
    assert key == 'params_ema' and torch.equal(state['w'], ema['w'])
    torch.save({'params': raw}, tmp_path / 'raw.pth')
    assert load_state_dict(tmp_path / 'raw.pth', ('params_ema', 'params'))[1] == 'params'
    torch.save({'module.w': torch.zeros(1)}, tmp_path / 'ddp.pth')  # a bare DDP state dict
    state, key = load_state_dict(tmp_path / 'ddp.pth')
    assert key is None and list(state) == ['w']


def test_errors_name_the_file_and_what_is_missing(tmp_path):
    torch.save({'model': {'w': torch.zeros(1)}, 'iter': 3}, tmp_path / 'other.pth')
    with pytest.raises(CheckpointReadError, match=r"other.pth: has no 'params' entry .*\['iter', 'model'\]"):
        load_state_dict(tmp_path / 'other.pth')
    with pytest.raises(CheckpointReadError, match='gone.pth: not found'):
        load_state_dict(tmp_path / 'gone.pth')
    torch.save({'params': {'w': MkdirWhenUnpickled(str(tmp_path / 'marker'))}}, tmp_path / 'evil.pth')
    with pytest.raises(CheckpointReadError, match='holds pickled code, which is refused'):
        load_state_dict(tmp_path / 'evil.pth')
    assert not (tmp_path / 'marker').exists()
