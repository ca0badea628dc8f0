// moe_group.wgsl — prefill MoE bookkeeping around moe_mm.wgsl (ggml-webgpu's mul_mat_id_gather idea).
// Launcher: createMoeFfnPrefill (src/gpu/moe.ts). Two kernels, chosen by define:
//
// GROUP (entry main) — groups the (token, slot) pairs by expert and builds moe_mm's work list.
//   0 P       uniform             GroupParams
//   1 ids     storage read        u32 [n_tokens, k] router output; pair p = t·k + j uses ids[ids_offset + p]
//   2 sorted  storage read_write  u32 [n_pairs] pair ids, grouped by expert (expert 0's first);
//                                 the order inside an expert is unspecified (it does not change
//                                 any result: every output row is computed on its own)
//   3 tiles   storage read_write  u32 [max_tiles, 4]: (expert, first index in sorted, n pairs ≤ tile_n, 0);
//                                 expert e with c_e pairs gets ceil(c_e / tile_n) tiles, empty experts none
//   4 args    storage read_write  u32 [8]: indirect dispatch arguments of moe_mm:
//                                 [0..3) = (row_tiles_a, n_tiles, 1) gate/up, [4..7) = (row_tiles_b, n_tiles, 1) down
//   Dispatch (1, 1, 1): one workgroup. Counts per expert with workgroup atomics, an exclusive scan
//   (thread 0; n_expert ≤ MAX_EXPERT), then a scatter with the counters reused as cursors, then
//   the tile list and the indirect arguments. moe_mm then runs exactly Σ_e ceil(c_e / tile_n)
//   tile rows: no workgroup is spent on an expert without tokens and no unused expert is read.
//
// COMBINE (entry main) — y[t] += Σ_j w[t,j] · ye[t·k + j], the weighted sum of the experts'
// down-projection outputs plus the residual, in a fixed order (deterministic, no atomics).
//   0 P   uniform             CombineParams
//   1 ye  storage read        f32 [n_tokens·k, n] expert outputs, pair p at ye_offset + p·n
//   2 rw  storage read        f32 [n_tokens, k] router weights at rw_offset
//   3 y   storage read_write  f32 residual; token t at y_offset + t·y_stride
//   Dispatch (ceil(n / WG), n_tokens, 1).
//
// Overrides: WG (threads), MAX_EXPERT (GROUP: workgroup array size, default 256).

#if GROUP
struct GroupParams {
  n_pairs: u32,       // n_tokens · k
  n_expert: u32,
  tile_n: u32,        // pairs per moe_mm tile (its TN)
  ids_offset: u32,
  row_tiles_a: u32,   // moe_mm workgroups along the rows of gate/up
  row_tiles_b: u32,   // … of down
  max_tiles: u32,     // capacity of `tiles`
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> P: GroupParams;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(3) var<storage, read_write> tiles: array<u32>;
@group(0) @binding(4) var<storage, read_write> args: array<u32>;

override WG: u32 = 256u;
override MAX_EXPERT: u32 = 256u;

var<workgroup> cnt: array<atomic<u32>, MAX_EXPERT>;
var<workgroup> start: array<u32, MAX_EXPERT>;
var<workgroup> count: array<u32, MAX_EXPERT>;
var<workgroup> tile0: array<u32, MAX_EXPERT>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) tid: u32) {
  let ne = P.n_expert;
  for (var e = tid; e < ne; e += WG) {
    atomicStore(&cnt[e], 0u);
  }
  workgroupBarrier();
  for (var p = tid; p < P.n_pairs; p += WG) {
    let e = ids[P.ids_offset + p];
    if (e < ne) {
      atomicAdd(&cnt[e], 1u);
    }
  }
  workgroupBarrier();
  if (tid == 0u) {
    var o = 0u;
    var nt = 0u;
    for (var e = 0u; e < ne; e++) {
      let c = atomicLoad(&cnt[e]);
      start[e] = o;
      count[e] = c;
      tile0[e] = nt;
      o += c;
      nt += (c + P.tile_n - 1u) / P.tile_n;
    }
    nt = min(nt, P.max_tiles);
    args[0] = P.row_tiles_a;
    args[1] = nt;
    args[2] = 1u;
    args[3] = 0u;
    args[4] = P.row_tiles_b;
    args[5] = nt;
    args[6] = 1u;
    args[7] = 0u;
  }
  workgroupBarrier();
  for (var e = tid; e < ne; e += WG) {
    atomicStore(&cnt[e], 0u);
  }
  workgroupBarrier();
  for (var p = tid; p < P.n_pairs; p += WG) {
    let e = ids[P.ids_offset + p];
    if (e < ne) {
      sorted[start[e] + atomicAdd(&cnt[e], 1u)] = p;
    }
  }
  for (var e = tid; e < ne; e += WG) {
    let c = count[e];
    let n_t = (c + P.tile_n - 1u) / P.tile_n;
    for (var i = 0u; i < n_t; i++) {
      let ti = tile0[e] + i;
      if (ti < P.max_tiles) {
        tiles[4u * ti] = e;
        tiles[4u * ti + 1u] = start[e] + i * P.tile_n;
        tiles[4u * ti + 2u] = min(P.tile_n, c - i * P.tile_n);
        tiles[4u * ti + 3u] = 0u;
      }
    }
  }
}
#endif

#if COMBINE
struct CombineParams {
  n: u32,           // row length (n_embd)
  k: u32,
  n_tokens: u32,
  ye_offset: u32,
  rw_offset: u32,
  y_offset: u32,
  y_stride: u32,
  _pad0: u32,
}

@group(0) @binding(0) var<uniform> P: CombineParams;
@group(0) @binding(1) var<storage, read> ye: array<f32>;
@group(0) @binding(2) var<storage, read> rw: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = wid.x * WG + tid;
  let t = wid.y;
  if (i >= P.n || t >= P.n_tokens) {
    return;
  }
  var acc = 0.0;
  for (var j = 0u; j < P.k; j++) {
    let p = t * P.k + j;
    acc += rw[P.rw_offset + p] * ye[P.ye_offset + p * P.n + i];
  }
  let yi = P.y_offset + t * P.y_stride + i;
  y[yi] += acc;
}
#endif
