// Shared by the binding tests: launchers' KernelSpecs against their WGSL through wgsl_reflect. No GPU
// needed.
import { expect, it } from 'vitest';
// wgsl_reflect's "main" is a CommonJS bundle inside a "type": "module" package, which Node cannot
// load; its ES module build is imported directly (types come from the package's declarations).
// @ts-ignore -- no declaration file for the deep path
import * as wgslReflectModule from 'wgsl_reflect/wgsl_reflect.module.js';
import type { FunctionInfo, VariableInfo, WgslReflect as WgslReflectType } from 'wgsl_reflect';
import { kernelSource, type BindingKind, type KernelSpec } from '../../src/runtime/pipelines.js';

export const { WgslReflect } = wgslReflectModule as unknown as { WgslReflect: new (code: string) => WgslReflectType };

export const UNIFORM = 0; // wgsl_reflect ResourceType.Uniform
const STORAGE = 1; // ResourceType.Storage

/** the BindingKind of a reflected resource */
export function kindOf(resourceType: number, access: string): BindingKind | string {
  if (resourceType === UNIFORM) return 'uniform';
  if (resourceType === STORAGE) return access === 'read_write' ? 'storage' : 'read-only-storage';
  return `resource type ${resourceType}`;
}

/**
 * One test per spec and per define variant it may be launched with, labelled
 * `name file:entryPoint {defines}`: reflects the WGSL those defines give, expects the entry point, and
 * hands both to `check`.
 */
export function itReflectsEachVariant(
  specs: Record<string, KernelSpec>,
  check: (label: string, spec: KernelSpec, reflect: WgslReflectType, entry: FunctionInfo) => void,
): void {
  for (const [name, spec] of Object.entries(specs)) {
    for (const variant of spec.variants ?? [{}]) {
      const label = `${name} ${spec.file}:${spec.entryPoint} ${JSON.stringify({ ...spec.defines, ...variant })}`;
      it(label, () => {
        const reflect = new WgslReflect(kernelSource(spec, variant));
        const entry = reflect.entry.compute.find((f) => f.name === spec.entryPoint);
        expect(entry, `${label}: entry point`).toBeDefined();
        check(label, spec, reflect, entry!);
      });
    }
  }
}

/**
 * The spec's uniform (struct name, size, field names, types and offsets; or none) matches the
 * reflected uniform binding `uni`, and every override the spec names is declared.
 */
export function expectUniformAndOverrides(label: string, spec: KernelSpec, uni: VariableInfo | undefined, reflect: WgslReflectType): void {
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
}

/**
 * The entry point's bindings (number, name, kind) are exactly the spec's, in order; its uniform has
 * the spec's size and field names and offsets; every override the spec names is declared. For a
 * spec with a uniform, without define variants.
 */
export function expectSpecMatchesWgsl(spec: KernelSpec): void {
  const reflect = new WgslReflect(kernelSource(spec, {}));
  const entry = reflect.entry.compute.find((f) => f.name === spec.entryPoint)!;
  expect(entry).toBeDefined();
  const got = entry.resources
    .map((r) => ({ binding: r.binding, name: r.name, kind: kindOf(r.resourceType, r.access) }))
    .sort((a, b) => a.binding - b.binding);
  expect(got).toEqual(spec.bindings.map((b) => ({ binding: b.binding, name: b.name, kind: b.kind })));
  const uni = entry.resources.find((r) => r.resourceType === UNIFORM)!;
  const members = uni.type as unknown as { members: { name: string; offset: number }[]; size: number };
  expect(members.size).toBe(spec.uniform!.size);
  expect(members.members.map((m) => [m.name, m.offset])).toEqual(spec.uniform!.fields.map((f) => [f.name, f.offset]));
  for (const o of spec.overrides ?? []) expect(reflect.overrides.some((v) => v.name === o), `override ${o}`).toBe(true);
}
