// The fixtures themselves: deterministic, shaped and typed as specified, decodable identically by
// gguf/quants.ts and the fixture's own decoder, loadable by llama.cpp with sane distributions, and
// with non-degenerate routing that has no near-tie on the golden tests' sequences.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dequantize } from '../../gguf/quants.js';
import { openGGUF } from '../../gguf/reader.js';
import { GGMLType, ggmlTypeName } from '../../gguf/types.js';
import { configFromGGUF } from '../../src/config.js';
import { CpuBackend } from '../../src/cpu/backend.js';
import { decodeTensor } from '../fixtures/encode.js';
import { FIXTURES, fixturePath, fixtureSpec, generateFixture, tensorType } from '../fixtures/make.js';
import { argmax, logSoftmax } from './compare.js';
import { llamaReference } from './llama.js';

/** smallest allowed relative gap between the k-th and (k+1)-th expert probability */
const ROUTER_MIN_REL_GAP = 1e-3;

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
      expect(f.getValue(`${a}.attention.key_length`)).toBe(spec.headDim);
      expect(f.getValue('tokenizer.ggml.model')).toBe('gpt2');
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

  it('loads in llama.cpp with sane next-token distributions', async () => {
    const ref = await llamaReference(await fixturePath(name), { positions });
    const V = ref.nVocab;
    let entropy = 0;
    let top = 0;
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
      argmaxes.add(argmax(row));
    }
    // neither uniform nor collapsed onto one token
    expect(entropy).toBeGreaterThan(1);
    expect(entropy).toBeLessThan(Math.log(V) - 0.5);
    expect(top).toBeLessThan(0.8);
    expect(argmaxes.size).toBeGreaterThan(ref.tokens.length / 4);
  });

  it.skipIf(spec.arch !== 'qwen3moe')('routes to every expert, none dominant, with no near-tie on the golden sequences', async () => {
    const path = await fixturePath(name, 'f32twin');
    const ref = await llamaReference(path, { positions });
    const f = await openGGUF(path);
    const config = configFromGGUF(f.metadata, f.tensorByName);
    const be = await CpuBackend.load(f, config);
    await f.close();
    const E = config.nExpert;
    const k = config.nExpertUsed;
    let minGap = Infinity;
    let where = '';
    for (const [label, tokens] of [['teacher-forced', ref.tokens], ['greedy', [...ref.prompt, ...ref.greedy]]] as const) {
      const probs: Float32Array[] = [];
      const seq = be.createSequence(256, {
        onTensor: (t, il, d) => {
          if (t === 'ffn_moe_probs') probs[il] = d as Float32Array;
        },
      });
      await seq.eval([...tokens]);
      for (let il = 0; il < config.nLayer; il++) {
        const uses = new Array<number>(E).fill(0);
        for (let p = 0; p < tokens.length; p++) {
          const row = [...probs[il]!.subarray(p * E, (p + 1) * E)].map((v, e) => [v, e] as const).sort((x, y) => y[0] - x[0]);
          for (let j = 0; j < k; j++) uses[row[j]![1]]!++;
          const gap = (row[k - 1]![0] - row[k]![0]) / row[k - 1]![0];
          if (gap < minGap) {
            minGap = gap;
            where = `${label} position ${p} layer ${il}`;
          }
        }
        if (label === 'teacher-forced') {
          expect(Math.min(...uses), `layer ${il}: an expert is never used`).toBeGreaterThan(0);
          expect(Math.max(...uses) / tokens.length, `layer ${il}: one expert takes almost every token`).toBeLessThan(0.8);
        }
      }
    }
    expect(minGap, `router near-tie at ${where}`).toBeGreaterThan(ROUTER_MIN_REL_GAP);
    await be.dispose();
  });
});
