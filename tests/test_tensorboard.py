"""What BasicSR users read in tensorboard: stage 1's densities per block and layer type and
OBProx-SG's phase, stage 3's two loss terms (read back from the event files)."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers import run_module, tiny_train_opt, use_obproxsg, use_teacher, write_opt


def _tags(folder):
    tags = set()
    for events in folder.glob('events.out.tfevents.*'):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()['scalars'])
    return tags


def _train(tmp_path, opt):
    opt['logger'].update(print_freq=1, use_tb_logger=True)
    run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / f'{opt["name"]}.yml', opt)], cwd=tmp_path)
    return _tags(tmp_path / 'tb_logger' / opt['name'])


def test_stage_one_densities_and_phase(sr_dataset, tmp_path):
    tags = _train(tmp_path, use_obproxsg(tiny_train_opt(sr_dataset, 'tb_prune', total_iter=2)))
    assert {'density', 'orthant_phase', 'losses/l_pix'} <= tags
    assert 'density_block/body.0' in tags, sorted(tags)
    assert {'density_layer/conv1.weight', 'density_layer/conv2.weight'} <= tags, sorted(tags)


def test_stage_three_loss_terms(sr_dataset, random_teacher, tmp_path):
    tags = _train(tmp_path, use_teacher(tiny_train_opt(sr_dataset, 'tb_distill', total_iter=2), random_teacher))
    assert {'losses/l_distill', 'losses/l_pix'} <= tags, sorted(tags)
