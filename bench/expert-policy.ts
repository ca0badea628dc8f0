// Which expert the expert cache should evict (src/gpu/expert-slots.ts, issue 18), measured on routing
// traces of a trained model: the shipped tiny-moe (4 layers, 8 experts, 2 used; docs/tiny-moe.md) on
// its held-out labelled set. The first half of each domain's documents is the calibration text (the
// 'prior' policy's expert frequencies, and its initial experts); the second half is replayed one
// token at a time (one batch per token: what decode does) through the engine's own SlotTable for
// every policy and slot count, with Belady's optimal replacement as the ceiling and the share of
// slots (S/n: what random routing would give) as the floor.
//
//   npx tsx bench/expert-policy.ts [--model FILE] [--domains SET.jsonl] [--order grouped|interleaved] [--json]
//
// Traces come from the CPU backend (the routing is the model's, whichever backend runs it).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/model.js';
import { tinyHeldOutPath, tinyModelPath } from '../src/tiny.js';
import { EVICTION_POLICIES, simulateOptimal, simulateSlots } from '../src/gpu/expert-slots.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    domains: { type: 'string' },
    order: { type: 'string', default: 'grouped' },
    'max-tokens': { type: 'string', default: '384' },
    json: { type: 'boolean' },
  },
});

interface Doc {
  domain: string;
  text: string;
}

const docs: Doc[] = (await readFile(values.domains ?? tinyHeldOutPath, 'utf8'))
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Doc);
const byDomain = new Map<string, Doc[]>();
for (const d of docs) byDomain.set(d.domain, [...(byDomain.get(d.domain) ?? []), d]);
const calib: Doc[] = [];
const evalDocs: Doc[][] = [];
for (const ds of byDomain.values()) {
  const h = Math.ceil(ds.length / 2);
  calib.push(...ds.slice(0, h));
  evalDocs.push(ds.slice(h));
}
// grouped: a domain's documents one after another (a conversation stays on its topic);
// interleaved: the domains take turns document by document
const order: Doc[] = [];
if (values.order === 'interleaved') {
  for (let i = 0; evalDocs.some((ds) => i < ds.length); i++) for (const ds of evalDocs) if (i < ds.length) order.push(ds[i]!);
} else {
  for (const ds of evalDocs) order.push(...ds);
}

const model = await loadModel(values.model ?? tinyModelPath, { backend: 'cpu' });
const { nLayer, nExpert, nExpertUsed: k } = model.config;
const maxTokens = Number(values['max-tokens']);

/** per token, per layer: the k chosen experts (a document's tokens from an empty context) */
async function routesOf(ds: Doc[]): Promise<number[][][]> {
  const out: number[][][] = [];
  const s = model.createSession();
  for (const d of ds) {
    s.reset();
    const ids = model.tokenize(d.text).slice(0, Math.min(maxTokens, model.contextLength));
    await s.eval(ids, { trace: { routing: true } });
    const t = s.lastTrace!;
    for (let i = 0; i < t.tokens.length; i++) {
      const perLayer: number[][] = [];
      for (let l = 0; l < nLayer; l++) perLayer.push(Array.from(t.ids.subarray((i * nLayer + l) * k, (i * nLayer + l + 1) * k)));
      out.push(perLayer);
    }
  }
  s.dispose();
  return out;
}

const t0 = performance.now();
const calibRoutes = await routesOf(calib);
const evalRoutes = await routesOf(order);
await model.dispose();
const prior = Array.from({ length: nLayer }, () => new Array<number>(nExpert).fill(0));
for (const tok of calibRoutes) tok.forEach((ids, l) => ids.forEach((e) => prior[l]![e]!++));

interface Row {
  slots: number;
  share: number;
  policy: string;
  hitRate: number;
  perLayer: number[];
}
const rows: Row[] = [];
for (let S = k; S < nExpert; S++) {
  for (const policy of [...EVICTION_POLICIES, 'belady'] as const) {
    const perLayer: number[] = [];
    for (let l = 0; l < nLayer; l++) {
      const batches = evalRoutes.map((tok) => tok[l]!);
      const r = policy === 'belady' ? simulateOptimal(batches, nExpert, S) : simulateSlots(batches, nExpert, S, policy, prior[l]);
      perLayer.push(r.hitRate);
    }
    rows.push({ slots: S, share: S / nExpert, policy, hitRate: perLayer.reduce((a, b) => a + b, 0) / nLayer, perLayer });
  }
}

if (values.json) {
  console.log(JSON.stringify({ model: values.model ?? 'tiny-moe', order: values.order, calibTokens: calibRoutes.length, evalTokens: evalRoutes.length, nLayer, nExpert, k, rows }, null, 2));
} else {
  console.log(`${values.model ?? 'tiny-moe'}: ${nLayer} layers, ${k} of ${nExpert} experts; calibration ${calibRoutes.length} tokens, replayed ${evalRoutes.length} tokens (${values.order}), ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const policies = [...EVICTION_POLICIES, 'belady'];
  console.log(`| slots | share | ${policies.join(' | ')} |`);
  console.log(`| ---: | ---: | ${policies.map(() => '---:').join(' | ')} |`);
  for (let S = k; S < nExpert; S++) {
    const cells = policies.map((p) => {
      const r = rows.find((x) => x.slots === S && x.policy === p)!;
      return `${(100 * r.hitRate).toFixed(1)}% (${r.perLayer.map((h) => (100 * h).toFixed(0)).join('/')})`;
    });
    console.log(`| ${S}/${nExpert} | ${((100 * S) / nExpert).toFixed(0)}% | ${cells.join(' | ')} |`);
  }
}
