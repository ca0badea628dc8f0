// Tokenizer built from a GGUF's `tokenizer.*` keys, matching llama.cpp token for token
// (src/llama-vocab.cpp: load, tokenizer_st_partition, llm_tokenizer_bpe_session /
// llm_tokenizer_spm_session, tokenize, token_to_piece, detokenize). Two models:
//   - `gpt2`: byte-level BPE. The merge loop itself is @huggingface/tokenizers' BPE model, fed with
//     the GGUF's merges; everything around it (pre-tokenizer, byte-level mapping, fallbacks) follows
//     llama.cpp;
//   - `llama`: SentencePiece-style (Llama 2, Mistral, Mixtral): spaces escaped to U+2581, a space
//     prefix, the score-driven merge loop of spm.ts and byte-fallback tokens.
// Shared by both: the special-token partition, token attributes, end-of-generation set and decoding.
import * as hfTokenizers from '@huggingface/tokenizers';
import type { GGUFMetadataEntry, GGUFValue } from '../../gguf/types.js';
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from './bytes.js';
import { TokenizerError } from './errors.js';
import { PRE_TOKENIZERS, findPreTokenizer, preTokenize, type PreTokenizer } from './pretokenizer.js';
import { SpmModel } from './spm.js';

/** llama.cpp's llama_token_attr bits (the GGUF's token_type is mapped onto them). */
export const TokenAttr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
} as const;

/** GGUF `tokenizer.ggml.token_type` values. */
const TokenType = { UNDEFINED: 0, NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

const ATTR_OF_TYPE: Record<number, number> = {
  [TokenType.NORMAL]: TokenAttr.NORMAL,
  [TokenType.UNKNOWN]: TokenAttr.UNKNOWN,
  [TokenType.CONTROL]: TokenAttr.CONTROL,
  [TokenType.USER_DEFINED]: TokenAttr.USER_DEFINED,
  [TokenType.UNUSED]: TokenAttr.UNUSED,
  [TokenType.BYTE]: TokenAttr.BYTE,
};

// Texts llama.cpp recognizes when the GGUF does not name the token (llama_vocab::impl::load).
const EOT_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>',
  '<EOT>', '_<EOT>', '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>'];
const EOM_TEXTS = ['<|eom_id|>'];
const FIM_PRE_TEXTS = ['<|fim_prefix|>', '<fim-prefix>', '<fim_prefix>', '<｜fim▁begin｜>', '<PRE>', '▁<PRE>',
  '<|code_prefix|>', '<|prefix|>'];
const FIM_SUF_TEXTS = ['<|fim_suffix|>', '<fim-suffix>', '<fim_suffix>', '<｜fim▁hole｜>', '<SUF>', '▁<SUF>',
  '<|code_suffix|>', '<|suffix|>'];
const FIM_MID_TEXTS = ['<|fim_middle|>', '<fim-middle>', '<fim_middle>', '<｜fim▁end｜>', '<MID>', '▁<MID>',
  '<|code_middle|>', '<|middle|>'];
const FIM_PAD_TEXTS = ['<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]'];
const FIM_REP_TEXTS = ['<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>'];
const FIM_SEP_TEXTS = ['<|file_sep|>'];
const EOG_TEXTS = new Set(['<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>',
  '<|calls|>', '<end_of_turn>', '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]',
  '<|end_of_text|>', '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[']);
const ALWAYS_RENDERED_TEXTS = new Set(['<|channel|>', '<|message|>', '<|start|>', '<|constrain|>']);

/** The part of @huggingface/tokenizers' BPE model used here: the merge loop over one pre-token. (Its
 * published .d.ts files use extensionless imports that `moduleResolution: NodeNext` cannot follow, so
 * the class is typed locally.) */
interface BPEModel {
  bpe(word: string): string[];
}
const BPE = (hfTokenizers as unknown as {
  BPE: new (config: { type: 'BPE'; vocab: Record<string, number>; merges: [string, string][]; ignore_merges: boolean }) => BPEModel;
}).BPE;

