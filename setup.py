"""Install srcomp_plugin: ``pip install -e '.[test]'`` (see README.md)."""
from setuptools import find_packages, setup

setup(
    name='srcomp_plugin',
    version='0.1.0',
    license='MIT',
    description='Compress deep super-resolution models (EDSRmini, SwinIRmini) as a BasicSR plugin',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['srcomp_plugin', 'srcomp_plugin.*']),
    # the demo's stand-in teacher (options/teacher/train_EDSR_f64b8_x2_demo.yml), 3 MB
    package_data={'srcomp_plugin': ['weights/*.pth']},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.6',  # torch.load(weights_only=True) with torch.serialization.safe_globals
        'torchvision',
        'basicsr>=1.4.2',
        'lmdb',
        'opencv-python',
        'numpy',
        'pyyaml',
        'tb-nightly',
        'matplotlib',  # srcomp report's plots
        'Pillow',  # image headers in the dataset checks
        'scikit-image',  # the demo's photographs
        'tqdm',  # progress bars
    ],
    extras_require={
        # the ONNX export and the Torch-Pruning peer arm of the quality benchmark are checked in CI too
        'test': ['pytest', 'onnx', 'onnxruntime', 'torch-pruning'],
        'onnx': ['onnx', 'onnxruntime'],
        'bench': ['torch-pruning'],  # benchmarks/torch_pruning_arm.py; the plugin never imports it
    },
    entry_points={'console_scripts': ['srcomp=srcomp_plugin.cli:main']},
)
