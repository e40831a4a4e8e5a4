#!/usr/bin/env bash
# A real Triton Inference Server 2.51 (CPU, Python backend) for the tests and benchmarks, from the
# nvidia-pytriton wheel, in a virtual environment of its own. Idempotent: a second run only checks.
#
#   bash scripts/triton_env.sh            # prints the environment folder on its last line
#
# Why a venv of its own: Triton's Python-backend stub embeds the system libpython and imports from
# the site-packages of the first `python3` on PATH (it ignores PYTHONPATH), and it was built against
# numpy 1.x, so Triton gets numpy<2, ONNX Runtime, OpenVINO and this project there and that venv's bin first
# on its PATH. The folder is $SHIPYARD_TRITON_ENV (default ~/.cache/shipyard/triton-env).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
env_dir="${SHIPYARD_TRITON_ENV:-${SHIPYARD_CACHE:-$HOME/.cache/shipyard}/triton-env}"
python="${PYTHON:-python3}"
want="nvidia-pytriton==0.7.0 numpy<2 onnxruntime openvino onnx tokenizers pillow safetensors rich repo=$repo"
pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"

if [[ -f "$env_dir/.shipyard-triton" && "$(cat "$env_dir/.shipyard-triton")" == "$want" ]]; then
  echo "$env_dir"
  exit 0
fi
"$python" -m venv "$env_dir"
pip=("$env_dir/bin/python" -m pip install -q --disable-pip-version-check)
# the wheel's own pins (pyzmq, typer, tritonclient…) are for its Python API, which we do not use
"${pip[@]}" --no-deps "nvidia-pytriton==0.7.0"
"${pip[@]}" "numpy<2" onnxruntime openvino onnx tokenizers pillow safetensors rich
"${pip[@]}" --no-deps -e "$repo"

site="$("$env_dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
server="$site/pytriton/tritonserver"
stub="$server/python_backend_stubs/$pyver/triton_python_backend_stub"
[[ -f "$stub" ]] || { echo "nvidia-pytriton has no Python-backend stub for Python $pyver" >&2; exit 1; }
# the stub embeds libpython of that version from the system (Debian/Ubuntu: libpython3.X)
missing="$(LD_LIBRARY_PATH="$site/nvidia_pytriton.libs" ldd "$stub" | grep "not found" || true)"
[[ -z "$missing" ]] || { echo "Triton's Python-backend stub cannot run here: $missing (apt-get install libpython$pyver)" >&2; exit 1; }
# copy then rename: a Triton still running from this environment keeps the old file open
cp "$stub" "$server/backends/python/triton_python_backend_stub.new"
mv -f "$server/backends/python/triton_python_backend_stub.new" "$server/backends/python/triton_python_backend_stub"
chmod +x "$server/backends/python/triton_python_backend_stub" "$server/bin/tritonserver"
# --help exits 1 even when it works; what matters is that the binary finds its libraries and runs
usage="$(LD_LIBRARY_PATH="$site/nvidia_pytriton.libs" "$server/bin/tritonserver" --help 2>&1 || true)"
grep -q -- "--model-repository" <<<"$usage" || { echo "tritonserver does not run: $usage" >&2; exit 1; }
echo "$want" > "$env_dir/.shipyard-triton"
echo "$env_dir"