const EMPTY = new Uint8Array(0);
/** SentencePiece's escaped space, U+2581 LOWER ONE EIGHTH BLOCK */
const SPM_SPACE = '\u2581';
/** the tokenizer models moet implements, as `tokenizer.ggml.model` names them */
const MODELS = 'byte-level BPE (tokenizer.ggml.model = gpt2) and SentencePiece-style (tokenizer.ggml.model = llama)';
const encoder = new TextEncoder();
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** Word cache bound: cleared when it grows past this many entries. */
const CACHE_LIMIT = 1 << 17;

export interface EncodeOptions {
  /** Parse CONTROL tokens written in the text (`<|im_start|>`); llama.cpp's parse_special. USER_DEFINED
   * tokens (`<think>`) are always matched. Default false. */
  special?: boolean;
  /** Prepend the BOS token. Default: the GGUF's add_bos_token (llama.cpp's default for the pre-tokenizer
   * when absent). */
  addBos?: boolean;
  /** Append the EOS token. Default: the GGUF's add_eos_token, else false. */
  addEos?: boolean;
}

export interface DecodeOptions {
  /** Render CONTROL tokens as their text; otherwise they decode to nothing. Default false. */
  special?: boolean;
  /** Keep the leading space of the first token. When the vocabulary adds a space prefix when encoding
   * (`tokenizer.ggml.add_space_prefix`, on by default for `llama` vocabularies), llama.cpp's
   * detokenize removes one leading space from the first token's text, and so does moet by default;
   * pass true for tokens that continue a text (generated after a prompt), where llama.cpp's
   * token-by-token output (token_to_piece) keeps it. Default false. */
  keepLeadingSpace?: boolean;
}

/** Incremental detokenizer: `push` returns the text completed by one more token. */
export interface StreamDecoder {
  /** Adds a token; returns the newly completed text. Bytes of a UTF-8 character that is not complete yet
   * are held back until a later token completes it. */
  push(id: number): string;
  /** Returns whatever is held back (an incomplete character becomes U+FFFD) and resets the decoder. */
  flush(): string;
}

type Fragment = string | number;

function scalar(meta: Map<string, GGUFMetadataEntry>, key: string): GGUFValue | undefined {
  return meta.get(key)?.value;
}

function stringKey(meta: Map<string, GGUFMetadataEntry>, key: string): string | undefined {
  const v = scalar(meta, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new TokenizerError(`GGUF key ${key} must be a string, got ${typeof v}`);
  return v;
}

function boolKey(meta: Map<string, GGUFMetadataEntry>, key: string): boolean | undefined {
  const v = scalar(meta, key);
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new TokenizerError(`GGUF key ${key} must be a boolean, got an array`);
  return Boolean(v);
}

function idKey(meta: Map<string, GGUFMetadataEntry>, key: string, nTokens: number): number | undefined {
  const v = scalar(meta, key);
  if (v === undefined || Array.isArray(v) || typeof v === 'string') return undefined;
  const id = Number(v);
  // llama.cpp ignores an id outside the vocabulary (with a warning)
  return Number.isInteger(id) && id >= 0 && id < nTokens ? id : undefined;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** The byte-level form of a (well-formed) string: UTF-8 bytes, each as its vocabulary character. */
function byteLevel(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out += BYTE_TO_CHAR[c];
    } else if (c < 0x800) {
      out += BYTE_TO_CHAR[0xc0 | (c >> 6)]! + BYTE_TO_CHAR[0x80 | (c & 0x3f)]!;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out += BYTE_TO_CHAR[0xf0 | (c >> 18)]! + BYTE_TO_CHAR[0x80 | ((c >> 12) & 0x3f)]! +
        BYTE_TO_CHAR[0x80 | ((c >> 6) & 0x3f)]! + BYTE_TO_CHAR[0x80 | (c & 0x3f)]!;
    } else {
      out += BYTE_TO_CHAR[0xe0 | (c >> 12)]! + BYTE_TO_CHAR[0x80 | ((c >> 6) & 0x3f)]! + BYTE_TO_CHAR[0x80 | (c & 0x3f)]!;
    }
  }
  return out;
}

