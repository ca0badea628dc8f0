// Sampling and model flags shared by `moet run` and `moet chat` (llama.cpp's names).
import type { BackendName, GenerateOptions } from '../model.js';
import { numberOpt, UsageError } from './util.js';

/** parseArgs options of the sampler flags. */
export const SAMPLING_OPTIONS = {
  'n-predict': { type: 'string', short: 'n' },
  temp: { type: 'string' },
  seed: { type: 'string', short: 's' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  'min-p': { type: 'string' },
  'repeat-penalty': { type: 'string' },
  'repeat-last-n': { type: 'string' },
  'presence-penalty': { type: 'string' },
  'frequency-penalty': { type: 'string' },
  'ignore-eos': { type: 'boolean' },
} as const;

/** Help lines of the sampler flags. */
export const SAMPLING_HELP = `  -n, --n-predict N         tokens to generate; -1: until end of generation or a full context (default -1)
  --temp T                  temperature; 0 is greedy (default 0.8)
  -s, --seed S              sampler seed, an unsigned 32-bit integer (default random, printed)
  --top-k N                 top-k; 0 disables (default 40)
  --top-p P                 top-p; 1 disables (default 0.95)
  --min-p P                 min-p; 0 disables (default 0.05)
  --repeat-penalty R        repeat penalty; 1 disables (default 1.0)
  --repeat-last-n N         tokens the penalties look at; -1 all (default 64)
  --presence-penalty P      (default 0)
  --frequency-penalty P     (default 0)
  --ignore-eos              never stop at an end-of-generation token (bans them)`;

type SamplingValues = { [K in Exclude<keyof typeof SAMPLING_OPTIONS, 'ignore-eos'>]?: string };

/** Logit bias banning every end-of-generation token (--ignore-eos). @throws nothing */
export function eogBan(eogIds: Iterable<number>): Map<number, number> {
  return new Map([...eogIds].map((id) => [id, -Infinity]));
}

/** A random unsigned 32-bit seed. @throws nothing */
export function randomSeed(): number {
  return globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/**
 * Generate options from the sampler flags (the seed is always set: random when not given).
 * @throws UsageError for a malformed number
 */
export function samplingFrom(cmd: string, values: SamplingValues): GenerateOptions & { seed: number } {
  const n = numberOpt(cmd, 'n-predict', values['n-predict'], { integer: true, min: -1 });
  const seed = numberOpt(cmd, 'seed', values.seed, { integer: true, min: 0 });
  if (seed !== undefined && seed > 0xffffffff) throw new UsageError(`${cmd}: --seed must be below 2^32, got ${seed}`);
  const opts: GenerateOptions & { seed: number } = {
    maxTokens: n === undefined || n < 0 ? undefined : n,
    temperature: numberOpt(cmd, 'temp', values.temp),
    seed: seed ?? randomSeed(),
    topK: numberOpt(cmd, 'top-k', values['top-k'], { integer: true }),
    topP: numberOpt(cmd, 'top-p', values['top-p']),
    minP: numberOpt(cmd, 'min-p', values['min-p']),
    repeatPenalty: numberOpt(cmd, 'repeat-penalty', values['repeat-penalty']),
    repeatLastN: numberOpt(cmd, 'repeat-last-n', values['repeat-last-n'], { integer: true, min: -1 }),
    presencePenalty: numberOpt(cmd, 'presence-penalty', values['presence-penalty']),
    frequencyPenalty: numberOpt(cmd, 'frequency-penalty', values['frequency-penalty']),
  };
  for (const k of Object.keys(opts) as (keyof typeof opts)[]) if (opts[k] === undefined) delete opts[k];
  return opts;
}

/**
 * The --backend flag.
 * @throws UsageError for a name other than cpu or webgpu
 */
export function backendFrom(cmd: string, v: string | undefined): BackendName | undefined {
  if (v !== undefined && v !== 'cpu' && v !== 'webgpu') throw new UsageError(`${cmd}: --backend must be cpu or webgpu, got "${v}"`);
  return v;
}
