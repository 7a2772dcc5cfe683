#!/usr/bin/env bash
# Installs libtorch (from the PyPI torch wheel and its nvidia-* runtime wheels) into a per-user cache
# keyed by version, so every clone and CI run on this machine reuses one copy. Prints the directory
# to use as LIBTORCH. Idempotent: a finished install is detected and left alone.
set -euo pipefail
TORCH_VERSION="${FINETUNE_TORCH_VERSION:-2.11.0}"
CACHE="${FINETUNE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/finetune}"
VENV="$CACHE/torch-$TORCH_VERSION"
PY="${PYTHON:-python3}"

have_torch() {
  [ -x "$VENV/bin/python" ] && [ -f "$VENV/.finetune-complete" ] &&
    "$VENV/bin/python" - "$TORCH_VERSION" >/dev/null 2>&1 <<'PYEOF'
import sys, importlib.metadata as m
assert m.version("torch").split("+")[0] == sys.argv[1]
PYEOF
}

if ! have_torch; then
  echo "setup-libtorch: installing torch==$TORCH_VERSION into $VENV (one time, ~5 GB)" >&2
  mkdir -p "$CACHE"
  # A lock so parallel clones do not install into the same venv at once.
  exec 9>"$CACHE/.torch-$TORCH_VERSION.lock"
  flock 9
  if ! have_torch; then
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -q "torch==$TORCH_VERSION" >&2
    touch "$VENV/.finetune-complete"
  fi
fi
# The CUDA runtime wheel ships its headers without crt/ (a wheel of its own since CUDA 13); the
# CUDA-graph part of csrc/torch_ext.cpp needs both. Checked apart from the marker, so caches made
# before it was added get it too.
rt=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("nvidia-cuda-runtime"))' 2>/dev/null || true)
if [ -n "$rt" ] && ! "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("nvidia-cuda-crt")' 2>/dev/null; then
  exec 9>"$CACHE/.torch-$TORCH_VERSION.lock"
  flock 9
  "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps "nvidia-cuda-crt==${rt%.*}.*" >&2 ||
    echo "setup-libtorch: could not install nvidia-cuda-crt; the build will have no CUDA graphs" >&2
fi
"$VENV/bin/python" - <<'PYEOF'
import importlib.util, os
print(os.path.dirname(importlib.util.find_spec("torch").origin))
PYEOF
