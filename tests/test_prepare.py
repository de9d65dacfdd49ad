"""``srcomp prepare``: the HR/LR layout, MATLAB bicubic, conversions and safety."""
import cv2
import numpy as np
import pytest

import srcomp_plugin  # noqa: F401
from basicsr.utils.matlab_functions import imresize
from helpers import photo, run_module, shared_dataset, tiny_train_opt, write_opt
from srcomp_plugin.data.prepare import PrepareError, prepare_dataset


@pytest.fixture
def photo_dir(tmp_path):
    folder = tmp_path / 'hr'
    folder.mkdir()
    for name, size in (('astronaut', (100, 77)), ('coffee', (61, 90))):
        cv2.imwrite(str(folder / f'{name}.png'), photo(name)[:size[0], :size[1]])
    return folder


def test_layout_and_bicubic_equal_basicsr_imresize(photo_dir, tmp_path):
    out = tmp_path / 'out'
    summary = prepare_dataset(photo_dir, out, scales=(2, 3, 4), progress=False)
    assert summary['images'] == 2
    for name in ('astronaut', 'coffee'):
        src = cv2.imread(str(photo_dir / f'{name}.png'))
        hr = cv2.imread(str(out / 'HR' / f'{name}.png'))
        h, w = (src.shape[0] // 12) * 12, (src.shape[1] // 12) * 12
        assert hr.shape == (h, w, 3)
        np.testing.assert_array_equal(hr, src[:h, :w])
        for s in (2, 3, 4):
            lr = cv2.imread(str(out / 'LR_bicubic' / f'X{s}' / f'{name}x{s}.png'))
            ref = np.clip(np.round(imresize(hr / 255., 1 / s) * 255.), 0, 255).astype(np.uint8)
            assert lr.shape == (h // s, w // s, 3)
            np.testing.assert_array_equal(lr, ref)
    meta = (out / 'meta_info_HR.txt').read_text().split('\n')
    assert meta[0] == 'astronaut.png (96,72,3)'


def test_reproduces_published_set5_lr(tmp_path):
    set5 = shared_dataset('Set5')
    out = tmp_path / 'benchmark'
    prepare_dataset(set5 / 'HR', out, scales=(2, 3, 4), benchmark=True, progress=False)
    for s in (2, 3, 4):
        for published in sorted((set5 / 'LR_bicubic' / f'X{s}').glob('*.png')):
            ours = cv2.imread(str(out / 'LR_bicubic' / f'X{s}' / published.name)).astype(int)
            theirs = cv2.imread(str(published)).astype(int)
            assert ours.shape == theirs.shape, published.name
            assert np.abs(ours - theirs).max() <= 2, published.name
    for hr in (set5 / 'HR').glob('*.png'):  # HR kept as distributed
        np.testing.assert_array_equal(cv2.imread(str(out / 'HR' / hr.name)), cv2.imread(str(hr)))


def test_gray_rgba_16bit_and_unreadable_inputs(tmp_path):
    folder = tmp_path / 'hr'
    folder.mkdir()
    rgb = photo('astronaut')[:48, :48]
    gray = cv2.cvtColor(rgb, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / 'gray.png'), gray)
    cv2.imwrite(str(folder / 'rgba.png'), np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / 'deep.png'), rgb.astype(np.uint16) * 257)
    (folder / 'broken.png').write_bytes(b'not a png')
    out = tmp_path / 'out'
    summary = prepare_dataset(folder, out, scales=(2, ), progress=False)
    assert summary['images'] == 3
    assert set(summary['unreadable']) == {'broken.png'} and 'broken.png' in summary['unreadable']['broken.png']
    assert summary['converted'] == {'gray.png': ['grayscale -> 3 channels'], 'rgba.png': ['alpha channel dropped'],
                                    'deep.png': ['16-bit -> 8-bit']}
    np.testing.assert_array_equal(cv2.imread(str(out / 'HR' / 'deep.png')), rgb)
    np.testing.assert_array_equal(cv2.imread(str(out / 'HR' / 'rgba.png')), rgb)
    g = cv2.imread(str(out / 'HR' / 'gray.png'), cv2.IMREAD_UNCHANGED)
    assert g.shape == (48, 48, 3) and (g[..., 0] == gray).all() and (g[..., 2] == gray).all()


