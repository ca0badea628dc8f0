// The prompt sets of moet pelican: the built-in ones and the file format.
import { readFile } from 'node:fs/promises';
import { MoetError } from '../errors.js';

/** One prompt of a set. */
export interface PelicanPrompt {
  /** a short name, used for file names: letters, digits, '-', '_' */
  id: string;
  /** the user message */
  prompt: string;
  /** a system message, if any */
  system?: string;
  /**
   * text put after the chat template's generation prompt: the start of the assistant's answer, which
   * the model continues (and which counts as part of the answer). For models that are not chat models
   */
  prefill?: string;
}

/** A prompt set file that cannot be used. */
export class PromptSetError extends MoetError {}

/**
 * Simon Willison's test ("Generate an SVG of a pelican riding a bicycle") and three of the same kind,
 * other animals on other vehicles, so that a model that learned the one picture by heart shows it.
 */
export const DEFAULT_PROMPTS: readonly PelicanPrompt[] = [
  { id: 'pelican-bicycle', prompt: 'Generate an SVG of a pelican riding a bicycle' },
  { id: 'otter-skateboard', prompt: 'Generate an SVG of an otter riding a skateboard' },
  { id: 'goat-motorcycle', prompt: 'Generate an SVG of a goat riding a motorcycle' },
  { id: 'walrus-unicycle', prompt: 'Generate an SVG of a walrus riding a unicycle' },
];

/**
 * The default requests with the answer started as an SVG document, for the shipped tiny model
 * (models/tiny-moe.gguf), which was trained on SVG icons but not on conversations: it continues the
 * `<svg>` start tag like an icon file.
 */
export const TINY_PROMPTS: readonly PelicanPrompt[] = DEFAULT_PROMPTS.map((p) => ({
  ...p,
  prefill: '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">\n',
}));

/** Names of the built-in prompt sets. */
export const PROMPT_SETS: Readonly<Record<string, readonly PelicanPrompt[]>> = { default: DEFAULT_PROMPTS, tiny: TINY_PROMPTS };

const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** an id from a prompt's words */
function slug(text: string, n: number): string {
  const s = text
    .toLowerCase()
    .replace(/^(generate|draw|create|make)\s+(an?\s+)?(svg|picture|image)\s+(of\s+)?(an?\s+)?/, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return s || `prompt-${n + 1}`;
}

/**
 * Parses a prompt set file: a JSON array (of strings or `{id?, prompt, system?, prefill?}` objects), or
 * lines, each a prompt as plain text or one such JSON object (JSON lines); empty lines and lines
 * starting with `#` are skipped. Ids default to a slug of the prompt; they must be unique.
 * @throws PromptSetError for an empty set, a malformed entry or a repeated id
 */
export function parsePromptSet(text: string, where = 'the prompt set'): PelicanPrompt[] {
  let entries: { item: unknown; line: number }[];
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(trimmed);
    } catch (e) {
      throw new PromptSetError(`${where} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(arr)) throw new PromptSetError(`${where}: expected a JSON array of prompts`);
    entries = arr.map((item, k) => ({ item, line: k + 1 }));
  } else {
    entries = [];
    for (const [k, raw] of text.split(/\r?\n/).entries()) {
      const l = raw.trim();
      if (l === '' || l.startsWith('#')) continue;
      if (l.startsWith('{')) {
        try {
          entries.push({ item: JSON.parse(l), line: k + 1 });
        } catch (e) {
          throw new PromptSetError(`${where}, line ${k + 1}: not valid JSON: ${(e as Error).message}`);
        }
      } else entries.push({ item: l, line: k + 1 });
    }
  }
  const what = trimmed.startsWith('[') ? 'entry' : 'line';
  const out: PelicanPrompt[] = [];
  const ids = new Set<string>();
  for (const { item, line } of entries) {
    const at = `${where}, ${what} ${line}`;
    const o: Record<string, unknown> = typeof item === 'string' ? { prompt: item } : item !== null && typeof item === 'object' && !Array.isArray(item) ? (item as Record<string, unknown>) : {};
    if (typeof o['prompt'] !== 'string' || o['prompt'].trim() === '') throw new PromptSetError(`${at}: expected a prompt (a string, or an object with a "prompt" string)`);
    for (const k of Object.keys(o)) {
      if (!['id', 'prompt', 'system', 'prefill'].includes(k)) throw new PromptSetError(`${at}: unknown field "${k}" (fields: id, prompt, system, prefill)`);
      if (typeof o[k] !== 'string') throw new PromptSetError(`${at}: "${k}" must be a string`);
    }
    const id = (o['id'] as string | undefined) ?? slug(o['prompt'], out.length);
    if (!ID.test(id)) throw new PromptSetError(`${at}: the id "${id}" must be 1 to 64 letters, digits, '-' or '_'`);
    let unique = id;
    for (let n = 2; ids.has(unique); n++) {
      if (o['id'] !== undefined) throw new PromptSetError(`${at}: the id "${id}" is used twice`);
      unique = `${id}-${n}`;
    }
    ids.add(unique);
    out.push({ id: unique, prompt: o['prompt'], ...(o['system'] !== undefined ? { system: o['system'] as string } : {}), ...(o['prefill'] !== undefined ? { prefill: o['prefill'] as string } : {}) });
  }
  if (out.length === 0) throw new PromptSetError(`${where} has no prompts`);
  return out;
}

/**
 * A built-in set by name, or a file's.
 * @throws PromptSetError; Node's fs errors for an unreadable file
 */
export async function loadPromptSet(nameOrFile: string): Promise<PelicanPrompt[]> {
  const builtIn = PROMPT_SETS[nameOrFile];
  if (builtIn) return builtIn.map((p) => ({ ...p }));
  return parsePromptSet(await readFile(nameOrFile, 'utf8'), nameOrFile);
}
