// The `moet` command: dispatches to inspect, tokenize, run, chat, serve, demo, bench, synth, routes and
// pelican; turns errors into one line on stderr and exit code 1 (a stack trace only with --verbose).
import { benchCommand } from './bench.js';
import { chatCommand } from './chat.js';
import { demoCommand } from './demo.js';
import { inspectCommand } from './inspect.js';
import { pelicanCommand } from './pelican.js';
import { routesCommand } from './routes.js';
import { runCommand } from './run.js';
import { serveCommand } from './serve.js';
import { synthCommand } from '../synth/cli.js';
import { tokenizeCommand } from './tokenize.js';
import { errorLine, UsageError, type CliIO } from './util.js';

export const MAIN_HELP = `usage: moet <command> [options]

commands:
  inspect FILE [--tensors] [--json]          metadata, tensors, quantization mix, expert config
  tokenize -m FILE (-p TEXT | -f FILE) [--ids]  tokenize text like llama-tokenize
  run -m FILE -p PROMPT [-n N] [--temp T] ...   generate a completion (timings on stderr)
  chat -m FILE [--system TEXT] [--no-think]     interactive chat in the terminal
  serve -m FILE [--host H] [--port N]           OpenAI-compatible HTTP server (like llama-server)
  demo                                          run a tiny generated model (no download)
  bench -m FILE [-p 512] [-n 128] [-o md|json]  speed like llama-bench (pp/tg t/s, bandwidth)
  synth -o OUT.gguf [--layers N] [--experts N]  write a synthetic Qwen3-30B-A3B-shaped model
  routes -m FILE (-p TEXT | -f FILE) [--svg OUT]  MoE routing statistics and pictures of a text
  pelican [-m FILE] [--runs N] [--compare-llama]  the pelican SVG test: prompt → SVG → checked → PNG gallery

Run \`moet <command> --help\` for a command's options. --verbose prints stack traces on errors.
`;

const COMMANDS: Record<string, (argv: string[], io: CliIO) => Promise<number>> = {
  inspect: inspectCommand,
  tokenize: tokenizeCommand,
  run: runCommand,
  chat: chatCommand,
  serve: serveCommand,
  demo: demoCommand,
  bench: benchCommand,
  synth: synthCommand,
  routes: routesCommand,
  pelican: pelicanCommand,
};

/**
 * Runs the CLI with `argv` (without node and the script). Never throws: returns the exit code.
 */
export async function runCli(argv: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const verbose = argv.includes('--verbose');
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
      io.stdout.write(MAIN_HELP);
      return cmd === undefined ? 1 : 0;
    }
    if (cmd === '--version' || cmd === '-v') {
      io.stdout.write(`moet ${await version()}\n`);
      return 0;
    }
    const command = COMMANDS[cmd];
    if (!command) throw new UsageError(`unknown command "${cmd}"; commands: ${Object.keys(COMMANDS).join(', ')} (see moet --help)`);
    return await command(rest, io);
  } catch (e) {
    io.stderr.write(`moet: error: ${errorLine(e)}\n`);
    if (verbose && e instanceof Error && e.stack) io.stderr.write(e.stack + '\n');
    return 1;
  }
}

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  // src/cli/app.ts and dist/src/cli/app.js both sit two or three levels below package.json
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'moet' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return 'unknown';
}
