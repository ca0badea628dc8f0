#!/usr/bin/env bash
# Runs on the GPU box, next to moet-box.tar.xz (bench/gpu-box.sh pack puts both in .box/):
#   bash .box/run.sh [LAYERS]
# Unpacks, installs the Vulkan loader, points it at NVIDIA's ICD, generates the synthetic
# Qwen3-30B-A3B-Q4_K_M (all 48 layers unless LAYERS is given: 17.3 GiB in /tmp), and runs
# moet bench + one profiled run + the kernel microbenchmarks. Results land in $OUT (or $DIR/out).
# A pack made with `bench/gpu-box.sh pack --llama-vulkan` also runs bench/compare.ts: llama.cpp's
# Vulkan build (node-llama-cpp, all layers offloaded, Vulkan device GGML_VK_VISIBLE_DEVICES=0 unless
# set) against moet WebGPU on the same model and GPU (compare.md), then both engines' GPU time per
# kernel / op over 16 decoded tokens (compare-profile.md: --profile --llama-profile).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${MOET_BOX_DIR:-/tmp/moet-box}
OUTDIR=${OUT:-$DIR/out}
LAYERS=${1:-48}
mkdir -p "$DIR" "$OUTDIR"
tar -C "$DIR" -xJf "$HERE/moet-box.tar.xz"
xz -d -c "$DIR/node.xz" > "$DIR/node" && chmod +x "$DIR/node"
NODE="$DIR/node"
export MOET_KERNELS_DIR="$DIR/kernels"
MOET_BUILD=$(cat "$DIR/BUILD" 2>/dev/null || echo 'unknown (0)')
export MOET_BUILD

if [ -z "${MOET_BOX_SELFTEST:-}" ]; then
  # the Vulkan loader (libvulkan.so.1) and NVIDIA's ICD
  if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
    for f in "$DIR"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
  MODEL=/tmp/moet-synth-${LAYERS}l.gguf
  SYNTH_ARGS=(--layers "$LAYERS")
  BENCH_ARGS=(-p 512 -n 128 -r 5)
  DEPTH_ARGS=(-p 512 -n 32 -d 4096 -r 3)
  PROFILE_ARGS=(-p 512 -n 16 -r 1 --profile)
  KERNEL_ARGS=(--time 2000)
  # experts in host memory (issue 18): t/s against the share of experts on the GPU
  EXPERT_ARGS=(-p 512 -n 32 -r 3 --gpu-memory 100%,75%,50%,25%)
  COMPARE_ARGS=(-p 512 -n 128 -r 3 --threads 8 --llama-gpu vulkan)
  # both engines' GPU time per kernel / op on the same decode (compare-profile.md)
  COMPARE_PROFILE_ARGS=(-p 0 -n 16 -r 1 --threads 8 --llama-gpu vulkan --profile --llama-profile)
else
  # selftest on this machine: a tiny model, a few tokens
  MODEL=$DIR/selftest.gguf
  SYNTH_ARGS=(--layers 2 --experts 8 --embd 256 --heads 2 --kv-heads 1 --ff-exp 256 --vocab synthetic --vocab-size 2000)
  BENCH_ARGS=(-p 16 -n 4 -r 2)
  DEPTH_ARGS=(-p 16 -n 4 -d 32 -r 1)
  PROFILE_ARGS=(-p 16 -n 2 -r 1 --profile)
  KERNEL_ARGS=(--scale 0.0625 --time 200 --only matvec,router,attn_512)
  EXPERT_ARGS=(-p 16 -n 4 -r 1 --gpu-memory 100%,50%)
  # llama.cpp's Vulkan build on lavapipe compiles its pipelines with LLVM for minutes: the selftest runs
  # compare.mjs for moet only, and checks that the carried node-llama-cpp finds the Vulkan device
  COMPARE_ARGS=(-p 4 -n 1 -r 1 --only moet)
  COMPARE_PROFILE_ARGS=()
fi

{
  echo "## $(date -u +%FT%TZ) $(uname -a)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  echo "node $("$NODE" --version); load average: $(cat /proc/loadavg)"
} | tee "$OUTDIR/box.txt"

cd "$DIR"
if [ ! -f "$MODEL" ]; then
  "$NODE" moet.mjs synth -o "$MODEL" "${SYNTH_ARGS[@]}" 2>&1 | tee "$OUTDIR/synth.txt"
fi
"$NODE" moet.mjs bench -m "$MODEL" --backend webgpu "${BENCH_ARGS[@]}" -o md 2>&1 | tee "$OUTDIR/bench.md"
"$NODE" moet.mjs bench -m "$MODEL" --backend webgpu "${DEPTH_ARGS[@]}" -o json > "$OUTDIR/bench-depth.json" 2> "$OUTDIR/bench-depth.log"
"$NODE" moet.mjs bench -m "$MODEL" --backend webgpu "${PROFILE_ARGS[@]}" -o md 2>&1 | tee "$OUTDIR/profile.md"
"$NODE" kernels.mjs "${KERNEL_ARGS[@]}" 2>&1 | tee "$OUTDIR/kernels.md"
"$NODE" moet.mjs bench -m "$MODEL" --backend webgpu "${EXPERT_ARGS[@]}" -o json > "$OUTDIR/bench-experts.json" 2> "$OUTDIR/bench-experts.log"
if [ -f "$DIR/compare.mjs" ] && [ ${#COMPARE_ARGS[@]} -gt 0 ]; then
  # a file, not `node -e`: node-llama-cpp forks a test process with this process's execArgv
  cat > "$DIR/llama-device.mjs" <<'EOF2'
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
const l = await getLlama({ gpu: 'vulkan', build: 'never', logLevel: LlamaLogLevel.error });
console.log('node-llama-cpp', l.gpu, 'llama.cpp', l.llamaCppRelease.release, 'devices', await l.getGpuDeviceNames());
process.exit(0);
EOF2
  GGML_VK_VISIBLE_DEVICES=${GGML_VK_VISIBLE_DEVICES:-0} "$NODE" "$DIR/llama-device.mjs" 2>&1 | tee "$OUTDIR/llama-device.txt"
  MOET_LLAMA_CHILD="$DIR/llama.mjs" "$NODE" compare.mjs -m "$MODEL" "${COMPARE_ARGS[@]}" 2> "$OUTDIR/compare.log" | tee "$OUTDIR/compare.md"
  if [ ${#COMPARE_PROFILE_ARGS[@]} -gt 0 ]; then
    MOET_LLAMA_CHILD="$DIR/llama.mjs" "$NODE" compare.mjs -m "$MODEL" "${COMPARE_PROFILE_ARGS[@]}" 2> "$OUTDIR/compare-profile.log" | tee "$OUTDIR/compare-profile.md"
  fi
fi
echo "results in $OUTDIR"
