#!/usr/bin/env bash
# On the offline GPU machine, from the repository root, after build_wheels.sh ran elsewhere:
#
#   bash benchmarks/gpu/run_check.sh [gpu_check.py options, e.g. --out FILE]
#
# Installs from benchmarks/gpu/wheels/ only what this Python cannot import, into a folder of
# its own put on PYTHONPATH with the checkout (srcomp_plugin is imported from the checkout):
# nothing of the machine's installation is replaced and no package index is asked. Then runs
# benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/srcomp_gpu_site}
WHEELS=benchmarks/gpu/wheels

if ! "$PYTHON" -c 'import distutils' 2>/dev/null; then
    echo "run_check: BasicSR imports distutils, which Python 3.12 has only through setuptools: install setuptools" >&2
    exit 1
fi
install=()
for wheel in "$WHEELS"/*.whl; do
    name=$(basename "$wheel")
    name=${name%%-*}
    if ! "$PYTHON" -c "import $name" 2>/dev/null; then
        install+=("$wheel")
    fi
done
rm -rf "$SITE"
mkdir -p "$SITE"
if [ ${#install[@]} -gt 0 ]; then
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" "${install[@]}"
fi
echo "run_check: installed ${#install[@]} wheels into $SITE: ${install[*]##*/}"
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