/**
 * `tokenizer.ggml.scores` as f32 (llama.cpp reads an f32 or an i32 array, at least one per token).
 * llama.cpp gives every token score 0 when the key is absent, which makes its SPM merges leftmost-first
 * regardless of the vocabulary; moet refuses such a file instead.
 */
function readScores(meta: Map<string, GGUFMetadataEntry>, n: number): Float32Array {
  const entry = meta.get('tokenizer.ggml.scores');
  if (entry === undefined) {
    throw new TokenizerError(
      'the GGUF has no tokenizer.ggml.scores: a SentencePiece vocabulary (tokenizer.ggml.model = llama) ' +
        'needs a score per token to choose its merges',
    );
  }
  const v = entry.value;
  if (!Array.isArray(v) && !ArrayBuffer.isView(v)) {
    throw new TokenizerError(`tokenizer.ggml.scores must be an array of numbers, got ${typeof v}`);
  }
  const arr = v as ArrayLike<unknown>;
  if (arr.length < n) {
    throw new TokenizerError(`tokenizer.ggml.scores has ${arr.length} entries for ${n} tokens`);
  }
  const scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const x = arr[i];
    if (typeof x !== 'number' && typeof x !== 'bigint') {
      throw new TokenizerError(`tokenizer.ggml.scores must be an array of numbers, entry ${i} is ${typeof x}`);
    }
    scores[i] = Number(x);
  }
  return scores;
}

/** llama.cpp's clean_up_tokenization_spaces passes over detokenized bytes (in place); returns the new length. */
function cleanSpaces(t: Uint8Array, n: number): number {
  const SP = 0x20, Q = 0x27;
  // 1: " ?", " !", " .", " ," lose the space
  let total = n ? 1 : 0;
  for (let i = 1; i < n; i++) {
    const x = t[i]!;
    if (t[i - 1] === SP && (x === 0x3f || x === 0x21 || x === 0x2e || x === 0x2c)) total--;
    t[total++] = x;
  }
  // 2: " ' " becomes "'"
  const n2 = total;
  total = n2 ? 1 : 0;
  for (let i = 1; i < n2; i++) {
    const x = t[i]!;
    if (x === Q && i + 1 < n2 && t[i - 1] === SP && t[i + 1] === SP) {
      total--;
      t[++i] = 0;
    }
    t[total++] = x;
  }
  // 3: " 's", " 'm", " 're", " 've" lose the space
  const n3 = total;
  total = n3 ? 1 : 0;
  for (let i = 1; i < n3; i++) {
    const x = t[i]!;
    if (t[i - 1] === SP && x === Q && i + 1 < n3) {
      const x1 = t[i + 1]!;
      if (x1 === 0x73 || x1 === 0x6d) total--;
      else if (i + 2 < n3) {
        const x2 = t[i + 2]!;
        if ((x1 === 0x72 && x2 === 0x65) || (x1 === 0x76 && x2 === 0x65)) total--;
      }
    }
    t[total++] = x;
  }
  return total;
}

/**
 * A tokenizer with llama.cpp's behaviour: byte-level BPE (`tokenizer.ggml.model = gpt2`) or
 * SentencePiece-style (`tokenizer.ggml.model = llama`).
 *
 * SPM vocabularies: spaces are escaped to U+2581 and, with `tokenizer.ggml.add_space_prefix` (default
 * true), a space is put before the text and before the text after every special token; the pieces are
 * merged by token score (`tokenizer.ggml.scores`) and a character missing from the vocabulary becomes
 * its UTF-8 bytes as `<0xXX>` tokens. BOS is added by default (`add_bos_token`, default true), EOS not;
 * BOS/EOS/UNK default to ids 1/2/0 when the file does not name them. Decoding turns U+2581 back into
 * spaces, reassembles byte tokens into UTF-8 and drops one leading space from the first token's text
 * (see DecodeOptions.keepLeadingSpace).
 *
 * Special tokens: a token of type CONTROL (or UNKNOWN) is recognized in text only with
 * `{ special: true }` and decodes to nothing unless `{ special: true }`; a USER_DEFINED token is always
 * recognized as a whole and always decoded. Like llama.cpp, the tokens it treats as end-of-turn
 * markers (`<|im_end|>`, `<|endoftext|>`, `</s>`, FIM pad/repo/file-separator …) become CONTROL even if
 * the file says otherwise. Special tokens are matched longest first over the whole text.
 */
