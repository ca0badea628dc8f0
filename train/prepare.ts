// Data preparation for the tiny MoE: collects the labelled documents (train/sources.ts), holds out
// about 1 in 25 of them, trains the byte-level BPE vocabulary on the training part, tokenizes every
// document with moet's own tokenizer (the one llama.cpp agrees with) and writes
//   train/data/tokenizer.json           tokens, merges, <|endoftext|> id
//   train/data/<domain>.{train,val}.u16 the documents' tokens, each followed by <|endoftext|>
//   train/data/meta.json                sizes per domain and source
//   models/tiny-moe-heldout.jsonl       the shipped held-out labelled set ({domain, source, path, text})
//
// usage: node --import tsx train/prepare.ts [--sources a,b,...] [--vocab N] [--out DIR]
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { trainBpe } from './bpe.js';
import { cutAtLine, DOMAINS, isHeldOut, resolveSources, type Doc, type Domain } from './sources.js';
import { EOT, vocabTokenizer, type VocabFile } from './vocab.js';

const ROOT = join(import.meta.dirname, '..');
/** training text kept per domain (bytes of UTF-16 length; documents in a hashed order) */
const TRAIN_CAP: Record<Domain, number> = { prose: 8e6, code: 12e6, svg: 10e6, json: 6e6 };
/** text the BPE learns from, per domain */
const BPE_CAP: Record<Domain, number> = { prose: 3e6, code: 3e6, svg: 1.5e6, json: 1.5e6 };
/** the shipped held-out set: documents per domain and characters per document */
const HELDOUT_DOCS = 24;
const HELDOUT_CHARS = 1600;

const log = (s: string) => process.stderr.write(`${s}\n`);

function hashOrder(docs: Doc[]): Doc[] {
  const key = (d: Doc) => createHash('sha256').update(`order:${d.source}:${d.path}`).digest('hex');
  return docs.map((d) => [key(d), d] as const).sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([, d]) => d);
}

function take(docs: Doc[], cap: number): Doc[] {
  const out: Doc[] = [];
  let n = 0;
  for (const d of docs) {
    if (n >= cap) break;
    out.push(d);
    n += d.text.length;
  }
  return out;
}

function writeAtomic(path: string, data: string | Uint8Array): void {
  writeFileSync(`${path}.tmp`, data);
  renameSync(`${path}.tmp`, path);
}

function main(): void {
  const { values } = parseArgs({
    options: { sources: { type: 'string' }, vocab: { type: 'string' }, out: { type: 'string' } },
  });
  const sources = resolveSources(values.sources?.split(',').map((s) => s.trim()).filter(Boolean));
  const nVocab = Number(values.vocab ?? 4096);
  if (!Number.isInteger(nVocab) || nVocab < 512 || nVocab > 16000) throw new Error(`--vocab ${values.vocab}: expected an integer in 512..16000`);
  const out = values.out ?? join(ROOT, 'train', 'data');
  mkdirSync(out, { recursive: true });

  const train: Record<Domain, Doc[]> = { prose: [], code: [], svg: [], json: [] };
  const val: Record<Domain, Doc[]> = { prose: [], code: [], svg: [], json: [] };
  const bySource: Record<string, { domain: Domain; licence: string; provider: string; docs: number; chars: number }> = {};
  for (const [name, s] of sources) {
    const docs = s.collect(s.root);
    bySource[name] = { domain: s.domain, licence: s.licence, provider: s.provider, docs: docs.length, chars: docs.reduce((n, d) => n + d.text.length, 0) };
    log(`${name}: ${docs.length} documents, ${(bySource[name].chars / 1e6).toFixed(2)} M chars (${s.domain})`);
    for (const d of docs) (isHeldOut(d) ? val : train)[d.domain].push(d);
  }
  for (const dom of DOMAINS) {
    train[dom] = take(hashOrder(train[dom]), TRAIN_CAP[dom]);
    val[dom] = hashOrder(val[dom]);
  }
  const present = DOMAINS.filter((d) => train[d].length > 0);

  // vocabulary: byte tokens, merges, <|endoftext|>
  const t0 = Date.now();
  const bpeTexts = present.flatMap((d) => take(train[d], BPE_CAP[d]).map((x) => x.text));
  const bpe = trainBpe(bpeTexts, nVocab - 256 - 1, log);
  const vocab: VocabFile = { tokens: [...bpe.tokens, EOT], merges: bpe.merges, eot: bpe.tokens.length };
  log(`bpe: ${vocab.tokens.length} tokens in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  writeAtomic(join(out, 'tokenizer.json'), JSON.stringify(vocab));
  const tok = vocabTokenizer(vocab);

  const meta: Record<string, unknown> = { vocab: vocab.tokens.length, eot: vocab.eot, sources: bySource, domains: {} };
  for (const dom of present) {
    const m: Record<string, unknown> = {};
    for (const [split, docs] of [['train', train[dom]], ['val', val[dom]]] as const) {
      const ids: number[] = [];
      let chars = 0;
      for (const d of docs) {
        for (const id of tok.encode(d.text, { special: false, addBos: false, addEos: false })) ids.push(id);
        ids.push(vocab.eot);
        chars += d.text.length;
      }
      writeAtomic(join(out, `${dom}.${split}.u16`), new Uint8Array(Uint16Array.from(ids).buffer));
      m[split] = { docs: docs.length, chars, tokens: ids.length, charsPerToken: Number((chars / ids.length).toFixed(3)) };
      log(`${dom}.${split}: ${docs.length} documents, ${ids.length} tokens (${(chars / ids.length).toFixed(2)} chars/token)`);
    }
    (meta.domains as Record<string, unknown>)[dom] = m;
  }
  writeAtomic(join(out, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');

  // the shipped held-out labelled set
  const lines: string[] = [];
  for (const dom of present) {
    for (const d of val[dom].slice(0, HELDOUT_DOCS)) {
      lines.push(JSON.stringify({ domain: d.domain, source: d.source, path: d.path, text: cutAtLine(d.text, HELDOUT_CHARS) }));
    }
  }
  mkdirSync(join(ROOT, 'models'), { recursive: true });
  writeAtomic(join(ROOT, 'models', 'tiny-moe-heldout.jsonl'), lines.join('\n') + '\n');
  log(`models/tiny-moe-heldout.jsonl: ${lines.length} documents`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`prepare: ${(e as Error).message}\n`);
  process.exit(1);
}
