#!/usr/bin/env bash
# Build BVLC Caffe (CPU only) once per machine into a shared cache and print its install prefix.
#
# Usage: envs/build_caffe.sh PYTHON
#   PYTHON: the interpreter pycaffe is built for (its numpy headers are compiled in).
# Environment:
#   CAFFEPIPE_CACHE_DIR  where built Caffes live (default: ${XDG_CACHE_HOME:-~/.cache}/caffepipe)
#   CAFFEPIPE_JOBS       parallel compile jobs (default: number of cores)
#   CAFFEPIPE_BLAS       mkl (default on x86-64) or open (Debian's OpenBLAS; the default elsewhere)
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
RECIPE_REVISION=3
# BLAS: Intel MKL on x86-64, about 2x OpenBLAS's speed on Caffe's GEMMs on an Intel Xeon (envs/caffe/README.md;
# on AMD CPUs with AVX-512, OpenBLAS with its AVX-512 kernels can be faster: see there). Its libraries and headers
# come from PyPI's wheels pinned in envs/caffe/mkl-wheels.txt and are copied into the prefix, which they then
# belong to; the wheels are never installed into a venv. MKL has no aarch64 build.
default_blas=open
[ "$(uname -m)" = x86_64 ] && default_blas=mkl
BLAS=${CAFFEPIPE_BLAS:-$default_blas}
case "$BLAS" in mkl|open) ;; *) echo "[build-caffe] error: CAFFEPIPE_BLAS=$BLAS; use mkl or open" >&2; exit 1 ;; esac
# Caffe's own gtest suites for the layers our patches touch (envs/caffe/*.patch), built into one small test
# binary, bin/caffe-layer-tests, installed with the prefix; tests/integration/test_caffe_patches.py runs it.
# Building Caffe's whole test suite (`make runtest`) takes far longer than CI can spend.
# The BLAS (MKL or OpenBLAS) is behind every layer: also the tests of the math functions (GEMM, GEMV and the
# vector functions MKL replaces) and of the fully connected layer.
LAYER_TESTS=(test_convolution_layer test_deconvolution_layer test_pooling_layer test_maxpool_dropout_layers
             test_math_functions test_inner_product_layer)
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  -DCPU_ONLY=ON
  -DBLAS=$([ "$BLAS" = mkl ] && echo MKL || echo Open)
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
key=$( { echo "$SOURCE_PACKAGE $SOURCE_VERSION r$RECIPE_REVISION $abi ${CMAKE_FLAGS[*]} ${LAYER_TESTS[*]}"; cat "$here"/caffe/*.patch
         if [ "$BLAS" = mkl ]; then cat "$here"/caffe/mkl-wheels.txt; fi; } \
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

mkl_flags=()
if [ "$BLAS" = mkl ]; then
  # The wheels hold lib/libmkl_*.so.N and include/*.h; CMake's FindMKL wants MKL_ROOT/{include,lib} and an
  # unversioned libmkl_rt.so to link (the link records the SONAME, libmkl_rt.so.3). mkl_rt loads the CPU's
  # kernels and the threading layer at run time from its own folder: the prefix's lib/ (see below).
  say "fetching Intel MKL's wheels (envs/caffe/mkl-wheels.txt)"
  "$PYTHON" -m pip download --quiet --no-deps --require-hashes -r "$here/caffe/mkl-wheels.txt" -d "$work/wheels" >&2
  mkl=$work/mkl
  mkdir -p "$mkl/include" "$mkl/lib" "$work/wheels/unpacked"
  for wheel in "$work"/wheels/*.whl; do "$PYTHON" -m zipfile -e "$wheel" "$work/wheels/unpacked"; done
  cp -r "$work"/wheels/unpacked/mkl_include-*.data/data/include/. "$mkl/include/"
  # the single dynamic library, the core, the GNU OpenMP and sequential threading layers, and every CPU's kernels
  cp "$work"/wheels/unpacked/mkl-*.data/data/lib/libmkl_{rt,core,gnu_thread,sequential,intel_lp64,def,mc3,avx2,avx512,avx10}.so.* \
     "$work"/wheels/unpacked/mkl-*.data/data/lib/libmkl_vml_*.so.* "$mkl/lib/"
  ln -s "$(cd "$mkl/lib" && ls libmkl_rt.so.*)" "$mkl/lib/libmkl_rt.so"
  mkl_flags=(-DMKL_ROOT="$mkl" -DMKL_INCLUDE_DIR="$mkl/include")
fi

cmake -S "$work/src" -B "$work/build" -DCMAKE_INSTALL_PREFIX="$prefix" \
      -DPYTHON_EXECUTABLE="$PYTHON" "${CMAKE_FLAGS[@]}" "${mkl_flags[@]}" >"$work/cmake.log" 2>&1 \
  || { tail -40 "$work/cmake.log" >&2; say "error: CMake configuration failed (log above)"; exit 1; }
make -C "$work/build" -j"${CAFFEPIPE_JOBS:-$(nproc)}" all pycaffe >"$work/make.log" 2>&1 \
  || { tail -40 "$work/make.log" >&2; say "error: compiling Caffe failed (log above)"; exit 1; }
make -C "$work/build" install DESTDIR="$work/stage" >"$work/install.log" 2>&1 \
  || { tail -20 "$work/install.log" >&2; say "error: installing Caffe failed"; exit 1; }

staged=$work/stage$prefix
if [ "$BLAS" = mkl ]; then
  cp -P "$mkl"/lib/libmkl_*.so.* "$staged/lib/"   # beside libcaffe.so, on its RPATH
fi
blas_define=$([ "$BLAS" = mkl ] && echo "-DUSE_MKL -I$mkl/include -Wl,-rpath-link,$mkl/lib" || echo "")

# The layer tests: the test sources as they are after our patches, against the library just built. CPU_ONLY
# and the USE_* switches must match the library's (CMAKE_FLAGS above), or the classes' layouts differ.
test_sources=("$work/src/src/caffe/test/test_caffe_main.cpp" "$work/src/src/gtest/gtest-all.cpp")
for name in "${LAYER_TESTS[@]}"; do test_sources+=("$work/src/src/caffe/test/$name.cpp"); done
say "compiling Caffe's gtest suites for the patched layers (${LAYER_TESTS[*]})"
g++ -O2 -DCPU_ONLY $blas_define -DUSE_LMDB -DUSE_LEVELDB -DUSE_OPENCV -DUSE_HDF5 -DGTEST_USE_OWN_TR1_TUPLE \
    -I"$work/build/include" -I"$work/src/include" -I"$work/src/src" \
    -isystem /usr/include/hdf5/serial -isystem /usr/include/opencv4 "${test_sources[@]}" \
    -L"$work/build/lib" -lcaffe -lglog -lgflags -lprotobuf -lboost_system -lpthread -Wl,-rpath,"$prefix/lib" \
    -o "$staged/bin/caffe-layer-tests" >"$work/layer-tests.log" 2>&1 \
  || { grep -v warning "$work/layer-tests.log" | tail -40 >&2; say "error: compiling Caffe's layer tests failed (log above)"; exit 1; }
echo "$SOURCE_PACKAGE $SOURCE_VERSION $abi ${CMAKE_FLAGS[*]} blas=$BLAS" >"$staged/.caffepipe-build-info"
touch "$staged/.caffepipe-complete"
rm -rf "$prefix"            # a leftover without the completion mark is an interrupted build
mv "$staged" "$prefix"
say "Caffe installed in $prefix"
echo "$prefix"
