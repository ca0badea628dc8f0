// Each launcher's KernelSpec (src/gpu/ops.ts) against its WGSL, through wgsl_reflect: binding
// numbers, names, storage vs uniform, read vs read_write, the uniform struct's size and field
// offsets/types, and the override constants. Every define variant a launcher may add is reflected.
// No GPU needed.
import { describe, expect, it } from 'vitest';
// wgsl_reflect's "main" is a CommonJS bundle inside a "type": "module" package, which Node cannot
// load; its ES module build is imported directly (types come from the package's declarations).
// @ts-ignore -- no declaration file for the deep path
import * as wgslReflectModule from 'wgsl_reflect/wgsl_reflect.module.js';
import type { WgslReflect as WgslReflectType } from 'wgsl_reflect';
import { KERNEL_SPECS } from '../../src/gpu/ops.js';
import { kernelSource, type BindingKind } from '../../src/runtime/pipelines.js';

const { WgslReflect } = wgslReflectModule as unknown as { WgslReflect: new (code: string) => WgslReflectType };
const UNIFORM = 0; // wgsl_reflect ResourceType.Uniform
const STORAGE = 1; // ResourceType.Storage

function kindOf(resourceType: number, access: string): BindingKind | string {
  if (resourceType === UNIFORM) return 'uniform';
  if (resourceType === STORAGE) return access === 'read_write' ? 'storage' : 'read-only-storage';
  return `resource type ${resourceType}`;
}

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

        const uni = entry!.resources.find((r) => r.resourceType === UNIFORM);
        if (spec.uniform) {
          expect(uni, `${label}: uniform binding`).toBeDefined();
          expect(uni!.type.name, `${label}: uniform struct`).toBe(spec.uniform.struct);
          expect(uni!.size, `${label}: uniform struct size`).toBe(spec.uniform.size);
          const members = (uni!.members ?? []).map((m) => ({ name: m.name, type: m.type.name, offset: m.offset }));
          expect(members, `${label}: uniform fields`).toEqual(spec.uniform.fields.map((f) => ({ name: f.name, type: f.type, offset: f.offset })));
        } else {
          expect(uni, `${label}: unexpected uniform`).toBeUndefined();
        }
        const overrides = reflect.overrides.map((o) => o.name);
        for (const o of spec.overrides ?? []) expect(overrides, `${label}: override ${o}`).toContain(o);
      });
    }
  }
});
