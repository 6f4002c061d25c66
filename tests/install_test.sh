#!/usr/bin/env bash
# Installs the build into a fresh prefix, builds the client-library example
# against it with pkg-config as a user would, and runs it against the
# installed jobd: the installed tree must work on its own.
#   bash tests/install_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
trap '"$work/prefix/bin/jobctl" shutdown >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >/dev/null
export PKG_CONFIG_PATH=$work/prefix/lib/pkgconfig
c++ -std=c++20 "$work/prefix/share/doc/jobd/examples/map_lines.cc" \
  $(pkg-config --cflags --libs jobd-client) -o "$work/map_lines"

"$work/prefix/bin/jobd" --detach --log-file "$work/jobd.log" >/dev/null
printf 'a\nbb\nccc\n' > "$work/items"
"$work/map_lines" sha256 < "$work/items" > "$work/got"
for item in a bb ccc; do printf '%s' "$item" | sha256sum | cut -d' ' -f1; done > "$work/want"
if ! cmp -s "$work/got" "$work/want"; then
  echo "install test: the example built against the installed library printed:" >&2
  cat "$work/got" >&2
  echo "instead of:" >&2
  cat "$work/want" >&2
  exit 1
fi

# The same example as a CMake project, with the two lines a CMake user writes.
mkdir "$work/cmake-user"
cp "$work/prefix/share/doc/jobd/examples/map_lines.cc" "$work/cmake-user/"
cat > "$work/cmake-user/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.22)
project(map_lines CXX)
set(CMAKE_CXX_STANDARD 20)
find_package(jobd CONFIG REQUIRED)
add_executable(map_lines map_lines.cc)
target_link_libraries(map_lines PRIVATE jobd::client)
EOF
cmake -S "$work/cmake-user" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
"$work/cmake-build/map_lines" sha256 < "$work/items" > "$work/got-cmake"
if ! cmp -s "$work/got-cmake" "$work/want"; then
  echo "install test: the example built with find_package(jobd) printed:" >&2
  cat "$work/got-cmake" >&2
  exit 1
fi

# Completion, where bash-completion finds it.
for name in jobd jobctl; do
  [ -f "$work/prefix/share/bash-completion/completions/$name" ] ||
    { echo "install test: no completion for $name" >&2; exit 1; }
done

# The man pages, where man finds them.
for page in man1/jobd.1 man1/jobctl.1 man5/jobd.yaml.5; do
  [ -f "$work/prefix/share/man/$page" ] || { echo "install test: no $page" >&2; exit 1; }
done

# The stream helper, where jobctl map --help says it is.
cat > "$work/upper.py" <<EOF
import sys
sys.path.insert(0, "$work/prefix/share/jobd/stream")
import jobd_stream
jobd_stream.serve(str.upper)
EOF
got=$(printf 'a\nb\n' | "$work/prefix/bin/jobctl" map --stream "python3 $work/upper.py")
if [ "$got" != "$(printf 'A\nB')" ]; then
  echo "install test: the installed stream helper answered '$got' instead of A, B" >&2
  exit 1
fi

# The Python package, where Debian's Python finds it under the prefix, on the
# installed jobd (its workers find their loop under share/).
python=$(sed -n 's/^Python3_EXECUTABLE:FILEPATH=//p' "$build/CMakeCache.txt")
site=$(cd "$work/prefix" && ls -d lib/python3*/dist-packages)
# Byte-compiled there: a user who cannot write under the prefix would compile
# the modules at every import.
for module in __init__ _job _pool _executor; do
  ls "$work/prefix/$site/jobd/__pycache__/$module".cpython-*.pyc >/dev/null 2>&1 ||
    { echo "install test: $module of the Python package is not byte-compiled" >&2; exit 1; }
done
PYTHONPATH=$work/prefix/$site JOBD_AUTOSTART=0 "$python" -c '
import jobd, sys
assert jobd.__file__.startswith(sys.argv[1]), jobd.__file__
with jobd.Pool() as pool:
    assert pool.map(len, ["a", "bb"]) == [1, 2]
    assert pool.map(lambda s: s.upper(), ["x"]) == ["X"]
' "$work/prefix"
echo "install test: the installed jobd, jobctl, client library and Python package work together"
