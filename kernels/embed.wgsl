// embed.wgsl — embedding lookup: out[t] = row ids[t] of token_embd, dequantized (any type of quant.wgsl).
// Launcher: createEmbed (src/gpu/embed.ts).
//
// Bindings (@group(0)):
//   0 P    uniform  EmbedParams
//   1 w    storage read        one part of token_embd [cols, n_vocab]: rows [row_first, row_first + n_rows)
//   2 ids  storage read        u32 [n_tokens] token ids at ids_offset
//   3 out  storage read_write  f32 [n_tokens, out_stride]; token t at out_offset + t·out_stride
//
// Dispatch: (ceil(cols / (8·WG)), n_tokens, 1) per part; each thread writes 8 consecutive
// elements (dq8). Workgroups whose token id is not in this part return at once, so a table split
// over several buffers is one dispatch per part. Out-of-range ids (≥ n_vocab) write nothing.
// Override: WG.

struct EmbedParams {
  cols: u32,
  row_bytes: u32,
  row_first: u32,
  n_rows: u32,
  n_tokens: u32,
  ids_offset: u32,
  out_offset: u32,
  out_stride: u32,
}

@group(0) @binding(0) var<uniform> P: EmbedParams;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

#include "quant.wgsl"

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let t = wid.y;
  if (t >= P.n_tokens) {
    return;
  }
  let id = ids[P.ids_offset + t];
  if (id < P.row_first || id >= P.row_first + P.n_rows) {
    return;
  }
  let k = (wid.x * WG + tid) * 8u;
  let cols = P.cols;
  if (k >= cols) {
    return;
  }
  let d = dq8((id - P.row_first) * P.row_bytes, k, cols);
  var v = array<f32, 8>(d.a.x, d.a.y, d.a.z, d.a.w, d.b.x, d.b.y, d.b.z, d.b.w);
  let o = P.out_offset + t * P.out_stride + k;
  for (var e = 0u; e < 8u; e++) {
    if (k + e < cols) {
      out[o + e] = v[e];
    }
  }
}
