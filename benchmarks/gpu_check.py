"""One prepared check that runs every stage on CUDA through the real entry points and measures it.

    python benchmarks/gpu_check.py                              # on a GPU: under 8 minutes
    python benchmarks/gpu_check.py --device cpu --smoke         # the same code, tiny, on the CPU (CI)
    python benchmarks/gpu_check.py --parts latency throughput   # only some parts (see PARTS)
    bash benchmarks/gpu/run_check.sh [options]                  # on the offline GPU machine (RESULTS.md)

Why one script: a GPU is lent now and then, for minutes, with no package index. Everything
it needs is prepared and tested beforehand (``benchmarks/gpu/``; the CPU smoke run is in the
test suite, so this script cannot rot), and one command proves the CUDA paths that CPU runs
never touch: BasicSR's own ``init_dist``/``model_to_device``/resume (the plugin replaces them
only without CUDA), OBProxSG and the teachers on CUDA, the bf16 teacher, the teacher cache,
the fused paths falling back to BasicSR's forward off the CPU, and export.

Correctness parts (each a few dozen iterations on data the script makes itself, the demo's
scikit-image photographs, in a scratch work folder; a failure makes the exit status 1):

* ``stage1_resume``: ``SparseSRModel`` + OBProxSG from the release's prune option file, run
  N iterations uninterrupted, and again stopped at N/2 (``--force_yml train:total_iter=N/2``)
  and resumed with ``--auto_resume`` to N; the final weights must be bit-identical. If they
  are not, an uninterrupted rerun tells CUDA nondeterminism (BasicSR sets
  ``cudnn.benchmark``) from a resume bug: the resumed run then passes only if it is within
  10x the rerun's own difference.
* ``compress``: ``srcomp compress`` of the stage-1 checkpoint (full size: EDSR f64b16 ->
  EDSRmini exactly).
* ``distill_fp32``, ``distill_bf16``, ``distill_cache``: stage 3 from the written option file
  (losses and initialisation as compress's default recipe writes them; the paper's
  MultiLapLoss step also runs in ``kd_step``) with the live float32 teacher, the bf16 +
  channels_last teacher, and the teacher cache.
* ``distill_ddp``: stage 3 under ``torchrun --nproc_per_node=1 ... --launcher pytorch``
  (BasicSR's DDP: nccl on CUDA, gloo on the CPU).
* ``test``: ``python -m srcomp_plugin.test`` of the distilled student.
* ``export``: ``srcomp export --format onnx``, checked against PyTorch by ONNX Runtime
  (skipped when onnx/onnxruntime are not installed).
* ``fused_paths``: EDSRmini/SwinIRmini fused forwards against BasicSR's own, on the device.

Speed parts (in this process, on the device; 720p x2 output, LR input 360x640):

* ``latency``: EDSR f64b16, EDSRmini, SwinIR-light, SwinIRmini from ``options/test/``, batch 1,
  float32 / bf16 autocast / channels_last; CUDA events after warm-up, median; peak memory.
* ``throughput``: images per second at batch 8, float32 and bf16, peak memory.
* ``kd_step``: the table of ``benchmarks/kd_step.py`` on the device, for both students.

On the CPU, timings use ``time.perf_counter`` and peak memory is recorded as "n/a".
Every part prints one line and is recorded in the JSON (``--out``), written after each
part so that a run cut short still leaves its figures.
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

import common

REPO = Path(__file__).resolve().parents[1]
PRUNE_OPTIONS = REPO / 'options' / 'prune' / 'train_EDSR_f64b16_x2_prune.yml'
SCALE = 2
SIZES = {
    # 'full' fits one modern GPU in under 8 minutes; 'smoke' runs every part on 2 CPU cores in ~1 minute.
    'full': {
        'teacher': {},  # the release's EDSR f64b16, as in the prune option file
        'ratio': '49603/1369859',  # f64b16 -> EDSRmini (f16b8) exactly
        'train_tiles': None,  # all 241 training tiles of the demo's photographs
        'batch': 16, 'gt_size': 96, 'prune_iters': 40, 'distill_iters': 30,
        'out_hw': (720, 1280), 'warmup': 3, 'repeats': 10, 'throughput_batch': 8,
        'kd_students': ('EDSRmini', 'SwinIRmini'),
        'kd_args': ['--batch', '16', '--gt-size', '96', '--steps', '10', '--warmup', '3', '--rounds', '1'],
    },
    'smoke': {
        'teacher': {'num_feat': 16, 'num_block': 2},
        'ratio': '0.3',
        'train_tiles': 8,  # BasicSR's meta_info_file picks them: the teacher cache then builds 8, not 241
        'batch': 2, 'gt_size': 32, 'prune_iters': 4, 'distill_iters': 2,
        'out_hw': (32, 48), 'warmup': 1, 'repeats': 2, 'throughput_batch': 2,
        'kd_students': ('EDSRmini',),
        'kd_args': ['--batch', '2', '--gt-size', '32', '--steps', '1', '--warmup', '1', '--rounds', '1'],
    },
}
RERUN_FACTOR = 10  # a resumed run within 10x an uninterrupted rerun's difference is CUDA noise
FUSED_ATOL = 1e-3


class CheckFailed(RuntimeError):
    """A part ran but its result is wrong; ``details`` go into the JSON record."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}


