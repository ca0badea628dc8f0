// Each launcher's KernelSpec (src/gpu/matvec.ts, matmul.ts, norm.ts, embed.ts, elementwise.ts, prologue.ts; src/gpu/ops.ts re-exports them) against its WGSL, through wgsl_reflect: binding
// numbers, names, storage vs uniform, read vs read_write, the uniform struct's size and field
// offsets/types, and the override constants. Every define variant a launcher may add is reflected.
// No GPU needed.
import { describe, expect } from 'vitest';
import { KERNEL_SPECS } from '../../src/gpu/ops.js';
import { expectUniformAndOverrides, itReflectsEachVariant, kindOf, UNIFORM } from './reflect.js';

describe('launcher bindings match the WGSL (wgsl_reflect)', () => {
  itReflectsEachVariant(KERNEL_SPECS, (label, spec, reflect, entry) => {
    const got = entry.resources
      .map((r) => ({ group: r.group, binding: r.binding, name: r.name, kind: kindOf(r.resourceType, r.access) }))
      .sort((a, b) => a.binding - b.binding);
    const want = spec.bindings.map((b) => ({ group: 0, binding: b.binding, name: b.name, kind: b.kind })).sort((a, b) => a.binding - b.binding);
    expect(got, `${label}: bindings`).toEqual(want);

    expectUniformAndOverrides(label, spec, entry.resources.find((r) => r.resourceType === UNIFORM), reflect);
  });
});