def test_never_overwrites_existing_output(photo_dir, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'precious.txt').write_text('keep me')
    with pytest.raises(PrepareError, match='already exists'):
        prepare_dataset(photo_dir, out, scales=(2, ), progress=False)
    assert (out / 'precious.txt').read_text() == 'keep me'
    prepare_dataset(photo_dir, out, scales=(2, ), archive_existing=True, progress=False)
    archived = list(tmp_path.glob('out_archived_*'))
    assert len(archived) == 1 and (archived[0] / 'precious.txt').read_text() == 'keep me'
    assert (out / 'HR' / 'astronaut.png').is_file()


def test_sub_images_and_lmdb(photo_dir, tmp_path):
    out = tmp_path / 'out'
    prepare_dataset(photo_dir, out, scales=(2, ), mod=2, sub_images=True, crop_size=40, step=20, lmdb=True,
                    progress=False)
    hr_tiles = sorted((out / 'HR_sub').glob('astronaut_s*.png'))
    lr_tiles = sorted((out / 'LR_bicubic' / 'X2_sub').glob('astronaut_s*.png'))
    assert len(hr_tiles) == len(lr_tiles) == 4 * 3  # 100x76 HR: rows 0,20,40,60; cols 0,20,36
    assert [p.name for p in hr_tiles] == [p.name for p in lr_tiles]  # filename_tmpl '{}'
    hr = cv2.imread(str(out / 'HR' / 'astronaut.png'))
    lr = cv2.imread(str(out / 'LR_bicubic' / 'X2' / 'astronaut.png'.replace('.png', 'x2.png')))
    np.testing.assert_array_equal(cv2.imread(str(hr_tiles[-1])), hr[60:100, 36:76])
    np.testing.assert_array_equal(cv2.imread(str(lr_tiles[-1])), lr[30:50, 18:38])
    meta = (out / 'HR_sub.lmdb' / 'meta_info.txt').read_text()
    assert 'astronaut_s001.png (40,40,3) 1' in meta
    assert (out / 'LR_bicubic' / 'X2_sub.lmdb' / 'data.mdb').is_file()


@pytest.mark.parametrize('sub_images', [False, True], ids=['full', 'sub_images'])
def test_every_lmdb_trains_as_written(sr_dataset, tmp_path, sub_images):
    """The LMDB copies pair as BasicSR pairs them (identical keys): training reads them as they are."""
    out = tmp_path / 'lmdb_data'
    prepare_dataset(sr_dataset['root'] / 'train_src', out, scales=(2, ), sub_images=sub_images, crop_size=48,
                    step=48, lmdb=True, progress=False)
    suffix = '_sub' if sub_images else ''
    data = dict(sr_dataset, train_gt=out / f'HR{suffix}.lmdb', train_lq_x2=out / 'LR_bicubic' / f'X2{suffix}.lmdb')
    opt = tiny_train_opt(data, 'lmdb_run', total_iter=2)
    opt['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'opt.yml', opt)], cwd=tmp_path)
    assert (tmp_path / 'experiments' / 'lmdb_run' / 'models' / 'net_g_latest.pth').is_file()


def test_lmdb_keys_that_do_not_pair_are_named(sr_dataset, tmp_path):
    """An LMDB keyed like the LR file names (``<name>x2``, as srcomp prepare once wrote) is refused before training."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    lq = sr_dataset['train_lq_x2']
    names = sorted(p.name for p in lq.glob('*.png'))
    make_lmdb_from_imgs(str(lq), str(tmp_path / 'X2.lmdb'), names, [n[:-4] for n in names], n_thread=1)
    prepare_dataset(sr_dataset['root'] / 'train_src', tmp_path / 'hr', scales=(2, ), lmdb=True, progress=False)
    data = dict(sr_dataset, train_gt=tmp_path / 'hr' / 'HR.lmdb', train_lq_x2=tmp_path / 'X2.lmdb')
    opt = tiny_train_opt(data, 'lmdb_bad', total_iter=2)
    opt['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    proc = run_module('srcomp_plugin.train', ['-opt', write_opt(tmp_path / 'opt.yml', opt)], cwd=tmp_path,
                      check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert 'the LMDB keys of dataroot_gt and dataroot_lq differ' in proc.stderr and "'astronautx2'" in proc.stderr


def test_cli_reports_missing_folder(tmp_path):
    proc = run_module('srcomp_plugin.cli', ['prepare', '--hr', tmp_path / 'nope', '--out', tmp_path / 'o'],
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'nope' in proc.stderr and 'does not exist' in proc.stderr
