"""Every change srcomp makes to BasicSR 1.4.2's behaviour, with its reason, in one list.

``import srcomp_plugin`` changes nothing in BasicSR beyond the torchvision alias it needs to
import at all (:mod:`srcomp_plugin.compat`) and the plugin's classes in BasicSR's registries.
The entry points (``python -m srcomp_plugin.train`` / ``.test`` and the ``srcomp`` command)
call :func:`install`, which replaces the names below inside BasicSR's modules (never a file
in site-packages). A script of your own that calls BasicSR's ``train_pipeline`` gets the same
behaviour by calling ``srcomp_plugin.basicsr_patches.install()`` first. Where CUDA is present,
the CPU fallbacks defer to BasicSR's own code.
"""
from .data import dataset_checks
from .models import safe_sr_model
from .utils import (cpu_support, exact_resume, option_checks, registry_errors, safe_yaml, test_progress,
                    test_results, training_length)

# (module whose install() applies it, what it replaces, why)
PATCHES = (
    (safe_yaml, 'basicsr.utils.options.ordered_yaml',
     "BasicSR parses option files with a loader that builds any Python object a YAML tag names; option files "
     "are shared like checkpoints, so they are parsed as plain data"),
    (option_checks, 'parse_options in basicsr.train / basicsr.test',
     'a missing section, a quoted scale, total_iter < 1 or a name that is a path are errors naming the option, '
     'before any folder is made or renamed'),
    (cpu_support, 'basicsr.utils.options.init_dist, BaseModel.model_to_device, basicsr.train.load_resume_state',
     'BasicSR assumes CUDA for distributed training and resume; on CPU, gloo, DDP without device ids and a '
     'CPU-mapped resume state that loads with weights_only=True; the process group is destroyed at exit; on '
     "resume the teacher (network_t) keeps its checkpoint and param key: BasicSR would point it at models/, "
     'where it is never saved'),
    (exact_resume, 'basicsr.train.EnlargedSampler',
     '--auto_resume continues mid-epoch with the same data order, so an interrupted run ends bit-identical'),
    (training_length, 'basicsr.train.create_train_val_dataloader',
     "BasicSR's epoch arithmetic trains more or fewer than total_iter iterations on small datasets, and zero "
     'on a dataset smaller than one batch without a word'),
    (safe_sr_model, 'build_model in basicsr.train / basicsr.test',
     'model_type SRModel gets what the plugin models have: atomic checkpoints, exact resume, explained '
     'checkpoint-shape errors'),
    (registry_errors, 'get() of the arch, model, loss, dataset and metric registries',
     'an unknown type: names the option, suggests the closest registered names'),
    (test_progress, 'parse_options in basicsr.test (after the option checks)',
     'a per-image progress bar while testing (val.pbar defaults to true), instead of minutes of silence'),
    (test_results, 'BaseModel.validation (in the test pipeline only)',
     'the test pipeline also writes its metrics and the options they depend on as JSON beside its log, so '
     'srcomp report and the benchmarks read numbers, not log text'),
    (dataset_checks, 'build_dataset in basicsr.train / basicsr.test, PairedImageDataset.__getitem__',
     'missing or empty folders, unpaired names, wrong LR sizes and unreadable images are named before '
     'training (or when read), not a NoneType crash mid-run'),
)


def install():
    """Apply every patch of :data:`PATCHES` (idempotent)."""
    for module, _, _ in PATCHES:
        module.install()
