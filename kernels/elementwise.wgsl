// elementwise.wgsl — residual add and SwiGLU over n f32 elements.
// Launchers: createAdd, createSwiglu (src/gpu/elementwise.ts).
//
// Bindings (@group(0)):
//   0 P    uniform  EwParams
//   1 a    storage read        f32 [n] at a_offset      (absent with INPLACE)
//   2 b    storage read        f32 [n] at b_offset
//   3 out  storage read_write  f32 [n] at out_offset
// Entry points:
//   add     out = a + b            (INPLACE: out = out + b, the residual stream x += f(x));
//           with b_width ≠ 0, b is one row of b_width values broadcast over the rows of out
//           (a bias: out[i] += b[i mod b_width])
//   swiglu  out = silu(a) · b      (INPLACE: out = silu(out) · b), silu(v) = v / (1 + e^−v)
// A writable binding may not alias another binding of the same dispatch (WebGPU rule), so an
// in-place update binds the target once, read_write: that is the INPLACE define.
// Dispatch: (gx, gy, 1) with gx·gy ≥ ceil(n / WG) (grid2d); one element per thread.
// Override: WG.

struct EwParams {
  n: u32,
  a_offset: u32,
  b_offset: u32,
  out_offset: u32,
  b_width: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: EwParams;
#if !INPLACE
@group(0) @binding(1) var<storage, read> a: array<f32>;
#endif
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override WG: u32 = 256u;

fn elem_index(wid: vec3<u32>, nwg: vec3<u32>, tid: u32) -> u32 {
  return (wid.x + wid.y * nwg.x) * WG + tid;
}

fn lhs(i: u32) -> f32 {
#if INPLACE
  return out[P.out_offset + i];
#else
  return a[P.a_offset + i];
#endif
}

@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = elem_index(wid, nwg, tid);
  if (i < P.n) {
    let bi = select(i, i % P.b_width, P.b_width != 0u);
    out[P.out_offset + i] = lhs(i) + b[P.b_offset + bi];
  }
}

@compute @workgroup_size(WG)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let i = elem_index(wid, nwg, tid);
  if (i < P.n) {
    let g = lhs(i);
    out[P.out_offset + i] = (g / (1.0 + exp(-g))) * b[P.b_offset + i];
  }
}
