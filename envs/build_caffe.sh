#!/usr/bin/env bash
# Build BVLC Caffe (CPU only) once per machine into a shared cache and print its install prefix.
#
# Usage: envs/build_caffe.sh PYTHON
#   PYTHON: the interpreter pycaffe is built for (its numpy headers are compiled in).
# Environment:
#   CAFFEPIPE_CACHE_DIR  where built Caffes live (default: ${XDG_CACHE_HOME:-~/.cache}/caffepipe)
#   CAFFEPIPE_JOBS       parallel compile jobs (default: number of cores)
#
# The source is Debian 11's package caffe 1.0.0+git20180821.99bd997-8 (BVLC commit 99bd997 plus Debian's
# patches), fetched with apt-get source so apt checks its signature. Only the mirror the machine already uses
# is read from its configuration; no host is written here.
#
# The cache key covers the source version, our patches, the CMake flags, the recipe revision and the
# Python/numpy ABI, so a change to any of them builds a new prefix beside the old one. Bump RECIPE_REVISION
# when a change to this script changes what gets built. The build runs under a lock, is
# installed into a staging folder and renamed into place only when complete: an interrupted build never
# leaves a prefix that is later taken for good.
set -euo pipefail

PYTHON=${1:?usage: envs/build_caffe.sh PYTHON}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_PACKAGE=caffe
SOURCE_VERSION=1.0.0+git20180821.99bd997-8
RECIPE_REVISION=2
# Caffe's own gtest suites for the layers our patches touch (envs/caffe/*.patch), built into one small test
# binary, bin/caffe-layer-tests, installed with the prefix; tests/integration/test_caffe_patches.py runs it.
# Building Caffe's whole test suite (`make runtest`) takes far longer than CI can spend.
LAYER_TESTS=(test_convolution_layer test_deconvolution_layer test_pooling_layer test_maxpool_dropout_layers)
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DCPU_ONLY=ON
  -DBLAS=Open
  -Dpython_version=3
  -DBUILD_python=ON
  -DBUILD_docs=OFF
  -DUSE_OPENCV=ON
  -DUSE_LMDB=ON
  -DUSE_LEVELDB=ON
  -DUSE_NCCL=OFF
)

say() { echo "[build-caffe] $*" >&2; }

abi=$("$PYTHON" -c 'import sys, numpy; print("py%d.%d-numpy%s" % (sys.version_info[0], sys.version_info[1], numpy.__version__.split(".")[0]))')
key=$( { echo "$SOURCE_PACKAGE $SOURCE_VERSION r$RECIPE_REVISION $abi ${CMAKE_FLAGS[*]} ${LAYER_TESTS[*]}"; cat "$here"/caffe/*.patch; } \
       | sha256sum | cut -c1-16)
cache=${CAFFEPIPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/caffepipe}
prefix=$cache/caffe-$SOURCE_VERSION-$abi-$key
mkdir -p "$cache"

if [ -f "$prefix/.caffepipe-complete" ]; then
  echo "$prefix"
  exit 0
fi

exec 9>"$prefix.lock"
say "waiting for the build lock $prefix.lock"
flock 9
if [ -f "$prefix/.caffepipe-complete" ]; then   # another set-up finished it while we waited
  echo "$prefix"
  exit 0
fi

work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "building Caffe $SOURCE_VERSION into $prefix (a few minutes; more on fewer cores); work folder $work"

# A private apt configuration that knows Debian 11's sources, on the mirror this machine already uses.
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $0 ~ / main/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { say "error: no Debian mirror found in /etc/apt; cannot fetch the Caffe source"; exit 1; }
mkdir -p "$work/lists/partial"
echo "deb-src $mirror bullseye main" >"$work/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only "$SOURCE_PACKAGE=$SOURCE_VERSION")
# apt-get source has verified the files against the signed Release and Sources indexes. dpkg-source checks
# their checksums again and applies Debian's patch series (it cannot check the uploader's own signature
# without the debian-keyring package, and says so; that check adds nothing to apt's).
(cd "$work" && dpkg-source -x "${SOURCE_PACKAGE}_${SOURCE_VERSION#*:}.dsc" src >"$work/dpkg-source.log" 2>&1) \
  || { cat "$work/dpkg-source.log" >&2; say "error: unpacking the Caffe source failed"; exit 1; }
for patch in "$here"/caffe/*.patch; do
  say "applying $(basename "$patch")"
  patch -d "$work/src" -p1 --forward --batch <"$patch" >&2
done

cmake -S "$work/src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DPYTHON_EXECUTABLE="$PYTHON" "${CMAKE_FLAGS[@]}" >"$work/cmake.log" 2>&1 \
  || { tail -40 "$work/cmake.log" >&2; say "error: CMake configuration failed (log above)"; exit 1; }
make -C "$work/build" -j"${CAFFEPIPE_JOBS:-$(nproc)}" all pycaffe >"$work/make.log" 2>&1 \
  || { tail -40 "$work/make.log" >&2; say "error: compiling Caffe failed (log above)"; exit 1; }
make -C "$work/build" install DESTDIR="$work/stage" >"$work/install.log" 2>&1 \
  || { tail -20 "$work/install.log" >&2; say "error: installing Caffe failed"; exit 1; }

staged=$work/stage$prefix

# The layer tests: the test sources as they are after our patches, against the library just built. CPU_ONLY
# and the USE_* switches must match the library's (CMAKE_FLAGS above), or the classes' layouts differ.
test_sources=("$work/src/src/caffe/test/test_caffe_main.cpp" "$work/src/src/gtest/gtest-all.cpp")
for name in "${LAYER_TESTS[@]}"; do test_sources+=("$work/src/src/caffe/test/$name.cpp"); done
say "compiling Caffe's gtest suites for the patched layers (${LAYER_TESTS[*]})"
g++ -O2 -DCPU_ONLY -DUSE_LMDB -DUSE_LEVELDB -DUSE_OPENCV -DUSE_HDF5 -DGTEST_USE_OWN_TR1_TUPLE \
    -I"$work/build/include" -I"$work/src/include" -I"$work/src/src" \
    -isystem /usr/include/hdf5/serial -isystem /usr/include/opencv4 "${test_sources[@]}" \
    -L"$work/build/lib" -lcaffe -lglog -lgflags -lprotobuf -lboost_system -lpthread -Wl,-rpath,"$prefix/lib" \
    -o "$staged/bin/caffe-layer-tests" >"$work/layer-tests.log" 2>&1 \
  || { grep -v warning "$work/layer-tests.log" | tail -40 >&2; say "error: compiling Caffe's layer tests failed (log above)"; exit 1; }
echo "$SOURCE_PACKAGE $SOURCE_VERSION $abi ${CMAKE_FLAGS[*]}" >"$staged/.caffepipe-build-info"
touch "$staged/.caffepipe-complete"
rm -rf "$prefix"            # a leftover without the completion mark is an interrupted build
mv "$staged" "$prefix"
say "Caffe installed in $prefix"
echo "$prefix"
