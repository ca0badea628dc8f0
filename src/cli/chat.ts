// moet chat -m FILE [...]: an interactive multi-turn chat in the terminal, with the model's chat
// template and the KV cache reused across turns (Session.chat).
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { ChatMessage } from '../chat.js';
import { AbortError, ContextOverflowError } from '../errors.js';
import { loadModel, type Model } from '../model.js';
import { progressBar, tick } from './progress.js';
import { backendFrom, eogBan, SAMPLING_HELP, SAMPLING_OPTIONS, samplingFrom } from './sampling.js';
import { COMMON_OPTIONS, errorLine, numberOpt, parse, UsageError, type CliIO } from './util.js';

export const CHAT_HELP = `usage: moet chat -m FILE [options]

Interactive chat with the model's chat template (Qwen3: ChatML; gpt-oss: harmony; thinking shown
dimmed). Type a message and press Enter; the conversation keeps its KV cache between turns, so only
new tokens are evaluated. Ctrl-C stops the current answer; Ctrl-C at the prompt (or twice) leaves, as do /exit and
Ctrl-D. Input can also be piped: one message per line.

commands at the prompt:
  /exit, /quit              leave
  /reset                    start a new conversation (the system prompt stays)
  /help                     this list

options:
  -m, --model FILE          GGUF file
  --system TEXT             system prompt (also --system-prompt)
  --system-file FILE        read the system prompt from a file
  --no-think                disable thinking (the template's enable_thinking = false)
  --hide-think              do not show the thinking (it still happens unless --no-think)
  --reasoning-effort LEVEL  the template's reasoning_effort (gpt-oss: low, medium, high)
  --chat-template-file FILE a Jinja chat template instead of the GGUF's
  -c, --ctx-size N          context length (default min(2048, the trained context))
${SAMPLING_HELP}
  --timings                 print token counts and speed after each answer (stderr)
  --backend cpu|webgpu      compute backend (default: the library's default)
  -h, --help                this help
  --verbose                 print stack traces on errors
`;

const DIM = '\x1b[2m';
const UNDIM = '\x1b[22m';

/** Where `moet chat` reads and writes. */
export interface ChatIO extends CliIO {
  stdin?: Readable;
}

/** Lines from readline, awaited one at a time; null once input ends. */
class LineQueue {
  private readonly lines: string[] = [];
  private closed = false;
  private wake: (() => void) | null = null;

