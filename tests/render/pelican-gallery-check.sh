#!/usr/bin/env bash
# Opens the `moet pelican` gallery (index.html) in headless Chromium, screenshots it and checks the
# PNG is not blank; also screenshots one rendered SVG file directly, so the browser's reading of an
# SVG that moet accepted is seen next to resvg's PNG of it. Not part of `npm test` (Chromium is not a
# dependency): run it by hand and look at the PNGs.
#
#   tests/render/pelican-gallery-check.sh [OUTDIR] [-- extra `moet pelican` options, e.g. -m MODEL.gguf --compare-llama]
#
# Without options it runs the shipped tiny model on the CPU with a two-prompt set (one answer started
# with a whole SVG, so that the gallery has a picture whatever the model writes; one started as an
# open <svg> tag, which the tiny model continues) and --compare-llama when node-llama-cpp is installed.
# Writes OUTDIR/gallery/ (moet pelican's output), OUTDIR/gallery.png and OUTDIR/svg.png
# (OUTDIR default: scratch/pelican-gallery-check, git-ignored).
# Needs chromium (Debian: apt-get install chromium) or CHROMIUM=/path/to/chrome.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-scratch/pelican-gallery-check}"
shift || true
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
out=$(cd "$out" && pwd)
chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}"
if [ -z "$chromium" ]; then
  echo "pelican-gallery-check: no chromium found (apt-get install chromium, or set CHROMIUM)" >&2
  exit 2
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
moet=(node --import tsx src/cli/main.ts)

args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  cat >"$out/prompts.jsonl" <<'EOF'
{"id": "whole-svg", "prompt": "Generate an SVG of a pelican riding a bicycle", "prefill": "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 200 120\"><rect width=\"200\" height=\"120\" fill=\"#bfe3ff\"/><circle cx=\"55\" cy=\"90\" r=\"22\" fill=\"none\" stroke=\"#333\" stroke-width=\"4\"/><circle cx=\"145\" cy=\"90\" r=\"22\" fill=\"none\" stroke=\"#333\" stroke-width=\"4\"/><path d=\"M55 90 L95 55 L145 90 M95 55 L120 55\" fill=\"none\" stroke=\"#c00\" stroke-width=\"4\"/><ellipse cx=\"100\" cy=\"38\" rx=\"26\" ry=\"14\" fill=\"#fff\" stroke=\"#333\"/><path d=\"M122 36 L175 42 L122 46 Z\" fill=\"#f5a623\"/></svg>\n"}
{"id": "open-svg", "prompt": "Generate an SVG of a pelican riding a bicycle", "prefill": "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\n"}
EOF
  args=(--backend cpu --prompt-set "$out/prompts.jsonl" -n 48 --temp 0)
  if node -e "import('node-llama-cpp').then(() => process.exit(0), () => process.exit(1))" 2>/dev/null; then
    args+=(--compare-llama)
  fi
fi

"${moet[@]}" pelican "${args[@]}" -o "$out/gallery"

shot() { # url png width height
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --allow-file-access-from-files --window-size="$3,$4" --screenshot="$2" "$1" >/dev/null 2>&1
}
shot "file://$out/gallery/index.html" "$out/gallery.png" 1400 1200
status=0
node --import tsx tests/render/png-stats.ts "$out/gallery.png" || status=1
svg=$(ls "$out"/gallery/*/moet.svg 2>/dev/null | head -n1 || true)
if [ -n "$svg" ]; then
  shot "file://$svg" "$out/svg.png" 600 400
  node --import tsx tests/render/png-stats.ts "$out/svg.png" --min-colours 4 || status=1
else
  echo "pelican-gallery-check: no valid SVG in this run (nothing to open directly)" >&2
fi
# the gallery shows each run's PNG: check the files it points at exist
imgs=$(grep -o 'img src="[^"]*"' "$out/gallery/index.html" | sed 's/^img src="//; s/"$//' || true)
for src in $imgs; do
  file="$out/gallery/$(printf '%b' "${src//%/\\x}")"
  [ -f "$file" ] || { echo "pelican-gallery-check: the gallery shows a missing file: $src" >&2; status=1; }
done
exit $status