class Skipped(RuntimeError):
    """A part that cannot run here (e.g. an optional package missing); not a failure."""


class Check:
    """The run's settings, work folder and records, and the helpers every part uses."""

    def __init__(self, args):
        self.args = args
        self.size = SIZES['smoke' if args.smoke else 'full']
        self.device = torch.device(args.device)
        self.cuda = self.device.type == 'cuda'
        self.work = Path(args.work).resolve()
        self.records = {}
        self.machine = machine(self.device)
        self.outputs = {}  # what later parts need from earlier ones (paths, option dicts)

    # ------------------------------------------------------------------ subprocesses

    def run(self, label, argv, stdout_only=False):
        """Run ``python argv`` in the work folder; the output goes to ``logs/<label>.log``.

        Returns the combined output (or stdout alone with ``stdout_only``); raises CheckFailed
        with the output's tail when the command fails.
        """
        log = self.work / 'logs' / f'{label}.log'
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, *map(str, argv)]
        # A session of its own, so that a hung command (say, a stuck NCCL rank under torchrun)
        # is killed with all its children and the other parts still run.
        proc = subprocess.Popen(cmd, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=self.args.command_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f'\n(killed after {self.args.command_timeout} s)'
        log.write_text(f'$ {" ".join(cmd)}\n{stdout}\n--- stderr ---\n{stderr}', encoding='utf-8')
        if proc.returncode != 0:
            raise CheckFailed(f'{" ".join(cmd[1:4])} ... exited {proc.returncode} (log {log})',
                              {'log_tail': (stdout + stderr)[-3000:]})
        return stdout if stdout_only else stdout + stderr

    def train(self, label, opt, extra=(), torchrun=False):
        """Write ``opt`` and run stage 1/3 training through ``srcomp_plugin.train``; returns its output.

        With ``train.teacher_cache``, ``srcomp teacher-cache`` fills the cache first.
        """
        from srcomp_plugin.pipeline.stage_options import save_yaml

        path = self.work / 'options' / f'{opt["name"]}.yml'
        path.parent.mkdir(parents=True, exist_ok=True)
        save_yaml(path, opt)
        if opt.get('train', {}).get('teacher_cache'):
            self.run(f'{label}_fill', ['-m', 'srcomp_plugin.cli', 'teacher-cache', '-opt', path])
        argv = ['-m', 'srcomp_plugin.train', '-opt', path, *extra]
        if torchrun:
            argv = ['-m', 'torch.distributed.run', '--nproc_per_node=1', f'--master_port={_free_port()}',
                    *argv, '--launcher', 'pytorch']
        return self.run(label, argv)

    def models(self, name):
        return self.work / 'experiments' / name / 'models'

    # ------------------------------------------------------------------ records

    def record(self, name, kind, fn):
        """Run part ``name``, print its line, record it (status, seconds, summary, details), save the JSON."""
        start = time.perf_counter()
        try:
            summary, details = fn(self)
            record = {'kind': kind, 'status': 'ok', 'summary': summary, **details}
        except Skipped as why:
            record = {'kind': kind, 'status': 'skipped', 'summary': f'skipped: {why}'}
        except Exception as err:  # one failing part must not stop the others
            details = err.details if isinstance(err, CheckFailed) else {'traceback': traceback.format_exc()[-3000:]}
            record = {'kind': kind, 'status': 'failed', 'summary': f'{type(err).__name__}: {err}', **details}
        record['seconds'] = round(time.perf_counter() - start, 2)
        self.records[name] = record
        print(f'[gpu_check] {name:<14} {record["status"]:<7} {record["seconds"]:7.1f} s  {record["summary"]}',
              flush=True)
        self.save()

    def save(self, finished=False):
        correctness = [r for r in self.records.values() if r['kind'] == 'correctness']
        result = {'benchmark': 'gpu_check', 'device': str(self.device), 'smoke': self.args.smoke,
                  'settings': {k: list(v) if isinstance(v, tuple) else v for k, v in self.size.items()},
                  'machine': self.machine, 'finished': finished,
                  'correctness_passed': all(r['status'] != 'failed' for r in correctness),
                  'parts': self.records}
        common.write_json(result, self.args.out)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def machine(device):
    """``common.machine_info`` plus the GPU's name, memory and the CUDA/cuDNN versions."""
    info = common.machine_info(torch.get_num_threads())
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    gpu_capability=f'{props.major}.{props.minor}', cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


# ============================================================================ data and options


def prepare(ck):
    """The demo's dataset, a random teacher checkpoint (weights do not matter for a check)."""
    from basicsr.archs import build_network

    from srcomp_plugin.pipeline.demo_data import build_demo_dataset

    data = build_demo_dataset(ck.work / 'datasets', SCALE)
    if ck.size['train_tiles']:
        tiles = sorted(p.name for p in data['train_gt'].glob('*.png'))[:ck.size['train_tiles']]
        data['meta_info_file'] = ck.work / 'datasets' / 'meta_info_subset.txt'
        data['meta_info_file'].write_text(''.join(f'{name}\n' for name in tiles))
    ck.outputs['data'] = data
    teacher = dict(common.load_network_opt(PRUNE_OPTIONS), **ck.size['teacher'])
    torch.manual_seed(0)
    ckpt = ck.work / 'teacher.pth'
    torch.save({'params': build_network(dict(teacher)).state_dict()}, ckpt)
    ck.outputs.update(teacher=teacher, teacher_ckpt=ckpt)


def datasets(ck):
    data, size = ck.outputs['data'], ck.size
    train = {'name': 'skimage_train', 'dataroot_gt': str(data['train_gt']), 'dataroot_lq': str(data['train_lq']),
             'filename_tmpl': '{}', 'gt_size': size['gt_size'], 'batch_size_per_gpu': size['batch'],
             'num_worker_per_gpu': 0}
    if 'meta_info_file' in data:
        train['meta_info_file'] = str(data['meta_info_file'])
    return {
        'train': train,
        'val': {'name': 'skimage_val', 'dataroot_gt': str(data['val_gt']), 'dataroot_lq': str(data['val_lq']),
                'filename_tmpl': f'{{}}x{SCALE}'},
    }


def prune_opt(ck, name):
    """The release's stage-1 option file on the check's data, N iterations, both OBProxSG phases."""
    from srcomp_plugin.pipeline.stage_options import deep_merge, load_yaml

    n = ck.size['prune_iters']
    return deep_merge(load_yaml(PRUNE_OPTIONS), {
        'name': name, 'num_gpu': 1 if ck.cuda else 0, 'datasets': datasets(ck), 'network_g': ck.outputs['teacher'],
        'path': {'pretrain_network_g': str(ck.outputs['teacher_ckpt'])},
        # Prox-SG for the first N/2 steps, orthant steps after: the resume at N/2 crosses the switch.
        'train': {'total_iter': n, 'optim_g': {'lr': 1e-2, 'lambda_': 5e-2, 'epoch_size': max(1, n // 4), 'Np': 2},
                  'scheduler': {'milestones': [3 * n // 4]}},
        'val': {'val_freq': n},
        'logger': {'print_freq': max(1, n // 4), 'save_checkpoint_freq': n // 2, 'use_tb_logger': False},
    })


def distill_opt(ck, name, train_set=None, **train):
    """The option file ``srcomp compress`` wrote, shortened to the check's iterations.

    ``train_set`` and ``train`` are merged into ``datasets.train`` and ``train``.
    """
    from srcomp_plugin.pipeline.stage_options import deep_merge

    k = ck.size['distill_iters']
    return deep_merge(ck.outputs['distill_opt'], {
        'name': name, 'datasets': {'train': train_set or {}}, 'train': dict(train, total_iter=k),
        'val': {'val_freq': k}, 'logger': {'print_freq': 1, 'save_checkpoint_freq': k}})


def _need(ck, key, part):
    if key not in ck.outputs:
        raise CheckFailed(f'needs the output of {part}, which did not run or failed')
    return ck.outputs[key]


def _last_psnr(log):
    values = re.findall(r'# psnr: ([-\d.naif]+)', log)
    return float(values[-1]) if values else None


# ============================================================================ correctness parts


def _weights_diff(a_path, b_path):
    """(bit-identical?, max |a - b|) over ``params`` and ``params_ema`` of two BasicSR checkpoints."""
    a, b = (torch.load(p, map_location='cpu') for p in (a_path, b_path))
    identical, diff = True, 0.0
    for key in ('params', 'params_ema'):
        for name, tensor in a[key].items():
            identical &= torch.equal(tensor, b[key][name])
            diff = max(diff, float((tensor.float() - b[key][name].float()).abs().max()))
    return identical, diff


def part_stage1_resume(ck):
    n = ck.size['prune_iters']
    ck.train('stage1_full', prune_opt(ck, 'gc_prune_full'))
    ck.train('stage1_first_half', prune_opt(ck, 'gc_prune_resumed'), ['--force_yml', f'train:total_iter={n // 2}'])
    log = ck.train('stage1_resume', prune_opt(ck, 'gc_prune_resumed'), ['--auto_resume'])
    if f'iter: {n // 2}' not in log or 'Resuming training from epoch' not in log:
        raise CheckFailed(f'the second run did not resume from iteration {n // 2}', {'log_tail': log[-3000:]})
    final = f'net_g_{n}.pth'
    identical, diff = _weights_diff(ck.models('gc_prune_full') / final, ck.models('gc_prune_resumed') / final)
    density = json.loads((ck.models('gc_prune_full') / f'sparsity_{n}.json').read_text())
    details = {'iterations': n, 'resumed_at': n // 2, 'bit_identical': identical, 'max_abs_diff': diff,
               'global_density': density['global_density']}
    ck.outputs['sparse_ckpt'] = ck.models('gc_prune_full') / final
    ck.outputs['prune_opt'] = ck.work / 'options' / 'gc_prune_full.yml'
    if identical:
        return f'resumed at {n // 2} of {n}: bit-identical to the uninterrupted run', details
    ck.train('stage1_rerun', prune_opt(ck, 'gc_prune_rerun'))
    _, noise = _weights_diff(ck.models('gc_prune_full') / final, ck.models('gc_prune_rerun') / final)
    details['rerun_max_abs_diff'] = noise
    summary = f'resumed at {n // 2} of {n}: max |diff| {diff:.2e}, an uninterrupted rerun differs by {noise:.2e}'
    if noise == 0 or diff > RERUN_FACTOR * noise:
        raise CheckFailed(summary, details)
    return summary + ' (nondeterministic kernels, not the resume)', details


def part_compress(ck):
    from srcomp_plugin.measure import count_params
    from srcomp_plugin.measure.networks import build_from_opt
    from srcomp_plugin.pipeline.stage_options import load_yaml

    out = ck.work / 'options' / 'gc_distill.yml'
    ck.run('compress', ['-m', 'srcomp_plugin.cli', 'compress', '-opt', _need(ck, 'prune_opt', 'stage1_resume'),
                        '--checkpoint', ck.outputs['sparse_ckpt'], '--ratio', ck.size['ratio'], '--out', out,
                        '--total-iter', ck.size['distill_iters'], '--force'])
    opt = load_yaml(out)
    ck.outputs['distill_opt'] = opt
    student = opt['network_g']
    params = count_params(build_from_opt(dict(student)))
    teacher = count_params(build_from_opt(dict(ck.outputs['teacher'])))
    # compress's default recipe decides stage 3's losses and initialisation: recorded, not chosen here.
    details = {'student': dict(student), 'student_params': params, 'teacher_params': teacher,
               'stage3_losses': {k: dict(v) for k, v in opt['train'].items() if k.endswith('_opt') and v},
               'student_init': opt['path'].get('pretrain_network_g')}
    if params >= teacher:
        raise CheckFailed(f'the student ({params:,} params) is not smaller than the teacher ({teacher:,})', details)
    return f'{student["type"]} student, {params:,} params ({params / teacher:.1%} of the teacher)', details


def _distill(ck, label, name, torchrun=False, **changes):
    _need(ck, 'distill_opt', 'compress')
    log = ck.train(label, distill_opt(ck, name, **changes), torchrun=torchrun)
    ckpt = ck.models(name) / 'net_g_latest.pth'
    if not ckpt.is_file():
        raise CheckFailed(f'{ckpt} was not written', {'log_tail': log[-3000:]})
    psnr = _last_psnr(log)
    details = {'iterations': ck.size['distill_iters'], 'val_psnr': psnr, 'checkpoint': str(ckpt)}
    if psnr is None or psnr != psnr:
        raise CheckFailed(f'no finite validation PSNR in the log (got {psnr})', details)
    return ckpt, psnr, details


def part_distill_fp32(ck):
    ckpt, psnr, details = _distill(ck, 'distill_fp32', 'gc_distill_fp32')
    ck.outputs['student_ckpt'] = ckpt
    return f'live float32 teacher, {details["iterations"]} iterations, val PSNR {psnr:.2f} dB', details


def part_distill_bf16(ck):
    _, psnr, details = _distill(ck, 'distill_bf16', 'gc_distill_bf16', teacher_precision='bf16',
                                teacher_channels_last=True)
    return f'bf16 + channels_last teacher, val PSNR {psnr:.2f} dB', details


def part_distill_cache(ck):
    cache = ck.work / 'teacher_cache'
    _, psnr, details = _distill(ck, 'distill_cache', 'gc_distill_cache', teacher_cache={'format': 'png'},
                                train_set={'type': 'DistillPairedImageDataset', 'dataroot_teacher': str(cache)})
    files = len(list(cache.rglob('*.png')))
    details['cached_images'] = files
    if files == 0:
        raise CheckFailed(f'no cached teacher images in {cache}', details)
    return f'teacher cache of {files} images, val PSNR {psnr:.2f} dB', details


def part_distill_ddp(ck):
    _, psnr, details = _distill(ck, 'distill_ddp', 'gc_distill_ddp', torchrun=True)
    backend = 'nccl' if ck.cuda else 'gloo'
    return f'torchrun --nproc_per_node=1 --launcher pytorch ({backend}), val PSNR {psnr:.2f} dB', details


def part_test(ck):
    from srcomp_plugin.pipeline.stage_options import save_yaml
    from srcomp_plugin.utils.test_results import newest_metrics

    opt = {'name': 'gc_test', 'model_type': 'SRModel', 'scale': SCALE, 'num_gpu': 1 if ck.cuda else 0,
           'manual_seed': 0, 'datasets': {'test_1': dict(datasets(ck)['val'], type='PairedImageDataset',
                                                         io_backend={'type': 'disk'})},
           'network_g': _need(ck, 'distill_opt', 'compress')['network_g'],
           'path': {'pretrain_network_g': str(_need(ck, 'student_ckpt', 'distill_fp32')), 'param_key_g': 'params_ema',
                    'strict_load_g': True},
           'val': {'save_img': False, 'suffix': None, 'metrics': {
               'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True},
               'ssim': {'type': 'calculate_ssim', 'crop_border': SCALE, 'test_y_channel': True}}}}
    path = ck.work / 'options' / 'gc_test.yml'
    save_yaml(path, opt)
    ck.run('test', ['-m', 'srcomp_plugin.test', '-opt', path])
    scores = next(iter(newest_metrics(ck.work / 'results' / 'gc_test').values()))
    return f'Y-PSNR {scores["psnr"]:.2f} dB, SSIM {scores["ssim"]:.4f} on the held-out photos', {'scores': scores}


def part_export(ck):
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ('onnx', 'onnxruntime')):
        raise Skipped('onnx not installed')
    out = ck.work / 'student.onnx'
    text = ck.run('export', ['-m', 'srcomp_plugin.cli', 'export', '-opt', ck.work / 'options' / 'gc_distill_fp32.yml',
                             '--checkpoint', _need(ck, 'student_ckpt', 'distill_fp32'), '--format', 'onnx',
                             '--output', out, '--json'], stdout_only=True)
    result = json.loads(text)
    diff = max(row['max_abs_diff'] for row in result['checks'])
    details = {'checks': result['checks'], 'max_abs_diff': diff, 'bytes': result['bytes']}
    return f'ONNX ({result["bytes"] / 1024:.0f} KiB) vs PyTorch: max |diff| {diff:.1e}', details


@contextlib.contextmanager
def exact_float32():
    """No TF32 in CUDA convolutions and matmuls (cuDNN's default allows it), so float32 paths compare closely."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def part_fused_paths(ck):
    """The fused forwards (CPU-only oneDNN paths, SDPA attention) against BasicSR's own on the device."""
    import inference

    diffs = {}
    for name in ('EDSRmini', 'SwinIRmini'):
        fused, _, _ = inference.build(name, SCALE)
        eager, _, _ = inference.build(name, SCALE, eager=True)
        x = inference.lr_input(fused, SCALE, (48, 80)).to(ck.device)
        with torch.inference_mode(), exact_float32():
            diffs[name] = float((fused.to(ck.device)(x) - eager.to(ck.device)(x)).abs().max())
    details = {'max_abs_diff': diffs, 'atol': FUSED_ATOL}
    summary = ', '.join(f'{k} {v:.1e}' for k, v in diffs.items())
    if max(diffs.values()) > FUSED_ATOL:
        raise CheckFailed(f'fused vs BasicSR forward differ by more than {FUSED_ATOL}: {summary}', details)
    return f'fused vs BasicSR forward, max |diff|: {summary}', details


# ============================================================================ speed parts


def timed(ck, fn):
    """Median and min seconds of ``fn()`` after warm-up (CUDA events on CUDA), and its peak memory in MB."""
    if ck.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(ck.size['warmup']):
        fn()
    times = []
    for _ in range(ck.size['repeats']):
        if ck.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if ck.cuda else 'n/a'
    return {'median_s': statistics.median(times), 'min_s': min(times), 'peak_mem_mb': peak}


def _variants(ck, net, x):
    """name -> callable: float32, bf16 autocast, channels_last (network and input)."""
    import copy

    net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def bf16(inp):
        with torch.autocast(ck.device.type, dtype=torch.bfloat16):
            return net(inp)

    return {'fp32': lambda: net(x), 'bf16': lambda: bf16(x), 'channels_last': lambda: net_cl(x_cl)}


def _speed_rows(ck, batch, variants):
    """Time every test-option network on a batch of ``batch`` LR inputs in each of ``variants``."""
    import inference

    rows = []
    for name in inference.OPTIONS:
        net, option_file, _ = inference.build(name, SCALE)
        net = net.to(ck.device)
        x = inference.lr_input(net, SCALE, ck.size['out_hw']).repeat(batch, 1, 1, 1).to(ck.device)
        cases = _variants(ck, net, x)
        for variant in variants:
            with torch.inference_mode():
                t = timed(ck, cases[variant])
            rows.append({'network': name, 'option_file': option_file, 'variant': variant, 'batch': batch,
                         'images_per_s': batch / t['median_s'], **t})
        del net, x, cases
        if ck.cuda:
            torch.cuda.empty_cache()
    return rows


def _mem(row):
    return f'{row["peak_mem_mb"]:.0f} MB' if isinstance(row['peak_mem_mb'], float) else 'n/a'


def part_latency(ck):
    rows = _speed_rows(ck, 1, ('fp32', 'bf16', 'channels_last'))
    print(common.format_table(['network', 'variant', 'median ms', 'min ms', 'peak memory'],
                              [[r['network'], r['variant'], f'{1e3 * r["median_s"]:.2f}', f'{1e3 * r["min_s"]:.2f}',
                                _mem(r)] for r in rows]), flush=True)
    fp32 = {r['network']: 1e3 * r['median_s'] for r in rows if r['variant'] == 'fp32'}
    hw = 'x'.join(map(str, ck.size['out_hw']))
    return f'{hw} x{SCALE}, fp32 ms: ' + ', '.join(f'{k} {v:.1f}' for k, v in fp32.items()), {
        'out_hw': list(ck.size['out_hw']), 'rows': rows}


def part_throughput(ck):
    batch = ck.size['throughput_batch']
    rows = _speed_rows(ck, batch, ('fp32', 'bf16'))
    print(common.format_table(['network', 'variant', 'batch', 'images/s', 'peak memory'],
                              [[r['network'], r['variant'], batch, f'{r["images_per_s"]:.1f}', _mem(r)] for r in rows]),
          flush=True)
    best = {r['network']: r['images_per_s'] for r in rows if r['variant'] == 'bf16'}
    return f'batch {batch}, bf16 images/s: ' + ', '.join(f'{k} {v:.1f}' for k, v in best.items()), {'rows': rows}


def part_kd_step(ck):
    import kd_step

    if ck.cuda:
        torch.cuda.empty_cache()  # the workers need the memory this process cached
    tables, lines = {}, []
    for student in ck.size['kd_students']:
        out = ck.work / f'kd_step_{student}.json'
        code = kd_step.main(['--student', student, '--device', ck.device.type, *ck.size['kd_args'], '--json', str(out)])
        if code != 0:
            raise CheckFailed(f'benchmarks/kd_step.py --student {student} exited {code}', {'tables': tables})
        tables[student] = json.loads(out.read_text())
        ms = {row['mode']: row['step_ms_median'] for row in tables[student]['rows']}
        lines.append(f'{student} kd {ms["kd"]:.1f} / kd_cached {ms["kd_cached"]:.1f} / sr {ms["sr"]:.1f} ms')
    return '; '.join(lines), {'tables': tables}


PARTS = {
    'stage1_resume': ('correctness', part_stage1_resume),
    'compress': ('correctness', part_compress),
    'distill_fp32': ('correctness', part_distill_fp32),
    'distill_bf16': ('correctness', part_distill_bf16),
    'distill_cache': ('correctness', part_distill_cache),
    'distill_ddp': ('correctness', part_distill_ddp),
    'test': ('correctness', part_test),
    'export': ('correctness', part_export),
    'fused_paths': ('correctness', part_fused_paths),
    'latency': ('speed', part_latency),
    'throughput': ('speed', part_throughput),
    'kd_step': ('speed', part_kd_step),
}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', choices=('cuda', 'cpu'), default='cuda')
    parser.add_argument('--smoke', action='store_true', help='every part tiny (CI on the CPU, about a minute)')
    parser.add_argument('--parts', nargs='+', choices=list(PARTS), default=list(PARTS),
                        help='run only these parts (later ones need the outputs of earlier ones)')
    parser.add_argument('--out', default=str(common.RESULTS_DIR / 'gpu_check.json'), help='the JSON record')
    parser.add_argument('--work', help='work folder, kept (default: a temporary one, removed)')
    parser.add_argument('--command-timeout', type=int, default=180, metavar='S',
                        help='kill a stage command (and its children) after S seconds (default 180)')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: CUDA is not available; use --device cpu [--smoke]', file=sys.stderr)
        return 2
    import srcomp_plugin  # noqa: F401  (registers the plugin's archs, models and losses)

    temporary = None if args.work else tempfile.mkdtemp(prefix='srcomp_gpu_check_')
    args.work = args.work or temporary
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True  # as BasicSR's train/test scripts set it
    start = time.perf_counter()
    ck = Check(args)
    ck.work.mkdir(parents=True, exist_ok=True)
    print(f'[gpu_check] {ck.machine.get("gpu", ck.machine["cpu"])}, device {ck.device}, '
          f'{"smoke" if args.smoke else "full"} sizes, work folder {ck.work}', flush=True)
    try:
        prepare(ck)
        for name in args.parts:
            kind, fn = PARTS[name]
            ck.record(name, kind, fn)
    finally:
        ck.machine = common.finish_info(ck.machine)
        ck.machine['wall_s'] = round(time.perf_counter() - start, 1)
        ck.save(finished=True)
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    failed = [name for name, r in ck.records.items() if r['status'] == 'failed']
    print(f'[gpu_check] {ck.machine["wall_s"]:.0f} s; failed: {", ".join(failed) or "none"}; JSON: {args.out}')
    return 1 if any(ck.records[name]['kind'] == 'correctness' for name in failed) else 0


if __name__ == '__main__':
    sys.exit(main())