  push(line: string): void {
    this.lines.push(line);
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  async next(): Promise<string | null> {
    while (this.lines.length === 0 && !this.closed) await new Promise<void>((r) => (this.wake = r));
    return this.lines.shift() ?? null;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/**
 * @throws UsageError for bad arguments; model loading errors
 */
export async function chatCommand(argv: string[], io: ChatIO): Promise<number> {
  const { values } = parse('chat', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      ...SAMPLING_OPTIONS,
      model: { type: 'string', short: 'm' },
      system: { type: 'string' },
      'system-prompt': { type: 'string' },
      'system-file': { type: 'string' },
      'no-think': { type: 'boolean' },
      'hide-think': { type: 'boolean' },
      'reasoning-effort': { type: 'string' },
      'chat-template-file': { type: 'string' },
      'ctx-size': { type: 'string', short: 'c' },
      timings: { type: 'boolean' },
      backend: { type: 'string' },
    },
  });
  if (values.help) {
    io.stdout.write(CHAT_HELP);
    return 0;
  }
  if (!values.model) throw new UsageError('chat: -m FILE is required (see moet chat --help)');
  const systemSources = [values.system, values['system-prompt'], values['system-file']].filter((v) => v !== undefined);
  if (systemSources.length > 1) throw new UsageError('chat: give at most one of --system, --system-prompt, --system-file');
  const system = values['system-file'] !== undefined ? await readFile(values['system-file'], 'utf8') : (values.system ?? values['system-prompt']);
  const template = values['chat-template-file'] !== undefined ? await readFile(values['chat-template-file'], 'utf8') : undefined;
  const backend = backendFrom('chat', values.backend);
  const contextLength = numberOpt('chat', 'ctx-size', values['ctx-size'], { integer: true, min: 1 });
  const sampling = samplingFrom('chat', values);
  const enableThinking = values['no-think'] ? false : undefined;
  const hideThink = values['hide-think'] ?? false;
  const reasoningEffort = values['reasoning-effort'];

  const out = io.stdout as CliIO['stdout'] & { isTTY?: boolean };
  const tty = !!out.isTTY;
  const color = tty && !process.env.NO_COLOR;

  const bar = progressBar(io.stderr, 'loading model');
  let model: Model;
  try {
    model = await loadModel(values.model, { backend, contextLength, onProgress: (f) => bar.update(f) });
  } finally {
    bar.done();
  }
  if (values['ignore-eos']) sampling.logitBias = eogBan(model.tokenizer.eogIds);
  const input = io.stdin ?? process.stdin;
  const rl = createInterface({ input, output: tty ? (process.stdout as NodeJS.WritableStream) : undefined, terminal: tty && !!(input as { isTTY?: boolean }).isTTY, prompt: '> ' });
  const queue = new LineQueue();
  rl.on('line', (l) => queue.push(l));
  rl.on('close', () => queue.close());

  let current: AbortController | null = null;
  let leaving = false;
  const onInterrupt = () => {
    if (current && !current.signal.aborted) {
      current.abort(new Error('interrupted'));
      return;
    }
    leaving = true; // at the prompt, or a second Ctrl-C
    rl.close();
  };
  rl.on('SIGINT', onInterrupt);
  process.on('SIGINT', onInterrupt);

  try {
    io.stderr.write(
      `model: ${model.info.name ?? values.model} (${model.info.architecture}, backend ${model.info.backend}, context ${model.contextLength})\n` +
        `sampler seed: ${sampling.seed}\n` +
        (tty ? 'Type a message; /exit leaves, /reset starts over, Ctrl-C stops an answer.\n' : ''),
    );
    const session = model.createSession();
    const base: ChatMessage[] = system ? [{ role: 'system', content: system }] : [];
    let messages: ChatMessage[] = [...base];

    for (;;) {
      if (tty) rl.prompt();
      const line = await queue.next();
      if (line === null || leaving) break;
      const text = line.trim();
      if (text === '') continue;
      if (text === '/exit' || text === '/quit') break;
      if (text === '/reset') {
        messages = [...base];
        session.reset();
        io.stderr.write('(new conversation)\n');
        continue;
      }
      if (text === '/help') {
        io.stderr.write('/exit or /quit leaves, /reset starts a new conversation; Ctrl-C stops an answer\n');
        continue;
      }
      messages.push({ role: 'user', content: line });

      current = new AbortController();
      let kind: 'thinking' | 'content' | null = null;
      let content = '';
      const closeThinking = () => {
        if (kind === 'thinking' && !hideThink) out.write(color ? `${UNDIM}\n\n` : '\n</think>\n\n');
      };
      try {
        const it = session.chat(messages, { ...sampling, enableThinking, reasoningEffort, template, signal: current.signal });
        for (;;) {
          const r = await it.next();
          if (r.done) {
            if (values.timings) {
              const t = r.value.timings;
              io.stderr.write(
                `[prompt ${t.promptTokens} tokens (${r.value.cachedTokens} reused), ${(t.promptMs / 1000).toFixed(2)} s; ` +
                  `answer ${t.generatedTokens} tokens, ${t.genMs > 0 ? ((1000 * t.generatedTokens) / t.genMs).toFixed(1) : '-'} tokens/s; ${t.stopReason}]\n`,
              );
            }
            if (r.value.stopReason === 'context') io.stderr.write('(the context is full: /reset to start a new conversation)\n');
            break;
          }
          const c = r.value;
          if (c.kind !== kind) {
            closeThinking();
            if (c.kind === 'thinking' && !hideThink) out.write(color ? DIM : '<think>\n');
            kind = c.kind;
          }
          if (c.kind === 'content') {
            content += c.text;
            out.write(c.text);
          } else if (!hideThink) {
            out.write(c.text);
          }
          await tick();
        }
      } catch (e) {
        if (e instanceof AbortError) {
          closeThinking();
          kind = null;
          out.write(color ? `${DIM} [stopped]${UNDIM}` : ' [stopped]');
        } else if (e instanceof ContextOverflowError) {
          messages.pop();
          io.stderr.write(`moet: ${errorLine(e)}\n`);
          io.stderr.write('(the conversation does not fit: /reset to start a new one)\n');
          continue;
        } else {
          throw e;
        }
      } finally {
        current = null;
      }
      closeThinking();
      out.write('\n');
      messages.push({ role: 'assistant', content });
      if (leaving) break;
    }
    return 0;
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    rl.close();
    if (color) out.write(UNDIM);
    await model.dispose();
  }
}
