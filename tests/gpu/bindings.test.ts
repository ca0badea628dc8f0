// Each launcher's KernelSpec (src/gpu/ops.ts) against its WGSL, through wgsl_reflect: binding
// numbers, names, storage vs uniform, read vs read_write, the uniform struct's size and field
// offsets/types, and the override constants. Every define variant a launcher may add is reflected.
// No GPU needed.
import { describe, expect, it } from 'vitest';
import { KERNEL_SPECS } from '../../src/gpu/ops.js';
import { kernelSource } from '../../src/runtime/pipelines.js';
import { expectUniformAndOverrides, kindOf, UNIFORM, WgslReflect } from './reflect.js';

describe('launcher bindings match the WGSL (wgsl_reflect)', () => {
  for (const [name, spec] of Object.entries(KERNEL_SPECS)) {
    for (const variant of spec.variants ?? [{}]) {
      const label = `${name} ${spec.file}:${spec.entryPoint} ${JSON.stringify({ ...spec.defines, ...variant })}`;
      it(label, () => {
        const reflect = new WgslReflect(kernelSource(spec, variant));
        const entry = reflect.entry.compute.find((f) => f.name === spec.entryPoint);
        expect(entry, `${label}: entry point`).toBeDefined();
        const got = entry!.resources
          .map((r) => ({ group: r.group, binding: r.binding, name: r.name, kind: kindOf(r.resourceType, r.access) }))
          .sort((a, b) => a.binding - b.binding);
        const want = spec.bindings.map((b) => ({ group: 0, binding: b.binding, name: b.name, kind: b.kind })).sort((a, b) => a.binding - b.binding);
        expect(got, `${label}: bindings`).toEqual(want);

        expectUniformAndOverrides(label, spec, entry!.resources.find((r) => r.resourceType === UNIFORM), reflect);
      });
    }
  }
});
