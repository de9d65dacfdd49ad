#!/usr/bin/env bash
# Build, where a package index is reachable, the Python 3.12 wheels that the offline GPU machine
# lacks, into benchmarks/gpu/wheels/ (git-ignored; passed to the device run as a carried path):
#
#   PYTHON=python3.12 bash benchmarks/gpu/build_wheels.sh
#
# The GPU machine is assumed to hold only torch, torchvision, opencv, scikit-image (scipy,
# numpy, pillow, imageio), onnx/onnxruntime, pyyaml and tensorboard (which brings setuptools,
# whose distutils BasicSR imports). Missing there, and needed at run time:
#   basicsr 1.4.2  a source package: built here into a pure-Python wheel (BASICSR_EXT unset, so
#                  no CUDA extension is compiled; its setup_requires make pip fetch torch, cython
#                  and numpy into the throw-away build environment, once);
#   lmdb, addict   imported by BasicSR's data and option code;
#   tqdm, requests (+ urllib3, idna, certifi, charset_normalizer)  imported by BasicSR at import.
# yapf and future, also in BasicSR's requirements, are never imported and are left out.
# srcomp_plugin itself is not built: the checkout travels to the GPU machine, and run_check.sh
# imports it from there (srcomp compress reads options/distill/ beside the package; a wheel
# would also be a stale copy).
# run_check.sh installs on the GPU machine only those of these its Python cannot import.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3.12}
OUT=benchmarks/gpu/wheels
RUNTIME=(lmdb addict tqdm requests urllib3 idna certifi charset_normalizer)

"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 12), f"need Python 3.12, got {sys.version}"'
rm -rf "$OUT"
mkdir -p "$OUT"
env -u BASICSR_EXT "$PYTHON" -m pip wheel --no-deps --wheel-dir "$OUT" basicsr==1.4.2
"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux2014_x86_64 --dest "$OUT" "${RUNTIME[@]}"
if unzip -l "$OUT"/basicsr-*.whl | grep -q '\.so$'; then
    echo "build_wheels: the basicsr wheel holds a compiled extension; unset BASICSR_EXT and rebuild" >&2
    exit 1
fi
ls -l "$OUT"
du -sh "$OUT"