export class Tokenizer {
  /** number of tokens (rows of the embedding) */
  readonly vocabSize: number;
  /** `tokenizer.ggml.model`: "gpt2" or "llama" */
  readonly model: string;
  /** `tokenizer.ggml.pre` ("default" when the key is absent; llama.cpp ignores it for "llama") */
  readonly pre: string;
  readonly eosId: number;
  readonly bosId: number | undefined;
  /** whether encode() prepends BOS by default */
  readonly addBos: boolean;
  /** whether encode() appends EOS by default */
  readonly addEos: boolean;
  /** tokens that end generation (llama.cpp's special_eog_ids) */
  readonly eogIds: ReadonlySet<number>;
  /** `tokenizer.chat_template`, if the file has one */
  readonly chatTemplate: string | undefined;

  private readonly tokens: string[];
  private readonly attrs: Uint16Array;
  private readonly tokenToId: Map<string, number>;
  /** CONTROL / USER_DEFINED / UNKNOWN ids, longest text (in UTF-8 bytes) first */
  private readonly specialIds: number[];
  /** byte-level BPE only */
  private readonly preTokenizer: PreTokenizer | undefined;
  private readonly bpe: BPEModel | undefined;
  /** SPM only */
  private readonly spm: SpmModel | undefined;
  /** a space goes before the text (SPM) and decoding drops the first token's leading space */
  private readonly addSpacePrefix: boolean;
  /** detokenize applies llama.cpp's clean_up_tokenization_spaces passes */
  private readonly cleanSpaces: boolean;
  private readonly wordCache = new Map<string, number[]>();
  private readonly pieces: (Uint8Array | undefined)[];

