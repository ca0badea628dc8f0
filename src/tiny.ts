// The tiny MoE that ships with moet (models/, docs/tiny-moe.md): its file and its held-out labelled
// text set, found next to the package whether moet runs from its sources (src/) or from its build
// (dist/src/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** the package root: one level above src/, two above dist/src/ */
const root = [join(here, '..'), join(here, '..', '..')].find((d) => existsSync(join(d, 'package.json'))) ?? join(here, '..', '..');

/**
 * Absolute path of the tiny qwen3moe model that ships with moet (7 MB, Q8_0: 4 layers, 8 experts,
 * 2 used, a 4096-token byte-level BPE vocabulary), trained on English prose, Python, SVG and JSON.
 * `loadModel(tinyModelPath)` works from an installed package with no download. See docs/tiny-moe.md.
 */
export const tinyModelPath: string = join(root, 'models', 'tiny-moe.gguf');

/**
 * Absolute path of the tiny model's held-out labelled text set (JSON lines: `{domain, source, path,
 * text}`, domains prose / code / svg / json), which `moet routes` uses for expert specialization by
 * domain.
 */
export const tinyHeldOutPath: string = join(root, 'models', 'tiny-moe-heldout.jsonl');
