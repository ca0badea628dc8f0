#if KV_F16
enable f16;
#endif
// attn_kv_write.wgsl — copies the K and V of new tokens into one layer's KV cache.
// Launcher: createKvWrite (src/gpu/attention.ts).
//
// Bindings (@group(0)):
//   0 P        uniform             KvWriteParams
//   1 k_new    storage read        f32; token t's K [n_head_kv·head_dim_k] at k_offset + t·k_stride
//   2 v_new    storage read        f32; token t's V [n_head_kv·head_dim_v] at v_offset + t·v_stride
//   3 k_cache  storage read_write  kv_t [n_ctx, n_head_kv, head_dim_k] (position-major)
//   4 v_cache  storage read_write  kv_t [n_ctx, n_head_kv, head_dim_v]
// kv_t is f16 with the KV_F16 define (device has shader-f16), f32 otherwise.
// Token t goes to cache position pos0 + t (positions are contiguous: one sequence).
//
// Dispatch: (gx, gy, 1) with gx·gy ≥ ceil(n_tokens · max(kv_k, kv_v) / WG) (grid2d); one thread
// per element index i: writes K element i (if i < n_tokens·kv_k) and V element i (if < n_tokens·kv_v).
// Override: WG.

#if KV_F16
alias kv_t = f16;
#else
alias kv_t = f32;
#endif

struct KvWriteParams {
  n_tokens: u32,
  pos0: u32,       // cache position of token 0
  kv_k: u32,       // n_head_kv · head_dim_k (elements per position in k_cache)
  kv_v: u32,       // n_head_kv · head_dim_v
  k_offset: u32,
  k_stride: u32,
  v_offset: u32,
  v_stride: u32,
}

@group(0) @binding(0) var<uniform> P: KvWriteParams;
@group(0) @binding(1) var<storage, read> k_new: array<f32>;
@group(0) @binding(2) var<storage, read> v_new: array<f32>;
@group(0) @binding(3) var<storage, read_write> k_cache: array<kv_t>;
@group(0) @binding(4) var<storage, read_write> v_cache: array<kv_t>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + tid;
  if (i < P.n_tokens * P.kv_k) {
    let t = i / P.kv_k;
    let e = i - t * P.kv_k;
    k_cache[(P.pos0 + t) * P.kv_k + e] = kv_t(k_new[P.k_offset + t * P.k_stride + e]);
  }
  if (i < P.n_tokens * P.kv_v) {
    let t = i / P.kv_v;
    let e = i - t * P.kv_v;
    v_cache[(P.pos0 + t) * P.kv_v + e] = kv_t(v_new[P.v_offset + t * P.v_stride + e]);
  }
}