  private constructor(meta: Map<string, GGUFMetadataEntry>) {
    const model = stringKey(meta, 'tokenizer.ggml.model');
    if (model === undefined) {
      throw new TokenizerError(`the GGUF has no tokenizer.ggml.model key: moet supports ${MODELS}`);
    }
    if (model !== 'gpt2' && model !== 'llama') {
      throw new TokenizerError(
        `unsupported tokenizer model '${model}': moet supports ${MODELS}; ` +
          `the BPE pre-tokenizers are ${PRE_TOKENIZERS.flatMap((p) => p.names).join(', ')}`,
      );
    }
    this.model = model;
    const spm = model === 'llama';
    const pre = stringKey(meta, 'tokenizer.ggml.pre') ?? 'default';
    // llama.cpp gives SPM vocabularies no pre-tokenizer, whatever the key says
    const preTokenizer = spm ? undefined : findPreTokenizer(pre);
    if (!spm && !preTokenizer) {
      throw new TokenizerError(
        `unsupported pre-tokenizer '${pre}' (tokenizer.ggml.pre): moet supports ` +
          `${PRE_TOKENIZERS.flatMap((p) => p.names).join(', ')}`,
      );
    }
    this.pre = pre;
    this.preTokenizer = preTokenizer;
    this.cleanSpaces = preTokenizer?.cleanSpaces ?? false;
    this.addSpacePrefix = boolKey(meta, 'tokenizer.ggml.add_space_prefix') ?? spm;

    const tokens = scalar(meta, 'tokenizer.ggml.tokens');
    if (!Array.isArray(tokens) || tokens.length === 0 || typeof tokens[0] !== 'string') {
      throw new TokenizerError('the GGUF has no tokenizer.ggml.tokens string array');
    }
    const n = tokens.length;
    this.vocabSize = n;
    this.tokens = new Array<string>(n);
    this.tokenToId = new Map();
    for (let i = 0; i < n; i++) {
      let text = String(tokens[i]);
      if (text === '') text = `[EMPTY_${i}]`;
      if (this.tokenToId.has(text)) {
        throw new TokenizerError(`duplicate token in vocabulary: '${text}' has ids ${this.tokenToId.get(text)} and ${i}`);
      }
      this.tokenToId.set(text, i);
      this.tokens[i] = text;
    }

    const types = scalar(meta, 'tokenizer.ggml.token_type');
    this.attrs = new Uint16Array(n);
    if (types === undefined) {
      this.attrs.fill(TokenAttr.NORMAL);
    } else {
      if (!Array.isArray(types) || types.length < n) {
        throw new TokenizerError(`tokenizer.ggml.token_type must be an array of at least ${n} integers`);
      }
      for (let i = 0; i < n; i++) this.attrs[i] = ATTR_OF_TYPE[Number(types[i])] ?? TokenAttr.UNDEFINED;
    }

    if (spm) {
      this.bpe = undefined;
      this.spm = new SpmModel({ tokenToId: this.tokenToId, scores: readScores(meta, n) });
    } else {
      const merges = scalar(meta, 'tokenizer.ggml.merges');
      if (!Array.isArray(merges)) throw new TokenizerError('the GGUF has no tokenizer.ggml.merges string array');
      const pairs: [string, string][] = new Array(merges.length);
      for (let i = 0; i < merges.length; i++) {
        const m = String(merges[i]);
        const at = m.indexOf(' ', 1); // llama.cpp splits at the first space after the first character
        pairs[i] = at < 0 ? ['', ''] : [m.slice(0, at), m.slice(at + 1)];
      }
      this.bpe = new BPE({ type: 'BPE', vocab: {}, merges: pairs, ignore_merges: false });
      this.spm = undefined;
    }

    // special token ids named by the file; SPM vocabularies default to llama.cpp's 1 (BOS) and 2 (EOS)
    // when those are inside the vocabulary
    const id = (key: string) => idKey(meta, `tokenizer.ggml.${key}`, n);
    const spmDefault = (i: number) => (spm && i < n ? i : undefined);
    const bos = id('bos_token_id') ?? spmDefault(1);
    const eos = id('eos_token_id') ?? spmDefault(2);
    let eot = id('eot_token_id');
    let eom = id('eom_token_id');
    let fimPre = id('fim_pre_token_id') ?? id('prefix_token_id');
    let fimSuf = id('fim_suf_token_id') ?? id('suffix_token_id');
    let fimMid = id('fim_mid_token_id') ?? id('middle_token_id');
    let fimPad = id('fim_pad_token_id');
    let fimRep = id('fim_rep_token_id');
    let fimSep = id('fim_sep_token_id');

    // tokens recognized by their text; the one chosen becomes CONTROL (ids in ascending order where
    // llama.cpp walks a hash map)
    const detect = (current: number | undefined, texts: string[]): number | undefined => {
      if (current !== undefined) return current;
      for (const t of texts) {
        const found = this.tokenToId.get(t);
        if (found !== undefined) {
          this.attrs[found]! |= TokenAttr.CONTROL;
          return found;
        }
      }
      return undefined;
    };
    const firstById = (texts: string[]) =>
      texts.filter((t) => this.tokenToId.has(t)).sort((a, b) => this.tokenToId.get(a)! - this.tokenToId.get(b)!);
    eot = detect(eot, firstById(EOT_TEXTS));
    eom = detect(eom, firstById(EOM_TEXTS));
    fimPre = detect(fimPre, firstById(FIM_PRE_TEXTS));
    fimSuf = detect(fimSuf, firstById(FIM_SUF_TEXTS));
    fimMid = detect(fimMid, firstById(FIM_MID_TEXTS));
    fimPad = detect(fimPad, firstById(FIM_PAD_TEXTS));
    fimRep = detect(fimRep, firstById(FIM_REP_TEXTS));
    fimSep = detect(fimSep, firstById(FIM_SEP_TEXTS));

    // CONTROL tokens whose text says "unused" are also UNUSED
    for (let i = 0; i < n; i++) {
      if (this.attrs[i]! & TokenAttr.CONTROL && this.tokens[i]!.includes('unused')) this.attrs[i]! |= TokenAttr.UNUSED;
    }

    // end of generation
    const eog = new Set<number>();
    for (const t of [fimPad, fimRep, fimSep]) if (t !== undefined) eog.add(t);
    for (const text of EOG_TEXTS) {
      const t = this.tokenToId.get(text);
      if (t !== undefined) {
        eog.add(t);
        this.attrs[t]! |= TokenAttr.CONTROL;
      }
    }
    for (const text of ALWAYS_RENDERED_TEXTS) {
      const t = this.tokenToId.get(text);
      if (t !== undefined) this.attrs[t] = TokenAttr.USER_DEFINED;
    }
    for (const t of [eos, eot, eom]) if (t !== undefined) eog.add(t);
    const eogHas = (text: string) => {
      const t = this.tokenToId.get(text);
      return t !== undefined && eog.has(t);
    };
    if (eogHas('<|end|>') && ((eogHas('<|return|>') && eogHas('<|call|>')) || (eogHas('<|calls|>') && eogHas('<|flush|>')))) {
      const end = this.tokenToId.get('<|end|>')!;
      eog.delete(end);
      this.attrs[end] = TokenAttr.USER_DEFINED;
    }
    if (eogHas('<|tool_response>') && eogHas('</s>')) {
      const s = this.tokenToId.get('</s>')!;
      eog.delete(s);
      this.attrs[s] = TokenAttr.NORMAL;
    }
    this.eogIds = eog;

    const eosId = eos ?? eot;
    if (eosId === undefined) {
      throw new TokenizerError('the GGUF names no end-of-sequence token: set tokenizer.ggml.eos_token_id');
    }
    this.eosId = eosId;
    this.bosId = bos;
    this.addBos = boolKey(meta, 'tokenizer.ggml.add_bos_token') ?? preTokenizer?.addBos ?? true;
    this.addEos = boolKey(meta, 'tokenizer.ggml.add_eos_token') ?? false;
    if (this.addBos && bos === undefined) {
      throw new TokenizerError('tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set');
    }
    this.chatTemplate = stringKey(meta, 'tokenizer.chat_template');

    // special tokens, longest first
    const special: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      if (this.attrs[i]! & (TokenAttr.CONTROL | TokenAttr.USER_DEFINED | TokenAttr.UNKNOWN)) {
        special.push([i, utf8Length(this.tokens[i]!)]);
      }
    }
    special.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    this.specialIds = special.map((s) => s[0]);
    this.pieces = new Array(n);
  }

  /**
   * Builds the tokenizer from GGUF metadata (`openGGUF(path).metadata`).
   * @throws TokenizerError if the vocabulary is neither byte-level BPE with a supported pre-tokenizer
   *   nor SPM, or the tokenizer keys are missing or malformed (an SPM vocabulary needs
   *   tokenizer.ggml.scores).
   */
  static fromGGUF(metadata: Map<string, GGUFMetadataEntry>): Tokenizer {
    return new Tokenizer(metadata);
  }

  /**
   * Token ids of `text`, as llama.cpp's llama_tokenize(text, add_special, parse_special) gives them.
   * Lone UTF-16 surrogates are read as U+FFFD.
   * @throws TokenizerError if BOS/EOS is to be added and the file names none, or (SPM) a character
   *   missing from the vocabulary has no byte-fallback tokens.
   */
  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.addBos ?? this.addBos) {
      if (this.bosId === undefined) throw new TokenizerError('cannot add BOS: the GGUF names no BOS token');
      out.push(this.bosId);
    }
    if (text !== '') {
      LONE_SURROGATE.lastIndex = 0;
      if (LONE_SURROGATE.test(text)) text = text.replace(LONE_SURROGATE, '\uFFFD');
      const frags = this.partition(text, opts.special ?? false);
      if (this.spm) {
        // llama.cpp puts the space prefix before the first text and before every text that follows a
        // special token
        let afterSpecial = true;
        for (const f of frags) {
          if (typeof f === 'number') {
            out.push(f);
            afterSpecial = true;
          } else {
            const t = this.addSpacePrefix && afterSpecial ? ' ' + f : f;
            this.spm.tokenize(t.replaceAll(' ', SPM_SPACE), out);
            afterSpecial = false;
          }
        }
      } else {
        for (const f of frags) {
          if (typeof f === 'number') out.push(f);
          else this.encodeText(f, out);
        }
      }
    }
    if (opts.addEos ?? this.addEos) out.push(this.eosId);
    return out;
  }

  /**
   * Text of `ids`, as llama.cpp's llama_detokenize(ids, remove_special = false, unparse_special) gives
   * it. Bytes that do not form valid UTF-8 become U+FFFD.
   * @throws RangeError for an id outside the vocabulary.
   */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const special = opts.special ?? false;
    const parts: Uint8Array[] = [];
    let total = 0;
    let first = this.addSpacePrefix && !opts.keepLeadingSpace;
    for (const id of ids) {
      let p = this.piece(id, special);
      // llama.cpp removes one leading space from the first token's piece, even when the piece is
      // empty (a hidden BOS): the space then stays on the next token
      if (first && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
      first = false;
      parts.push(p);
      total += p.length;
    }
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    const n = this.cleanSpaces ? cleanSpaces(bytes, total) : total;
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes.subarray(0, n));
  }

  /**
   * The bytes token `id` stands for, with CONTROL tokens rendered as their text (llama.cpp's
   * token_to_piece with special = true, lstrip = 0: an SPM token keeps its leading space). UNUSED
   * tokens (`[PAD…]`) have no bytes. A byte-level or byte-fallback token may hold part of a UTF-8
   * character.
   * @throws RangeError for an id outside the vocabulary.
   */
  tokenToBytes(id: number): Uint8Array {
    return this.piece(id, true).slice();
  }

  /** The token's string as stored in the vocabulary (byte-level form for normal tokens). */
  tokenText(id: number): string {
    this.check(id);
    return this.tokens[id]!;
  }

  /** Whether the token is CONTROL: hidden when decoding, parsed from text only with `special`. */
  isControl(id: number): boolean {
    this.check(id);
    return (this.attrs[id]! & TokenAttr.CONTROL) !== 0;
  }

  /** Whether the token ends generation. */
  isEog(id: number): boolean {
    return this.eogIds.has(id);
  }

  /**
   * A streaming decoder for generated tokens: the concatenation of everything `push` and `flush` return
   * equals `decode(ids, opts)` (for vocabularies without space clean-up: qwen2 and SPM among them), and
   * no returned string ends inside a UTF-8 character. Like decode, it drops the first token's leading
   * space where the vocabulary adds a space prefix (SPM), unless `opts.keepLeadingSpace`; after
   * `flush` the next token is a first token again.
   */
  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    const special = opts.special ?? false;
    const strip = this.addSpacePrefix && !opts.keepLeadingSpace;
    // ignoreBOM: a leading U+FEFF is text, not a byte-order mark to strip
    let decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    let first = strip;
    return {
      push: (id: number) => {
        let p = this.piece(id, special);
        if (first && p.length > 0 && p[0] === 0x20) p = p.subarray(1);
        first = false;
        return decoder.decode(p, { stream: true });
      },
      flush: () => {
        const rest = decoder.decode();
        decoder = new TextDecoder('utf-8', { ignoreBOM: true });
        first = strip;
        return rest;
      },
    };
  }

  private check(id: number): void {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /** llama.cpp's token_to_piece (BPE and SPM branches), without lstrip. */
  private piece(id: number, special: boolean): Uint8Array {
    this.check(id);
    const attr = this.attrs[id]!;
    if (!special && attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL)) return EMPTY;
    let p = this.pieces[id];
    if (p === undefined) {
      const text = this.tokens[id]!;
      if (attr & (TokenAttr.UNKNOWN | TokenAttr.CONTROL | TokenAttr.USER_DEFINED)) {
        p = encoder.encode(text);
      } else if (attr & TokenAttr.NORMAL) {
        p = this.spm ? encoder.encode(text.replaceAll(SPM_SPACE, ' ')) : this.byteDecode(text);
      } else if (attr & TokenAttr.BYTE) {
        p = Uint8Array.of(parseInt(text.slice(3, 5), 16) & 0xff);
      } else {
        p = EMPTY;
      }
      this.pieces[id] = p;
    }
    return p;
  }

  /** Byte-level text → bytes; a character outside the byte alphabet becomes llama.cpp's [UNK_BYTE_…] marker. */
  private byteDecode(text: string): Uint8Array {
    const out: number[] = [];
    for (const ch of text) {
      const c = ch.codePointAt(0)!;
      const b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c]! : -1;
      if (b >= 0) {
        out.push(b);
      } else {
        const hex = Array.from(encoder.encode(ch), (x) => x.toString(16).padStart(2, '0')).join('');
        out.push(...encoder.encode(`[UNK_BYTE_0x${hex}${text}]`));
      }
    }
    return Uint8Array.from(out);
  }

  /** llama.cpp's tokenizer_st_partition: splits out special tokens, longest first. */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    let frags: Fragment[] = [text];
    for (const id of this.specialIds) {
      if (!parseSpecial && this.attrs[id]! & (TokenAttr.CONTROL | TokenAttr.UNKNOWN)) continue;
      const t = this.tokens[id]!;
      let next: Fragment[] | undefined;
      for (let k = 0; k < frags.length; k++) {
        const f = frags[k]!;
        let at = typeof f === 'string' ? f.indexOf(t) : -1;
        if (at < 0) {
          next?.push(f);
          continue;
        }
        next ??= frags.slice(0, k);
        let start = 0;
        while (at >= 0) {
          if (at > start) next.push((f as string).slice(start, at));
          next.push(id);
          start = at + t.length;
          at = (f as string).indexOf(t, start);
        }
        if (start < (f as string).length) next.push((f as string).slice(start));
      }
      if (next) frags = next;
    }
    return frags;
  }

  /** BPE over each pre-token of a raw-text fragment (llm_tokenizer_bpe_session::tokenize). */
  private encodeText(text: string, out: number[]): void {
    for (const word of preTokenize(text, this.preTokenizer!.passes)) {
      const key = byteLevel(word);
      let ids = this.wordCache.get(key);
      if (ids === undefined) {
        ids = this.encodeWord(key);
        if (this.wordCache.size >= CACHE_LIMIT) this.wordCache.clear();
        this.wordCache.set(key, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
  }

  private encodeWord(word: string): number[] {
    if (this.preTokenizer!.ignoreMerges) {
      const whole = this.tokenToId.get(word);
      if (whole !== undefined) return [whole];
    }
    const symbols = word.length > 1 ? this.bpe!.bpe(word) : [word];
    const ids: number[] = [];
    for (const s of symbols) {
      const id = this.tokenToId.get(s);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      // a symbol missing from the vocabulary: llama.cpp looks each of its UTF-8 bytes up as a
      // one-byte token and drops those it cannot find
      for (const b of encoder.encode(s)) {
        const single = b < 0x80 ? this.tokenToId.get(String.fromCharCode(b)) : undefined;
        if (single !== undefined) ids.push(single);
      }
    }
    return ids;
  }
}
