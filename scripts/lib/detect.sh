# Detection of what the build and the tests use, sourced by setup.sh and test.sh (and by
# tests/setup_detection.rs). Each check asks for the thing that is used, never for a package or a
# file name that resembles it. Every function prints what it found on stdout and returns non-zero
# when the thing is missing.

# A C compiler that compiles and links a program (cc alone is not enough without libc6-dev).
detect_cc() {
  command -v cc >/dev/null || return 1
  local d; d=$(mktemp -d)
  printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' >"$d/t.c"
  if cc "$d/t.c" -o "$d/t" >/dev/null 2>&1 && [ "$("$d/t")" = ok ]; then
    rm -rf "$d"; command -v cc; return 0
  fi
  rm -rf "$d"; return 1
}

# The MPI that rsmpi's build probe (build-probe-mpi) uses: `${MPICC:-mpicc} -show` must answer, the
# wrapper must compile and link an MPI program, and an mpirun must be there to launch it.
detect_mpi() {
  local mpicc=${MPICC:-mpicc}
  command -v "$mpicc" >/dev/null && command -v mpirun >/dev/null || return 1
  "$mpicc" -show >/dev/null 2>&1 || return 1
  local d; d=$(mktemp -d)
  printf '#include <mpi.h>\nint main(int c,char**v){MPI_Init(&c,&v);MPI_Finalize();return 0;}\n' >"$d/t.c"
  if "$mpicc" "$d/t.c" -o "$d/t" >/dev/null 2>&1; then
    rm -rf "$d"; command -v "$mpicc"; return 0
  fi
  rm -rf "$d"; return 1
}

# The directories clang-sys (bindgen's loader) searches for libclang on Linux when LIBCLANG_PATH is
# unset, in its order: llvm-config's prefix, LD_LIBRARY_PATH, LIBRARY_PATH, then fixed globs.
# SCADLES_LIBCLANG_DIRS replaces the fixed globs (tests point it at a fake tree).
libclang_search_dirs() {
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ]; then dirname "$LIBCLANG_PATH"; else echo "$LIBCLANG_PATH"; fi
    return
  fi
  local prefix p
  if prefix=$(llvm-config --prefix 2>/dev/null); then
    echo "$prefix/bin"; echo "$prefix/lib"; echo "$prefix/lib64"
  fi
  local IFS=:
  for p in ${LD_LIBRARY_PATH:-} ${LIBRARY_PATH:-}; do [ -n "$p" ] && echo "$p"; done
  unset IFS
  local globs=${SCADLES_LIBCLANG_DIRS:-"/usr/local/llvm*/lib* /usr/local/lib*/*/* /usr/local/lib*/* /usr/local/lib* /usr/lib*/*/* /usr/lib*/* /usr/lib*"}
  local g
  for g in $globs; do
    for p in $g; do [ -d "$p" ] && echo "$p"; done
  done
}

# A shared library that clang-sys would accept and load: named libclang.so, libclang-*.so,
# libclang.so.* or libclang-*.so.* but not clang's C++ library libclang-cpp (which clang-sys skips
# and which does not export the C API), a 64-bit ELF file, exporting the libclang C API.
is_loadable_libclang() {
  local f=$1 name
  name=$(basename "$f")
  case "$name" in *-cpp.*) return 1 ;; esac
  case "$name" in libclang.so | libclang-*.so | libclang.so.* | libclang-*.so.*) ;; *) return 1 ;; esac
  [ -f "$f" ] || return 1
  # ELF magic and class 2 (64-bit), as clang-sys's validate_library checks.
  [ "$(head -c 5 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c4602 ] || return 1
  grep -aq clang_createIndex "$f"
}

# Prints the first libclang bindgen would load.
detect_libclang() {
  local d f
  while IFS= read -r d; do
    for f in "$d"/libclang.so "$d"/libclang-*.so "$d"/libclang.so.* "$d"/libclang-*.so.*; do
      if is_loadable_libclang "$f"; then echo "$f"; return 0; fi
    done
  done < <(libclang_search_dirs)
  return 1
}

# clang's builtin headers (stddef.h, ...): libclang looks for them in clang/<version>/include beside
# the library as loaded (Debian: /usr/lib/llvm-N/lib/clang/...); without them bindgen fails on mpi.h's
# #include <stddef.h>.
detect_clang_headers() {
  local lib h
  lib=$(detect_libclang) || return 1
  for h in "$(dirname "$lib")"/clang/*/include/stddef.h "$(dirname "$(readlink -f "$lib")")"/clang/*/include/stddef.h \
    /usr/lib/llvm-*/lib/clang/*/include/stddef.h /usr/local/lib/clang/*/include/stddef.h; do
    if [ -f "$h" ]; then dirname "$h"; return 0; fi
  done
  return 1
}

# The directories scripts/build.rs searches for OpenBLAS, in its order (keep the two lists equal;
# tests/setup_detection.rs checks that they are).
OPENBLAS_DIRS="/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib /opt/OpenBLAS/lib"

# The OpenBLAS that build.rs links: its static archive, linked the way build.rs links it (with
# libgfortran), or else the shared library.
detect_openblas() {
  local dirs="${SCADLES_OPENBLAS_DIR:-} $OPENBLAS_DIRS" d t
  t=$(mktemp -d)
  printf 'extern void cblas_sgemm(); int main(void){void (*f)() = cblas_sgemm; return f == 0;}\n' >"$t/t.c"
  for d in $dirs; do
    if [ -f "$d/libopenblas.a" ] && cc "$t/t.c" "$d/libopenblas.a" -lgfortran -lpthread -lm -o "$t/t" >/dev/null 2>&1; then
      rm -rf "$t"; echo "$d/libopenblas.a"; return 0
    fi
  done
  for d in $dirs; do
    if [ -f "$d/libopenblas.so" ] && cc "$t/t.c" -L"$d" -lopenblas -o "$t/t" >/dev/null 2>&1; then
      rm -rf "$t"; echo "$d/libopenblas.so"; return 0
    fi
  done
  rm -rf "$t"; return 1
}

# A C++ compiler that builds C++20 (the kernel emulator and the emulated GPU driver need it).
detect_cxx20() {
  command -v g++ >/dev/null || return 1
  local d; d=$(mktemp -d)
  printf '#include <span>\n#include <cstdio>\nint main(){int a[2]={1,2};std::span<int> s(a);std::printf("%%zu\\n",s.size());}\n' >"$d/t.cpp"
  if g++ -std=c++20 "$d/t.cpp" -o "$d/t" >/dev/null 2>&1 && [ "$("$d/t")" = 2 ]; then
    rm -rf "$d"; command -v g++; return 0
  fi
  rm -rf "$d"; return 1
}

# The Fashion-MNIST files scadles reads (gzip as Debian's dataset-fashion-mnist ships them, or
# plain), in ${1:-/usr/share/datasets/fashion-mnist}.
detect_fashion_mnist() {
  local dir=${1:-/usr/share/datasets/fashion-mnist} n
  for n in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -s "$dir/$n.gz" ] || [ -s "$dir/$n" ] || return 1
  done
  echo "$dir"
}
