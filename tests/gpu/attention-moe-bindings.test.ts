// The attention, MoE and MLA launchers' KernelSpecs (src/gpu/attention.ts, moe.ts, mla.ts) against their
// WGSL through wgsl_reflect, like tests/gpu/bindings.test.ts does for the dense launchers: binding
// numbers, names, uniform vs storage, read vs read_write, the uniform struct's size and field
// offsets/types, the override constants; every define variant. No GPU needed.
import { describe, expect } from 'vitest';
import { ATTENTION_SPECS } from '../../src/gpu/attention.js';
import { MLA_SPECS } from '../../src/gpu/mla.js';
import { MOE_SPECS } from '../../src/gpu/moe.js';
import { expectUniformAndOverrides, itReflectsEachVariant, kindOf } from './reflect.js';

describe('attention and MoE launcher bindings match the WGSL (wgsl_reflect)', () => {
  itReflectsEachVariant({ ...ATTENTION_SPECS, ...MOE_SPECS, ...MLA_SPECS }, (label, spec, reflect, entry) => {
    const used = entry.resources.map((r) => ({ binding: r.binding, name: r.name, kind: kindOf(r.resourceType, r.access), group: r.group }));
    // an entry point may leave some of the spec's bindings unused (attn_decode's reduce shares
    // partial's layout); every binding it uses must be in the spec, and the module must
    // declare every binding of the spec with the spec's name and kind
    const want = spec.bindings.map((b) => ({ binding: b.binding, name: b.name, kind: b.kind, group: 0 }));
    for (const u of used) expect(want, `${label}: binding ${u.binding} (${u.name}) used by the entry point`).toContainEqual(u);
    const declared = [...reflect.uniforms, ...reflect.storage].map((r) => ({ binding: r.binding, name: r.name, kind: kindOf(r.resourceType, r.access), group: r.group }));
    expect(declared.sort((a, b) => a.binding - b.binding), `${label}: declared bindings`).toEqual([...want].sort((a, b) => a.binding - b.binding));

    expectUniformAndOverrides(label, spec, reflect.uniforms[0], reflect);
  });
});
