#!/usr/bin/env bash
# Sets up a fresh machine for stemforge: optional sound assets from apt (skipped where apt
# is not available), a virtual environment in .venv with the CPU build of torch, and
# stemforge itself (editable) with its test tools; redis-server from apt for the broker back
# end. Safe to run again: it only adds what is missing.
#   STEMFORGE_SKIP_APT=1   skip the apt step
#   STEMFORGE_TEST_TOOLS=1 also install chromium for the browser test and the third-party readers of
#                          our DAW files into .tools/ (scripts/install_readers.sh; make test sets it)
#   STEMFORGE_TORCH_INDEX  e.g. https://download.pytorch.org/whl/cu121 for a GPU build (see README)
# Arguments go to scripts/install_sounds.sh: --bench also installs fluidsynth (`make bench`
# runs it: bench/render.py's reference renderer), --all further Hydrogen kits.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${STEMFORGE_SKIP_APT:-}" ]; then
  bash scripts/install_sounds.sh "$@" || true
  if ! command -v redis-server >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    # the broker back end (`pipeline serve --broker`, tests/test_broker.py) runs on Redis; the
    # embedded back end works without it and tests/test_broker.py skips
    apt-get install -y -qq redis-server >/dev/null 2>&1 \
      || echo "setup: redis-server not installed; tests/test_broker.py will skip"
  fi
  if [ -n "${STEMFORGE_TEST_TOOLS:-}" ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    # the browser test drives Debian's chromium with playwright (it skips where this fails)
    apt-get install -y -qq chromium >/dev/null 2>&1 || echo "setup: chromium not installed; the browser test will skip"
  fi
  if [ -n "${STEMFORGE_TEST_TOOLS:-}" ] && command -v apt-get >/dev/null 2>&1 \
      && { ! command -v ffmpeg >/dev/null 2>&1 || [ ! -d /usr/share/lmms/samples ]; }; then
    # outside readers for the tests: ffmpeg's ebur128 meter (loudness, true peak) and LMMS's loops (--like)
    apt-get install -y -qq ffmpeg lmms-common >/dev/null 2>&1 \
      || echo "setup: ffmpeg/lmms-common not installed; their checks in tests/test_loudness.py and tests/test_loop_analysis.py skip"
  fi
fi

python3 -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ -n "${STEMFORGE_TORCH_INDEX:-}" ]; then
  "${pip[@]}" --index-url "$STEMFORGE_TORCH_INDEX" torch==2.13.0
else
  # pinned: a looser requirement makes pip fetch a multi-GB CUDA build on CPU machines
  "${pip[@]}" torch==2.13.0
fi
"${pip[@]}" -e ".[dev]"
# tinysoundfont's metadata asks for pyaudio (live playback only, needs portaudio headers):
# the renderer does not use it, so install the wheel without it
"${pip[@]}" --no-deps tinysoundfont==0.3.7
# the compiled decoder's kernels, ahead of time once per machine (~15 s, user cache): a run then
# loads them without importing numba; numba's JIT cache of the same kernels is the fallback
.venv/bin/python -c "from stemforge.symbolic.decoding.precompile import precompile; precompile()"
if [ -n "${STEMFORGE_TEST_TOOLS:-}" ]; then
  # abletoolz (on its own Python 3.13) and openDAW's DAWproject reader, which the tests hold our
  # Live sets and DAWprojects against (they skip where these cannot be had)
  bash scripts/install_readers.sh
fi
.venv/bin/python -c "import stemforge.pipeline.cli, tinysoundfont" \
  && echo "setup: ready (.venv/bin/pipeline --help)"
