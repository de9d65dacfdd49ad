"""A training run trains exactly ``train.total_iter`` iterations, and never zero.

BasicSR 1.4.2 counts iterations per epoch as ``ceil(samples / batch)`` while its training
loader drops the last partial batch: on a small dataset the epoch count comes out too low
(``total_iter: 40`` with 6 images and batch 4 trained 21 iterations). A training set with
fewer samples than one batch gives an empty loader: the loop trains nothing and still saves
``net_g_latest.pth``. :func:`check_trainable` stops such a run before any folder is made;
:func:`exact_epochs` takes the epoch count from the loader's real length.
"""
import copy
import math

from .safe_yaml import OptionFileError


def batches_per_epoch(num_images, dataset_opt, opt):
    """Full batches per epoch and rank, as BasicSR's sampler and ``drop_last`` loader give them."""
    samples = math.ceil(num_images * dataset_opt.get('dataset_enlarge_ratio', 1) / opt['world_size'])
    batch = dataset_opt['batch_size_per_gpu'] * (1 if opt['dist'] or not opt['num_gpu'] else opt['num_gpu'])
    return samples // batch, samples, batch


def check_trainable(opt, where):
    """Raise :class:`OptionFileError` when the parsed ``opt``'s training set gives no full batch."""
    from basicsr.utils.registry import DATASET_REGISTRY

    from ..data.dataset_checks import check_dataset

    dataset_opt = opt['datasets']['train']
    if 'batch_size_per_gpu' not in dataset_opt:
        raise OptionFileError(f'{where}: datasets.train.batch_size_per_gpu is missing')
    check_dataset(dataset_opt)
    # the class itself, not basicsr.data.build_dataset: its log call would set up BasicSR's
    # logger before train_pipeline gives it the log file, and the run would log nothing
    num_images = len(DATASET_REGISTRY.get(dataset_opt['type'])(copy.deepcopy(dataset_opt)))
    batches, samples, batch = batches_per_epoch(num_images, dataset_opt, opt)
    if batches == 0:
        raise OptionFileError(
            f'{where}: datasets.train gives no full batch: {num_images} image(s) x dataset_enlarge_ratio '
            f'{dataset_opt.get("dataset_enlarge_ratio", 1)} = {samples} sample(s) per process, fewer than the batch '
            f'of {batch} (batch_size_per_gpu); the loader drops partial batches, so no iteration would run. Lower '
            'batch_size_per_gpu or raise dataset_enlarge_ratio.')


def exact_epochs(create_train_val_dataloader):
    """Wrap BasicSR's ``create_train_val_dataloader`` so that ``total_epochs`` covers ``total_iter``."""

    def create_exact_train_val_dataloader(opt, logger):
        train_loader, train_sampler, val_loaders, total_epochs, total_iters = create_train_val_dataloader(opt, logger)
        per_epoch = len(train_loader)
        if per_epoch == 0:  # check_trainable catches this first when run through the entry point
            raise OptionFileError('datasets.train gives no full batch: no iteration would run')
        exact = math.ceil(total_iters / per_epoch)
        if exact != total_epochs:
            logger.info(f'Iterations per epoch: {per_epoch} (the loader drops the last partial batch), so '
                        f'{exact} epochs for {total_iters} iterations.')
        return train_loader, train_sampler, val_loaders, exact, total_iters

    return create_exact_train_val_dataloader


def install():
    """Make BasicSR's ``train_pipeline`` use :func:`exact_epochs` (idempotent)."""
    import basicsr.train as bsr_train

    if bsr_train.create_train_val_dataloader.__name__ != 'create_exact_train_val_dataloader':
        bsr_train.create_train_val_dataloader = exact_epochs(bsr_train.create_train_val_dataloader)
