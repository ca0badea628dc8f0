// sample.wgsl — GPU-side candidate selection: the k largest logits of the vocabulary (greedy is
// k = 1), so that a decode step reads back 8·k bytes instead of n_vocab floats.
// Launcher: createTopK (src/gpu/sample.ts). Two entry points sharing one binding layout:
//
//   block_topk  dispatch (n_blocks, 1, 1): workgroup b selects the k best of the logits
//               [b·block_len, min((b+1)·block_len, n)) and writes them to part[b·k .. b·k + k)
//   merge_topk  dispatch (1, 1, 1): selects the k best of the n_blocks·k pairs in `part` → out
//
// Bindings (@group(0)):
//   0 P       uniform             TopKParams
//   1 logits  storage read        f32 [n] at logits_offset (the LM head's output)
//   2 part    storage read_write  u32 [n_blocks, k, 2]: (f32 bits of the value, token id) pairs
//   3 out     storage read_write  u32 [2·k]: ids in [0, k), their logits as f32 bits in [k, 2k)
//
// Order: value descending, ties → lower id (the CPU sampler's argmax rule). NaN and −inf are never
// selected; slots with no candidate left (k > n, or only NaN/−inf) get id 0xffffffff and value
// −3.40282347e38.
//
// Selection inside a workgroup: k rounds of "the best element ranked after the previous winner".
// Each thread scans a strided slice once and keeps its best; every round a tree reduction
// (log2 WG barrier steps) finds the workgroup's best, and only the thread that owned the winner
// rescans its slice (for the best element ranked after the winner) — the others' bests still hold.
// No element is marked or written, so the logits stay intact.
//
// Override: WG (threads, power of two).

struct TopKParams {
  n: u32,              // logits
  k: u32,              // candidates to select (1 ≤ k)
  block_len: u32,      // logits per block_topk workgroup
  n_blocks: u32,       // block_topk workgroups (= the merge's n_blocks·k inputs / k)
  logits_offset: u32,
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: TopKParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> part: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

override WG: u32 = 128u;

const NONE: u32 = 0xffffffffu;
const LOWEST: f32 = -0x1.fffffep+127f; // sentinel value of an empty slot (WGSL has no infinity literal)

var<workgroup> red_v: array<f32, WG>;
var<workgroup> red_i: array<u32, WG>;

// a ranks before b: larger value, or equal value and lower id. False whenever a value is NaN.
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
  return av > bv || (av == bv && ai < bi);
}

struct Cand {
  v: f32,
  i: u32,
}

// Element j of the current source: a logit (block stage) or a (value, id) pair (merge stage).
fn load(merge: bool, j: u32) -> Cand {
  if (merge) {
    return Cand(bitcast<f32>(part[2u * j]), part[2u * j + 1u]);
  }
  return Cand(logits[P.logits_offset + j], j);
}

// This thread's best element of [start, end) (stride WG) ranked strictly after `last` (if any).
fn scan(merge: bool, tid: u32, start: u32, end: u32, has_last: bool, last: Cand) -> Cand {
  var best = Cand(LOWEST, NONE);
  for (var j = start + tid; j < end; j += WG) {
    let c = load(merge, j);
    if (has_last && !before(last.v, last.i, c.v, c.i)) {
      continue;
    }
    if (before(c.v, c.i, best.v, best.i)) {
      best = c;
    }
  }
  return best;
}

// k rounds of selection over [start, end); round r's winner goes to emit(r).
fn select_k(merge: bool, tid: u32, start: u32, end: u32, blk: u32) {
  var mine = scan(merge, tid, start, end, false, Cand(0.0, 0u));
  for (var r = 0u; r < P.k; r++) {
    red_v[tid] = mine.v;
    red_i[tid] = mine.i;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
      if (tid < s && before(red_v[tid + s], red_i[tid + s], red_v[tid], red_i[tid])) {
        red_v[tid] = red_v[tid + s];
        red_i[tid] = red_i[tid + s];
      }
      workgroupBarrier();
    }
    let win = Cand(red_v[0], red_i[0]);
    if (tid == 0u) {
      if (merge) {
        out[r] = win.i;
        out[P.k + r] = bitcast<u32>(win.v);
      } else {
        let o = 2u * (blk * P.k + r);
        part[o] = bitcast<u32>(win.v);
        part[o + 1u] = win.i;
      }
    }
    workgroupBarrier(); // everyone has read red_*[0] before the next round overwrites it
    if (win.i != NONE && win.i == mine.i) {
      mine = scan(merge, tid, start, end, true, win);
    }
  }
}

@compute @workgroup_size(WG)
fn block_topk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let b = wid.x;
  let start = min(b * P.block_len, P.n);
  let end = min(start + P.block_len, P.n);
  select_k(false, tid, start, end, b);
}

@compute @workgroup_size(WG)
fn merge_topk(@builtin(local_invocation_index) tid: u32) {
  select_k(true, tid, 0u, P.n_blocks * P.k, 0u);
}
