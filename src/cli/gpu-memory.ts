// --gpu-memory BYTES|auto|P% (moet run, serve, bench): loadModel's gpuMemoryBudget (src/gpu/expert-cache.ts),
// and the expert cache's line for --verbose.
import { readFile } from 'node:fs/promises';
import type { ExpertCacheOptions, ExpertCacheStats, GpuMemoryBudget } from '../gpu/expert-cache.js';
import { EVICTION_POLICIES, type EvictionPolicy } from '../gpu/expert-slots.js';
import { formatBytes, UsageError } from './util.js';

/** The help lines of --gpu-memory and --expert-policy. */
export const GPU_MEMORY_HELP = `  --gpu-memory BYTES|auto|P%
                            WebGPU: GPU memory for the weights. Everything but the routed experts
                            stays on the GPU; each MoE layer gets as many expert slots as fit and
                            the other experts are read from the file when chosen (same results,
                            one readback per MoE layer and step). BYTES takes K, M, G (KiB, MiB,
                            GiB) or KB, MB, GB (1000s); auto: 90% of the GPU's memory less one
                            session's KV cache; P%: keep P% of each layer's experts on the GPU
  --expert-policy lru|lfu|prior
                            which expert a full slot pool evicts (default lru; prior: the least
                            frequent in --expert-prior)
  --expert-prior ROUTES.json
                            expert frequencies of a calibration text (\`moet routes --json\`'s
                            per-layer load): each layer starts with its most frequent experts
`;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };

/**
 * Parses a --gpu-memory value: bytes (with an optional unit), 'auto' or 'P%' (a share of the experts).
 * @throws UsageError
 */
export function parseGpuMemory(cmd: string, v: string | undefined): GpuMemoryBudget | undefined {
  if (v === undefined) return undefined;
  const s = v.trim().toLowerCase();
  if (s === 'auto') return 'auto';
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  if (pct) {
    const f = Number(pct[1]) / 100;
    if (!(f > 0 && f <= 1)) throw new UsageError(`${cmd}: --gpu-memory ${v}: a share of the experts must be in (0%, 100%]`);
    return { expertFraction: f };
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(s);
  const unit = m ? UNITS[m[2]!] : undefined;
  if (!m || unit === undefined || !(Number(m[1]) > 0)) throw new UsageError(`${cmd}: --gpu-memory must be a number of bytes (K/M/G suffixes), auto or P%, got "${v}"`);
  return Math.floor(Number(m[1]) * unit);
}

/** Parses --expert-policy. @throws UsageError */
export function parsePolicy(cmd: string, v: string | undefined): EvictionPolicy | undefined {
  if (v === undefined) return undefined;
  if (!(EVICTION_POLICIES as readonly string[]).includes(v)) throw new UsageError(`${cmd}: --expert-policy must be one of ${EVICTION_POLICIES.join(', ')}, got "${v}"`);
  return v as EvictionPolicy;
}

/** The expert cache's figures, for --verbose (empty when every expert is on the GPU). */
export function formatExpertCache(s: ExpertCacheStats | null): string {
  if (!s) return '';
  const perLayer = s.perLayer.map((l) => (100 * l.hitRate).toFixed(0)).join('/');
  return (
    `${'expert cache'.padStart(16)} = ${s.slots}/${s.nExpert} experts per layer on the GPU (${formatBytes(s.slotBytes)} of slots + ${formatBytes(s.residentBytes)} other weights, budget ${formatBytes(s.budget)}), policy ${s.policy}\n` +
    `${''.padStart(16)}   hit rate ${(100 * s.hitRate).toFixed(1)}% (per layer ${perLayer}%), ${formatBytes(s.uploadBytesPerToken)} uploaded per token over ${s.tokens} tokens, ` +
    `${s.readbacks} id readbacks; host ms: wait ${s.waitMs.toFixed(0)}, read ${s.readMs.toFixed(0)}, write ${s.writeMs.toFixed(0)}\n`
  );
}

/** The options of the commands that take a GPU memory budget. */
export const GPU_MEMORY_OPTIONS = {
  'gpu-memory': { type: 'string' },
  'expert-policy': { type: 'string' },
  'expert-prior': { type: 'string' },
} as const;

/**
 * Per layer, each expert's token count in a `moet routes --json` document (its layers[].load); null
 * for a dense layer.
 * @throws UsageError for a file that is not one
 */
export async function readExpertPrior(cmd: string, path: string): Promise<(number[] | null)[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${cmd}: --expert-prior ${path}: ${(e as Error).message}`);
  }
  const layers = (doc as { layers?: { layer?: number; dense?: boolean; load?: unknown }[] }).layers;
  if (!Array.isArray(layers)) throw new UsageError(`${cmd}: --expert-prior ${path} is not a \`moet routes --json\` document (no layers)`);
  const out: (number[] | null)[] = [];
  for (const L of layers) {
    const load = L.load;
    out[L.layer ?? out.length] = !L.dense && Array.isArray(load) && load.every((x) => typeof x === 'number') ? (load as number[]) : null;
  }
  return out;
}

/** --gpu-memory, --expert-policy and --expert-prior as loadModel options. @throws UsageError */
export async function expertOptions(
  cmd: string,
  values: { 'gpu-memory'?: string; 'expert-policy'?: string; 'expert-prior'?: string },
): Promise<{ gpuMemoryBudget?: GpuMemoryBudget; experts?: ExpertCacheOptions }> {
  const gpuMemoryBudget = parseGpuMemory(cmd, values['gpu-memory']);
  const policy = parsePolicy(cmd, values['expert-policy']);
  const priorPath = values['expert-prior'];
  if ((policy || priorPath) && gpuMemoryBudget === undefined) throw new UsageError(`${cmd}: --expert-policy and --expert-prior need --gpu-memory`);
  if (policy === 'prior' && !priorPath) throw new UsageError(`${cmd}: --expert-policy prior needs --expert-prior ROUTES.json`);
  const prior = priorPath ? await readExpertPrior(cmd, priorPath) : undefined;
  const experts: ExpertCacheOptions | undefined = policy || prior ? { ...(policy ? { policy } : {}), ...(prior ? { prior } : {}) } : undefined;
  return { ...(gpuMemoryBudget !== undefined ? { gpuMemoryBudget } : {}), ...(experts ? { experts } : {}) };
}
