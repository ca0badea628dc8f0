// moet serve -m FILE [...]: the OpenAI-compatible HTTP server (src/server), like llama-server.
import { readFile } from 'node:fs/promises';
import { startServer } from '../server/index.js';
import { progressBar } from './progress.js';
import { backendFrom } from './sampling.js';
import { COMMON_OPTIONS, numberOpt, parse, UsageError, type CliIO } from './util.js';
import { expertOptions, GPU_MEMORY_HELP, GPU_MEMORY_OPTIONS } from './gpu-memory.js';

export const SERVE_HELP = `usage: moet serve -m FILE [--host 127.0.0.1] [--port 8080] [options]

An OpenAI-compatible HTTP server, shaped like llama-server. It listens at once and loads the model
(GET /health answers 503 {"status":"loading"} until it is ready). One generation runs at a time;
other requests wait in order. Ctrl-C stops the server.

endpoints:
  POST /v1/chat/completions   chat (stream with "stream": true; thinking in reasoning_content)
  POST /v1/completions        raw text completion
  GET  /v1/models             the model
  GET  /health                {"status":"ok"} once loaded
  POST /tokenize              {"content": "..."} -> {"tokens": [...]}
  POST /detokenize            {"tokens": [...]} -> {"content": "..."}
  GET  /metrics               Prometheus metrics (with --metrics)

options:
  -m, --model FILE            GGUF file
  --host HOST                 interface to listen on (default 127.0.0.1: this machine only)
  --port N                    port (default 8080; 0 picks a free one)
  -c, --ctx-size N            context length (default min(2048, the trained context))
  --backend cpu|webgpu        compute backend (default: the library's default)
${GPU_MEMORY_HELP}  --metrics                   serve GET /metrics
  -a, --alias NAME            the model id in responses (default: the file name)
  --api-key KEY               require "Authorization: Bearer KEY" (all routes but /health)
  --chat-template-file FILE   a Jinja chat template instead of the GGUF's
  --max-body-size BYTES       largest request body (default 8388608 = 8 MiB; larger: 413)
  --log-disable               do not log requests on stderr
  -h, --help                  this help
  --verbose                   print stack traces on errors
`;

/**
 * Runs the server until SIGINT/SIGTERM (or `stop` fires).
 * @throws UsageError for bad arguments; listen errors; model loading errors
 */
export async function serveCommand(argv: string[], io: CliIO, stop?: AbortSignal): Promise<number> {
  const { values } = parse('serve', {
    args: argv,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      model: { type: 'string', short: 'm' },
      host: { type: 'string' },
      port: { type: 'string' },
      'ctx-size': { type: 'string', short: 'c' },
      backend: { type: 'string' },
      ...GPU_MEMORY_OPTIONS,
      metrics: { type: 'boolean' },
      alias: { type: 'string', short: 'a' },
      'api-key': { type: 'string' },
      'chat-template-file': { type: 'string' },
      'max-body-size': { type: 'string' },
      'log-disable': { type: 'boolean' },
    },
  });
  if (values.help) {
    io.stdout.write(SERVE_HELP);
    return 0;
  }
  if (!values.model) throw new UsageError('serve: -m FILE is required (see moet serve --help)');
  const port = numberOpt('serve', 'port', values.port, { integer: true, min: 0 }) ?? 8080;
  if (port > 65535) throw new UsageError(`serve: --port must be at most 65535, got ${port}`);
  const host = values.host ?? '127.0.0.1';
  const chatTemplate = values['chat-template-file'] !== undefined ? await readFile(values['chat-template-file'], 'utf8') : undefined;
  const bar = progressBar(io.stderr, 'loading model');
  const server = await startServer({
    model: values.model,
    host,
    port,
    backend: backendFrom('serve', values.backend),
    contextLength: numberOpt('serve', 'ctx-size', values['ctx-size'], { integer: true, min: 1 }),
    ...(await expertOptions('serve', values)),
    metrics: values.metrics ?? false,
    modelAlias: values.alias,
    apiKey: values['api-key'],
    chatTemplate,
    maxBodyBytes: numberOpt('serve', 'max-body-size', values['max-body-size'], { integer: true, min: 1 }),
    onProgress: (f) => bar.update(f),
    log: values['log-disable'] ? undefined : (line) => io.stderr.write(`${line}\n`),
  });
  const loopback = host === '127.0.0.1' || host === 'localhost' || host === '::1';
  io.stderr.write(`moet: listening on ${server.url}${loopback ? '' : ` (all requests from the network are served${values['api-key'] ? '' : ', without authentication: consider --api-key'})`}; loading the model\n`);

  const stopped = new Promise<string>((resolve) => {
    const onSignal = (sig: string) => () => resolve(sig);
    process.once('SIGINT', onSignal('SIGINT'));
    process.once('SIGTERM', onSignal('SIGTERM'));
    stop?.addEventListener('abort', () => resolve('stop'), { once: true });
  });
  try {
    const outcome = await Promise.race([server.ready.then(() => 'ready' as const), stopped]);
    bar.done();
    if (outcome !== 'ready') return 0;
    const m = server.model!;
    io.stderr.write(
      `moet: model ${m.info.name ?? values.model} (${m.info.architecture}, backend ${m.info.backend}, context ${m.contextLength}) ready at ${server.url}/v1\n`,
    );
    await stopped;
    io.stderr.write('moet: shutting down\n');
    return 0;
  } catch (e) {
    bar.done();
    throw e; // one line on stderr and exit code 1, by runCli
  } finally {
    await server.close();
  }
}
