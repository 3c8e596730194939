#!/usr/bin/env bash
# Third-party readers the tests hold our DAW files against (make test runs this through
# setup.sh with STEMFORGE_TEST_TOOLS=1), into .tools/ (never committed):
#   .tools/bin/abletoolz   abletoolz 2.1.0 (PyPI, GPL-3.0), which needs Python >= 3.12: Debian 12
#                          has 3.11, so Python 3.13 comes from Debian 13's packages (apt-get
#                          download into .tools/python3.13, nothing installed system-wide) and runs
#                          on its own glibc through its own loader; abletoolz and its dependencies
#                          are pip wheels for 3.13 in .tools/abletoolz.
#   .tools/dawproject-reader/read_dawproject.mjs
#                          openDAW's DAWproject schema classes (@opendaw/lib-dawproject 0.0.70, npm,
#                          AGPL-3.0) driven by tests/readers/read_dawproject.mjs, bundled with esbuild.
# Never fails its caller: whatever cannot be had here (no apt, npm or network) is skipped with a
# line saying so, and the tests that need it skip with a reason.
set -u
cd "$(dirname "$0")/.."
root=$PWD/.tools
say() { echo "install_readers: $*"; }
mkdir -p "$root/bin"

abletoolz() {
  [ -x "$root/bin/abletoolz" ] && return 0
  command -v apt-get >/dev/null 2>&1 || { say "no apt: abletoolz skipped"; return 0; }
  local py=$root/python3.13 work
  work=$(mktemp -d)
  mkdir -p "$work/lists/partial" "$work/cache" "$work/debs"
  echo "deb http://deb.debian.org/debian trixie main" > "$work/sources.list"
  local apt=(apt-get -qq -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/nonexistent
             -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
  # the interpreter and the libraries it links that Debian 12 lacks or has too old (glibc 2.41)
  if ! { "${apt[@]}" update && (cd "$work/debs" && "${apt[@]}" download python3.13-minimal libpython3.13-minimal \
        libpython3.13-stdlib libc6 libexpat1 zlib1g libffi8 libssl3t64 libsqlite3-0 libbz2-1.0 liblzma5 \
        libuuid1 libncursesw6 libtinfo6 libreadline8t64 libmpdec4 libzstd1); } >/dev/null 2>&1; then
    say "Debian 13's python3.13 packages could not be downloaded: abletoolz skipped"; rm -rf "$work"; return 0
  fi
  rm -rf "$py" && mkdir -p "$py"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$py"; done
  rm -rf "$work"
  cat > "$root/bin/python3.13" <<EOF
#!/usr/bin/env bash
lib=$py/usr/lib/x86_64-linux-gnu
exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" "$py/usr/bin/python3.13" "\$@"
EOF
  chmod +x "$root/bin/python3.13"
  "$root/bin/python3.13" -c "import ssl, sqlite3, zlib" || { say "python3.13 does not run here: abletoolz skipped"; return 0; }
  local pip=(.venv/bin/python -m pip install -q --disable-pip-version-check --target "$root/abletoolz")
  local wheels=(--python-version 3.13 --only-binary=:all: --platform manylinux_2_28_x86_64
                --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
  rm -rf "$root/abletoolz"
  # colormath has no wheel (pure Python: built here); abletoolz itself declares >=3.12, which
  # pip judges by its own 3.11 when it installs for another Python with --no-deps
  if ! { "${pip[@]}" --no-deps colormath==3.0.0 \
         && "${pip[@]}" "${wheels[@]}" colorama mutagen numpy pydantic pyyaml tqdm networkx \
         && "${pip[@]}" "${wheels[@]}" --no-deps --ignore-requires-python abletoolz==2.1.0; } >/dev/null 2>&1; then
    say "abletoolz 2.1.0 could not be installed for Python 3.13: skipped"; return 0
  fi
  cat > "$root/bin/abletoolz" <<EOF
#!/usr/bin/env bash
PYTHONWARNINGS=ignore PYTHONPATH="$root/abletoolz" exec "$root/bin/python3.13" -m abletoolz "\$@"
EOF
  chmod +x "$root/bin/abletoolz"
  "$root/bin/abletoolz" --help >/dev/null 2>&1 && say "abletoolz 2.1.0 on Python 3.13 ready" \
    || { rm -f "$root/bin/abletoolz"; say "abletoolz does not start: skipped"; }
}

dawproject_reader() {
  local dir=$root/dawproject-reader
  [ -f "$dir/read_dawproject.mjs" ] && cmp -s tests/readers/read_dawproject.mjs "$dir/source.mjs" && return 0
  command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1 || { say "no node/npm: DAWproject reader skipped"; return 0; }
  mkdir -p "$dir" && cp tests/readers/read_dawproject.mjs "$dir/source.mjs"
  echo '{"name": "stemforge-dawproject-reader", "private": true}' > "$dir/package.json"
  # @opendaw's dist is ESM without file extensions (a bundler's input): esbuild makes it one file for node
  if (cd "$dir" && npm install --silent --no-audit --no-fund @opendaw/lib-dawproject@0.0.70 linkedom@0.18.12 \
        jszip@3.10.1 esbuild@0.25.12 >/dev/null 2>&1 \
      && ./node_modules/.bin/esbuild source.mjs --bundle --platform=node --format=esm \
         --outfile=read_dawproject.mjs --log-level=error); then
    say "openDAW's DAWproject reader ready"
  else
    rm -f "$dir/read_dawproject.mjs"; say "openDAW's DAWproject reader could not be installed: skipped"
  fi
}

abletoolz
dawproject_reader
exit 0
