#!/usr/bin/env bash
# Optional sound assets for the sample renderer, from Debian's packages:
#   fluid-soundfont-gm                 FluidR3_GM.sf2 (MIT), the renderer's first choice
#   musescore-general-soundfont-small  MuseScore_General_Lite.sf3 (MIT)
#   hydrogen-data                      Hydrogen kits GMRockKit and TR808EmulationKit (GPL)
# With --all also hydrogen-drumkits (~140 MB of further Hydrogen kits); with --bench also
# fluidsynth (the reference renderer bench/render.py compares against).
#
# Never fails its caller: without apt, root or network it says what it skipped and exits 0;
# stemforge then renders with pip's TimGM6mb.sf2. `pipeline sounds` lists what was found.
set -u

packages=(fluid-soundfont-gm musescore-general-soundfont-small hydrogen-data)
for arg in "$@"; do
  case "$arg" in
    --all) packages+=(hydrogen-drumkits) ;;
    --bench) packages+=(fluidsynth) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install_sounds: unknown option $arg (use --all, --bench)" >&2 ;;
  esac
done

say() { echo "install_sounds: $*"; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v apt-cache >/dev/null 2>&1; then
  say "no apt here; skipped (the renderer uses pip's TimGM6mb.sf2)"
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo_cmd=(sudo -n)
  else
    say "not root and no passwordless sudo; skipped. Run as root: apt-get install ${packages[*]}"
    exit 0
  fi
fi

if ! "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1; then
  say "apt-get update failed (offline?); trying with the package lists already here"
fi

available=()
for package in "${packages[@]}"; do
  candidate=$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
    available+=("$package")
  else
    say "$package is not available from apt here; skipped"
  fi
done
if [ "${#available[@]}" -eq 0 ]; then
  say "nothing to install"
  exit 0
fi

if DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${available[@]}" >/dev/null 2>&1; then
  say "installed ${available[*]}"
else
  say "apt-get install ${available[*]} failed; the renderer falls back to pip's TimGM6mb.sf2"
fi
exit 0
