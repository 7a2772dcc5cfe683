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
"$VENV/bin/python" - <<'PYEOF'
import importlib.util, os
print(os.path.dirname(importlib.util.find_spec("torch").origin))
PYEOF
