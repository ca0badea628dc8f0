// The fixtures themselves: deterministic, shaped and typed as specified, decodable identically by
// gguf/quants.ts and the fixture's own decoder, loadable by llama.cpp with peaked distributions that
// follow the fixture's successor map, and (MoE) routing that follows the designed groups over every
// expert. Whether the fixtures are fair to the golden tests (llama.cpp agrees with itself, clear
// margins) is fairness.test.ts's subject.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize } from '../../gguf/quants.js';
import { openGGUF } from '../../gguf/reader.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { configFromGGUF } from '../../src/config.js';
import { loadCpuBackend } from '../../src/cpu/backend.js';
import { decodeTensor } from '../fixtures/encode.js';
import { FIXTURES, fixturePath, fixtureSpec, fixtureStructure, generateFixture, tensorType } from '../fixtures/make.js';
import { argmax, logSoftmax } from './compare.js';
import { llamaReference } from './llama.js';

describe.each(FIXTURES)('fixture %s', (name) => {
  const spec = fixtureSpec(name);
  const positions = spec.vocab === 'qwen3' ? 100 : 128;

  it('has the specified metadata, shapes and ggml types', async () => {
    const f = await openGGUF(await fixturePath(name));
    try {
      const a = spec.arch;
      expect(f.getValue('general.architecture')).toBe(a);
      for (const k of ['block_count', 'context_length', 'embedding_length', 'feed_forward_length', 'attention.head_count',
        'attention.head_count_kv', 'attention.key_length', 'attention.value_length', 'attention.layer_norm_rms_epsilon']) {
        expect(f.getValue(`${a}.${k}`), k).toBeDefined();
      }
      if (a === 'qwen3moe') {
        expect(f.getValue(`${a}.expert_count`)).toBe(spec.nExpert);
        expect(f.getValue(`${a}.expert_used_count`)).toBe(spec.nExpertUsed);
        expect(f.getValue(`${a}.expert_feed_forward_length`)).toBe(spec.nFfExp);
      }
      // (deepseek2's MLA files: key_length is the cache row, kv_lora_rank + rope dims)
      expect(f.getValue(`${a}.attention.key_length`)).toBe(spec.deepseek ? spec.deepseek.kvLoraRank + spec.deepseek.qkRope : spec.headDim);
      expect(f.getValue('tokenizer.ggml.model')).toBe(spec.vocab === 'mistral' ? 'llama' : 'gpt2');
      const config = configFromGGUF(f.metadata, f.tensorByName);
      if (spec.vocab === 'qwen3') expect(config.nVocab).toBe(151936);
      expect(config.tiedEmbeddings).toBe(spec.tied);
      expect(f.tensorByName.has('output.weight')).toBe(!spec.tied);
      const mix: Record<string, number> = {};
      for (const t of f.tensors) {
        expect(t.type, t.name).toBe(tensorType(spec, t.name, t.shape));
        const k = ggmlTypeName(t.type);
        mix[k] = (mix[k] ?? 0) + 1;
      }
      if (spec.quant === 'q4_k_m') {
        expect(mix.Q4_K).toBeGreaterThan(0);
        expect(mix.Q6_K).toBeGreaterThan(0);
      }
      if (spec.vocab === 'qwen3') {
        expect(f.tensorByName.get('output.weight')).toMatchObject({ type: GGMLType.Q6_K, shape: [256, 151936] });
      }
    } finally {
      await f.close();
    }
  });

  it('decodes identically with gguf/quants.ts and the fixture decoder (the F32 twin holds those values)', async () => {
    const f = await openGGUF(await fixturePath(name));
    const tw = await openGGUF(await fixturePath(name, 'f32twin'));
    try {
      for (const t of f.tensors) {
        const n = t.shape.reduce((x, y) => x * y, 1);
        const bytes = await f.readTensor(t);
        const ours = decodeTensor(t.type, bytes, n);
        const theirs = dequantize(t.type, bytes, n);
        const twinBytes = await tw.readTensor(t.name);
        const twin = new Float32Array(twinBytes.buffer, twinBytes.byteOffset, n);
        expect(tw.tensorByName.get(t.name)!.type).toBe(GGMLType.F32);
        for (let i = 0; i < n; i++) {
          if (!Object.is(ours[i], theirs[i]) || !Object.is(ours[i], twin[i])) {
            expect.fail(`${t.name} (${ggmlTypeName(t.type)}) element ${i}: fixture decoder ${ours[i]}, gguf/quants ${theirs[i]}, twin ${twin[i]}`);
          }
        }
      }
    } finally {
      await f.close();
      await tw.close();
    }
  });

  it.skipIf(spec.vocab === 'qwen3')('is deterministic (regenerating gives the same bytes)', async () => {
    const tmp = join(tmpdir(), `moet-fixture-${process.pid}-${name}.gguf`);
    try {
      await generateFixture(name, tmp);
      const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
      expect(sha(tmp)).toBe(sha(await fixturePath(name)));
    } finally {
      rmSync(tmp, { force: true });
    }
  });

  it('loads in llama.cpp with peaked next-token distributions that follow the successor map', async () => {
    const ref = await llamaReference(await fixturePath(name), { positions });
    const { successor } = await fixtureStructure(name);
    const V = ref.nVocab;
    let entropy = 0;
    let top = 0;
    let follows = 0;
    const argmaxes = new Set<number>();
    for (let p = 0; p < ref.tokens.length; p++) {
      const row = ref.logits.subarray(p * V, (p + 1) * V);
      expect(row.every(Number.isFinite), `position ${p} has non-finite logits`).toBe(true);
      const lp = logSoftmax(row);
      let h = 0;
      let mx = 0;
      for (const l of lp) {
        const q = Math.exp(l);
        h -= q > 0 ? q * l : 0;
        mx = Math.max(mx, q);
      }
      entropy += h / ref.tokens.length;
      top += mx / ref.tokens.length;
      const am = argmax(row);
      argmaxes.add(am);
      if (am === successor[ref.tokens[p]!]) follows++;
    }
    console.log(
      `${name.padEnd(26)} llama.cpp: mean top-1 probability ${top.toFixed(3)}, entropy ${entropy.toFixed(2)} nats, ` +
        `${argmaxes.size} distinct argmaxes, argmax = successor(token) at ${follows}/${ref.tokens.length}`,
    );
    // peaked like a language model's (structure.ts), neither uniform nor collapsed onto one token
    expect(top).toBeGreaterThan(0.5);
    expect(top).toBeLessThan(0.95);
    expect(entropy).toBeGreaterThan(0.3);
    expect(entropy).toBeLessThan(Math.log(V) - 0.5);
    expect(argmaxes.size).toBeGreaterThan(ref.tokens.length / 4);
    // the context determines the prediction through the successor map
    expect(follows / ref.tokens.length).toBeGreaterThanOrEqual(0.9);
  });

  // (deepseek2: over its MoE layers; the leading dense ones have no router)
  it.skipIf(spec.nExpert === undefined)('routes every token to its group\'s experts, every expert used, none dominant', async () => {
    const path = await fixturePath(name);
    const ref = await llamaReference(path, { positions });
    const { group, chosen } = await fixtureStructure(name);
    const topk = await routerTopK(path, ref.tokens);
    const { nExpert: E, nExpertUsed: k, nLayer } = spec as { nExpert: number; nExpertUsed: number; nLayer: number };
    let designed = 0;
    let routed = 0;
    for (let il = 0; il < nLayer; il++) {
      if (!topk[il]) continue; // a dense layer
      routed += ref.tokens.length;
      const uses = new Array<number>(E).fill(0);
      for (let p = 0; p < ref.tokens.length; p++) {
        const ids = topk[il]!.slice(p * k, (p + 1) * k);
        for (const e of ids) uses[e]!++;
        const want = chosen![il]![group![ref.tokens[p]!]!]!;
        if ([...ids].sort().join() === [...want].sort().join()) designed++;
      }
      expect(Math.min(...uses), `layer ${il}: an expert is never used`).toBeGreaterThan(0);
      expect(Math.max(...uses) / ref.tokens.length, `layer ${il}: one expert takes almost every token`).toBeLessThan(0.8);
    }
    expect(routed).toBeGreaterThan(0);
    expect(designed / routed).toBeGreaterThanOrEqual(0.95);
  });
});

/** moet's CPU backend (numerics 'llamacpp', the file itself): the experts chosen per layer, [layer][position · k + j] */
async function routerTopK(path: string, tokens: number[]): Promise<Int32Array[]> {
  const f = await openGGUF(path);
  const config = configFromGGUF(f.metadata, f.tensorByName);
  const be = await loadCpuBackend(f, config);
  await f.close();
  try {
    const ids: Int32Array[] = [];
    const seq = be.createSequence(tokens.length + 8, {
      onTensor: (t, il, d) => {
        if (t === 'ffn_moe_topk') ids[il] = Int32Array.from(d as ArrayLike<number>);
      },
    });
    await seq.eval([...tokens]);
    seq.dispose();
    return ids;
  } finally {
    await be.dispose();
  }
}
