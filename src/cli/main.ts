#!/usr/bin/env node
// Entry point of the `moet` command (package.json "bin"). Works as `npx tsx src/cli/main.ts` and,
// built, as `node dist/src/cli/main.js`.
import { runCli } from './app.js';

process.exitCode = await runCli(process.argv.slice(2));
