// Shared pieces of the `moet` command: output streams, argument parsing, errors, number formats.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Where a command writes. The real CLI passes process.stdout/stderr; tests pass collectors. */
export interface CliIO {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

/** A user error (bad arguments): printed as one line, exit code 1. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Options every command has. */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  verbose: { type: 'boolean' },
} as const;

/** The options of the commands that read a model and a text: -m FILE and one of -p TEXT / -f TEXTFILE. */
export const MODEL_TEXT_OPTIONS = {
  model: { type: 'string', short: 'm' },
  prompt: { type: 'string', short: 'p' },
  file: { type: 'string', short: 'f' },
} as const;

/**
 * Checks MODEL_TEXT_OPTIONS: -m is given, and exactly one of -p and -f (`text` names them in the
 * message: -p TEXT / -f TEXTFILE). Returns the model path.
 * @throws UsageError
 */
export function requireModelAndText(cmd: string, values: { model?: string; prompt?: string; file?: string }, text = 'TEXT'): string {
  if (!values.model) throw new UsageError(`${cmd}: -m FILE is required (see moet ${cmd} --help)`);
  if ((values.prompt === undefined) === (values.file === undefined)) {
    throw new UsageError(`${cmd}: give exactly one of -p ${text} or -f ${text}FILE (see moet ${cmd} --help)`);
  }
  return values.model;
}

/**
 * node:util parseArgs (strict) whose errors become UsageErrors naming the command.
 * @throws UsageError for an unknown option, a missing value or an unexpected positional
 */
export function parse<T extends ParseArgsConfig>(cmd: string, config: T): ReturnType<typeof parseArgs<T>> {
  try {
    // strict is parseArgs' default; commands never turn it off
    return parseArgs<T>({ ...config, args: joinNegativeValues(config.args ?? [], config.options ?? {}) });
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]! : String(e);
    throw new UsageError(`${cmd}: ${msg} (see moet ${cmd} --help)`);
  }
}

/**
 * parseArgs refuses `-n -1` (a value that looks like an option); llama.cpp users type it. Rewrites
 * a string option followed by a negative number into `--name=-1`.
 */
function joinNegativeValues(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const long = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== 'string') continue;
    long.set(`--${name}`, name);
    if (o.short) long.set(`-${o.short}`, name);
  }
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    const name = long.get(a);
    const next = args[i + 1];
    if (name !== undefined && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${name}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Parses a numeric option, or undefined when absent. */
export function numberOpt(cmd: string, name: string, v: string | undefined, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
    const what = opts.integer ? 'an integer' : 'a number';
    const min = opts.min !== undefined ? ` ≥ ${opts.min}` : '';
    throw new UsageError(`${cmd}: --${name} must be ${what}${min}, got "${v}"`);
  }
  return n;
}

/** Bytes as B / KiB / MiB / GiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${x.toFixed(2)} ${units[i]}`;
}

/** A count as 1.23 K / M / B. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)} K`;
  return String(n);
}

/** One line describing an error, for stderr. */
export function errorLine(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    const path = (e as NodeJS.ErrnoException).path;
    if (code === 'ENOENT' && path) return `cannot open ${path}: no such file`;
    if (code === 'EISDIR') return `${path ?? 'the path'} is a directory, not a GGUF file`;
    if (code === 'EACCES' && path) return `cannot open ${path}: permission denied`;
    const prefix = e.name && e.name !== 'Error' && e.name !== 'UsageError' ? `${e.name}: ` : '';
    return (prefix + e.message).replace(/\s*\n\s*/g, ' ');
  }
  return String(e).replace(/\s*\n\s*/g, ' ');
}
