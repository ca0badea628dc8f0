#!/usr/bin/env bash
# Rasterizes `moet routes` pictures with headless Chromium and checks the PNGs are not blank.
# Not part of `npm test` (Chromium is not a dependency): run it by hand and look at the PNGs.
#
#   tests/render/render-check.sh [OUTDIR] [-- extra `moet routes` options, e.g. -m MODEL.gguf -f TEXT]
#
# Without -m it generates the random demo model (`moet demo --random --keep`: tiny, random weights). Writes
# OUTDIR/routes.svg, routes.html, routes-svg.png, routes-html.png (OUTDIR default: scratch/render-check, git-ignored).
# Needs chromium (Debian: apt-get install chromium) or CHROMIUM=/path/to/chrome.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-scratch/render-check}"
shift || true
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [ -z "$chromium" ]; then
  echo "render-check: no chromium found (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
moet=(node --import tsx src/cli/main.ts)

args=("$@")
tmp=""
if ! printf '%s\n' "${args[@]}" | grep -qx -- '-m\|--model'; then
  log=$("${moet[@]}" demo --random --keep -n 1 --backend cpu 2>&1 >/dev/null)
  model=$(printf '%s\n' "$log" | sed -n 's/^demo model: //p')
  [ -n "$model" ] || { echo "render-check: could not make the demo model: $log" >&2; exit 1; }
  tmp=$(dirname "$model")
  args=(-m "$model" -p "The quick brown fox <jumps> over the lazy dog & \"friends\".
It was the best of times, it was the worst of times." "${args[@]}")
fi
if ! printf '%s\n' "${args[@]}" | grep -qx -- '-p\|--prompt\|-f\|--file'; then
  args+=(-f README.md -c 256)
fi

"${moet[@]}" routes "${args[@]}" --svg "$out/routes.svg" --html "$out/routes.html"

# the SVG's own size (root element's width/height) sets the window
w=$(sed -n '2s/.*width="\([0-9]*\)".*/\1/p' "$out/routes.svg")
h=$(sed -n '2s/.*height="\([0-9]*\)".*/\1/p' "$out/routes.svg")
shot() { # url png width height
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$3,$4" --screenshot="$2" "$1" >/dev/null 2>&1
}
shot "file://$out/routes.svg" "$out/routes-svg.png" "$w" "$h"
shot "file://$out/routes.html" "$out/routes-html.png" "$((w + 80))" 1600
status=0
for png in "$out/routes-svg.png" "$out/routes-html.png"; do
  node --import tsx tests/render/png-stats.ts "$png" || status=1
done
[ -n "$tmp" ] && rm -rf "$tmp"
exit $status
