// moet routes --domains [FILE]: expert specialization by domain over a labelled text set (JSON lines
// with `domain` and `text`), by default the shipped tiny model on its held-out set
// (models/tiny-moe-heldout.jsonl). Statistic: src/trace/domains.ts; docs/moe-internals.md.
import { readFile, writeFile } from 'node:fs/promises';
import { loadModel, type BackendName } from '../model.js';
import { domainSpecialization, specializationSvg, type DomainSpecialization, type LabelledTrace } from '../trace/domains.js';
import { tinyHeldOutPath, tinyModelPath } from '../tiny.js';
import { UsageError, type CliIO } from './util.js';

export interface SpecializationParams {
  model?: string;
  /** the labelled set; '' or undefined: the shipped held-out set */
  domains?: string;
  backend?: BackendName;
  contextLength?: number;
  json?: string;
  svg?: string;
}

interface LabelledText {
  domain: string;
  text: string;
}

/** @throws UsageError for a file that is not JSON lines of {domain, text} */
export async function readLabelledSet(path: string): Promise<LabelledText[]> {
  const lines = (await readFile(path, 'utf8')).split('\n').filter((l) => l.trim() !== '');
  return lines.map((l, i) => {
    let o: unknown;
    try {
      o = JSON.parse(l);
    } catch {
      throw new UsageError(`routes: ${path} line ${i + 1} is not JSON (expected one {"domain": …, "text": …} object per line)`);
    }
    const r = o as Partial<LabelledText>;
    if (typeof r.domain !== 'string' || typeof r.text !== 'string') {
      throw new UsageError(`routes: ${path} line ${i + 1} has no string "domain" and "text"`);
    }
    return { domain: r.domain, text: r.text };
  });
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`.padStart(5);

/** The table `moet routes --domains` prints. */
export function specializationTable(s: DomainSpecialization): string {
  const lines = [
    `${s.tokens.reduce((a, b) => a + b, 0)} tokens (${s.domains.map((d, i) => `${d} ${s.tokens[i]}`).join(', ')}), ${s.nLayer} layers, ${s.k} of ${s.nExpert} experts; H(domain) = ${s.domainEntropy.toFixed(3)} bits`,
    'layer  I(domain; expert)  of H(domain)  I(domain; top-1)',
  ];
  for (const L of s.layers) {
    lines.push(`${String(L.layer).padStart(5)}  ${L.mutualInformation.toFixed(3).padStart(12)} bits  ${pct(L.normalized).padStart(12)}  ${L.mutualInformationTop1.toFixed(3).padStart(11)} bits`);
  }
  lines.push('', `each expert's assignments by domain (${s.domains.join(' / ')}), per layer:`);
  for (const L of s.layers) {
    lines.push(`layer ${L.layer}`);
    L.share.forEach((row, e) => {
      const n = L.counts[e]!.reduce((a, b) => a + b, 0);
      lines.push(`  expert ${String(e).padStart(2)} ${String(n).padStart(7)}  ${row.map(pct).join(' ')}`);
    });
  }
  return lines.join('\n') + '\n';
}

export async function specializationCommand(p: SpecializationParams, io: CliIO): Promise<number> {
  const setPath = p.domains || tinyHeldOutPath;
  const modelPath = p.model ?? tinyModelPath;
  const set = await readLabelledSet(setPath);
  if (set.length === 0) throw new UsageError(`routes: ${setPath} holds no texts`);
  const model = await loadModel(modelPath, { backend: p.backend, contextLength: p.contextLength });
  try {
    if (!(model.config.nExpert > 0)) throw new UsageError(`routes: ${modelPath} is a dense ${model.config.arch} model: it has no experts to trace`);
    const items: LabelledTrace[] = [];
    const session = model.createSession();
    try {
      for (const { domain, text } of set) {
        const tokens = model.tokenize(text).slice(0, model.contextLength);
        if (tokens.length === 0) continue;
        session.reset();
        await session.eval(tokens, { trace: { routing: true } });
        items.push({ domain, trace: session.lastTrace! });
      }
    } finally {
      session.dispose();
    }
    const stats = domainSpecialization(items);
    if (p.json !== undefined) {
      const json = JSON.stringify({ model: modelPath, set: setPath, backend: model.info.backend, texts: items.length, ...stats }) + '\n';
      if (p.json === '-') io.stdout.write(json);
      else await writeFile(p.json, json);
    }
    if (p.svg !== undefined) await writeFile(p.svg, specializationSvg(stats, `Expert specialization by domain: ${model.info.name ?? modelPath}`));
    if (p.json !== '-') {
      io.stdout.write(`model: ${model.info.name ?? modelPath} (backend ${model.info.backend}); texts: ${setPath} (${items.length})\n`);
      io.stdout.write(specializationTable(stats));
    }
    return 0;
  } finally {
    await model.dispose();
  }
}
