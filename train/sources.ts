// The training sources of the shipped tiny MoE (docs/tiny-moe.md): four domains, each from files that
// a Debian package or moet's own package-lock installs, each under a licence that allows shipping
// weights trained on it. Every document keeps its domain label.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const DOMAINS = ['prose', 'code', 'svg', 'json'] as const;
export type Domain = (typeof DOMAINS)[number];

export interface Doc {
  domain: Domain;
  /** source name (SOURCES key) */
  source: string;
  /** file the document came from (with #n when one file gives several documents) */
  path: string;
  text: string;
}

export interface Source {
  domain: Domain;
  /** the Debian package (or npm lockfile) that installs the files */
  provider: string;
  /** how to install it when it is missing */
  install: string;
  licence: string;
  root: string;
  /** documents of the source, in a fixed order */
  collect(root: string): Doc[];
}

/** Files under `dir` (sorted, recursive) whose name passes `keep` and whose path passes `dirOk`. */
function walk(dir: string, keep: (name: string) => boolean, dirOk: (path: string) => boolean = () => true): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (dirOk(p)) out.push(...walk(p, keep, dirOk));
    } else if (e.isFile() && keep(e.name)) out.push(p);
  }
  return out;
}

/** Cuts `text` to at most `max` characters at a line boundary. */
export function cutAtLine(text: string, max: number): string {
  if (text.length <= max) return text;
  const i = text.lastIndexOf('\n', max);
  return text.slice(0, i > max / 2 ? i + 1 : max);
}

/** Splits `text` into pieces of at most about `max` characters at `sep` boundaries (blank lines). */
export function splitAt(text: string, max: number, sep = '\n\n'): string[] {
  const parts = text.split(sep);
  const out: string[] = [];
  let cur = '';
  for (const p of parts) {
    if (cur && cur.length + sep.length + p.length > max) {
      out.push(cur);
      cur = '';
    }
    cur = cur ? cur + sep + p : p;
  }
  if (cur) out.push(cur);
  return out.map((x) => cutAtLine(x, max * 2));
}

/** reStructuredText → its prose paragraphs: no code, directives, tables, headings or lists of links. */
export function rstProse(rst: string): string {
  const paras = rst.replace(/\r/g, '').split(/\n\s*\n/);
  const out: string[] = [];
  for (const p of paras) {
    if (/^\s/.test(p) || /^\.\.|^[:|+>]|^>>>/.test(p)) continue; // indented (code, quotes), directives, fields, tables, sessions
    const lines = p.split('\n');
    if (lines.some((l) => /^([=\-~^*#"`'+_.])\1{2,}\s*$/.test(l))) continue; // headings
    let s = lines.join(' ');
    s = s
      .replace(/:[a-zA-Z:]+:`~?!?([^`<]*?)(?:\s*<[^>]*>)?`/g, '$1') // roles :func:`x`
      .replace(/``([^`]+)``/g, '$1')
      .replace(/`([^`<]+?)\s*<[^>]*>`_{1,2}/g, '$1') // `text <url>`_
      .replace(/`([^`]+)`_{0,2}/g, '$1')
      .replace(/\*\*([^*]+)\*\*/g, '$1')
      .replace(/\*([^*\s][^*]*)\*/g, '$1')
      .replace(/\|([^|\s]+)\|/g, '$1')
      .replace(/\s+::$/, '.')
      .replace(/::$/, ':')
      .replace(/\\(.)/g, '$1')
      .replace(/\s+/g, ' ')
      .trim();
    if (s.length < 60) continue;
    const letters = (s.match(/[A-Za-z ,.;:'"()-]/g) ?? []).length;
    if (letters / s.length < 0.92) continue;
    if (!/[.!?:]$/.test(s)) continue;
    out.push(s);
  }
  return out.join('\n\n');
}

/** Licences (SPDX ids as package.json writes them) that allow shipping weights trained on the file. */
const PERMISSIVE = new Set(['MIT', 'ISC', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', '0BSD', 'BlueOak-1.0.0', 'CC0-1.0', 'Unlicense', 'Python-2.0', '(MIT OR Apache-2.0)', 'MIT OR Apache-2.0', '(MIT OR CC0-1.0)', 'MIT-0']);

export const SOURCES: Record<string, Source> = {
  'python3-doc': {
    domain: 'prose',
    provider: 'Debian python3-doc (the Python 3.11 documentation, reStructuredText sources)',
    install: 'apt-get install python3-doc',
    licence: 'PSF-2.0',
    root: '/usr/share/doc/python3.11/html/_sources',
    collect(root) {
      return walk(root, (n) => n.endsWith('.rst.txt')).flatMap((p) => {
        const text = rstProse(readFileSync(p, 'utf8'));
        return splitAt(text, 6000).flatMap((t, i) => (t.length >= 400 ? [{ domain: 'prose' as const, source: 'python3-doc', path: `${relative(root, p)}#${i}`, text: t + '\n' }] : []));
      });
    },
  },
  'python3.11-stdlib': {
    domain: 'code',
    provider: 'Debian libpython3.11-minimal / libpython3.11-stdlib (the Python standard library sources)',
    install: 'apt-get install libpython3.11-stdlib',
    licence: 'PSF-2.0',
    root: '/usr/lib/python3.11',
    collect(root) {
      const skip = /\/(test|tests|idle_test|site-packages|dist-packages|__pycache__|lib2to3|config-3\.11[^/]*)$/;
      return walk(root, (n) => n.endsWith('.py'), (d) => !skip.test(d)).flatMap((p) => {
        const text = readFileSync(p, 'utf8').replace(/\r/g, '');
        // top-level blocks: split before a line that starts a def / class / decorator after a blank line
        return splitAt(text.replace(/\n\n+(?=(?:def |class |@|async def ))/g, '\n\n\u0000'), 6000, '\u0000')
          .map((t) => t.replaceAll('\u0000', ''))
          .flatMap((t, i) => (t.length >= 300 ? [{ domain: 'code' as const, source: 'python3.11-stdlib', path: `${relative(root, p)}#${i}`, text: t.endsWith('\n') ? t : t + '\n' }] : []));
      });
    },
  },
  'adwaita-icon-theme': {
    domain: 'svg',
    provider: 'Debian adwaita-icon-theme 43 (GNOME symbolic icons)',
    install: 'apt-get install adwaita-icon-theme',
    licence: 'CC-BY-SA-3.0-US or LGPL-3 (attribution: GNOME Project)',
    root: '/usr/share/icons/Adwaita',
    collect: (root) => svgDocs(root, 'adwaita-icon-theme'),
  },
  'tango-icon-theme': {
    domain: 'svg',
    provider: 'Debian tango-icon-theme (Tango Desktop Project icons, scalable)',
    install: 'apt-get install tango-icon-theme',
    licence: 'public domain',
    root: '/usr/share/icons/Tango',
    collect: (root) => svgDocs(root, 'tango-icon-theme'),
  },
  'breeze-icon-theme': {
    domain: 'svg',
    provider: 'Debian breeze-icon-theme 5.103 (KDE Breeze icons)',
    install: 'apt-get install breeze-icon-theme',
    licence: 'LGPL-3+',
    root: '/usr/share/icons/breeze',
    collect: (root) => svgDocs(root, 'breeze-icon-theme'),
  },
  'iso-codes': {
    domain: 'json',
    provider: 'Debian iso-codes (ISO 639 / 3166 / 4217 / 15924 tables as JSON)',
    install: 'apt-get install iso-codes',
    licence: 'LGPL-2.1+',
    root: '/usr/share/iso-codes/json',
    collect(root) {
      const docs: Doc[] = [];
      for (const p of walk(root, (n) => n.endsWith('.json'))) {
        const obj = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown[]>;
        for (const [key, rows] of Object.entries(obj)) {
          for (let i = 0; i < rows.length; i += 24) {
            docs.push({ domain: 'json', source: 'iso-codes', path: `${relative(root, p)}/${i / 24}`, text: JSON.stringify({ [key]: rows.slice(i, i + 24) }, null, 2) + '\n' });
          }
        }
      }
      return docs;
    },
  },
  'npm-package-json': {
    domain: 'json',
    provider: "the package.json files of moet's own dependencies (node_modules as package-lock.json pins it; `npm ci`)",
    install: 'npm ci (in the repository root)',
    licence: 'each package\'s own: only MIT, ISC, Apache-2.0, BSD, 0BSD, BlueOak, CC0 and Unlicense ones are kept',
    root: join(import.meta.dirname, '..', 'node_modules'),
    collect(root) {
      return walk(root, (n) => n === 'package.json', (d) => !/\/(test|tests|fixtures|\.bin|\.cache)$/.test(d)).flatMap((p) => {
        let obj: { license?: unknown; name?: unknown };
        try {
          obj = JSON.parse(readFileSync(p, 'utf8'));
        } catch {
          return [];
        }
        if (typeof obj.name !== 'string' || typeof obj.license !== 'string' || !PERMISSIVE.has(obj.license)) return [];
        const text = JSON.stringify(obj, null, 2) + '\n';
        return text.length >= 200 ? [{ domain: 'json' as const, source: 'npm-package-json', path: relative(root, p), text: cutAtLine(text, 12000) }] : [];
      });
    },
  },
};

/** An SVG without its editor's bookkeeping (Inkscape's metadata block, named view, comments). */
export function cleanSvg(svg: string): string {
  return svg
    .replace(/\r/g, '')
    .replace(/<!--[\s\S]*?-->\s*/g, '')
    .replace(/<metadata[\s\S]*?<\/metadata>\s*/g, '')
    .replace(/<sodipodi:namedview[\s\S]*?(?:\/>|<\/sodipodi:namedview>)\s*/g, '')
    .replace(/\n\s*\n/g, '\n');
}

function svgDocs(root: string, source: string): Doc[] {
  return walk(root, (n) => n.endsWith('.svg')).flatMap((p) => {
    // whole icons only: a cut SVG would teach unclosed documents
    if (statSync(p).size > 200000) return [];
    const text = cleanSvg(readFileSync(p, 'utf8'));
    if (text.length > 16000) return [];
    return [{ domain: 'svg' as const, source, path: relative(root, p), text: text.endsWith('\n') ? text : text + '\n' }];
  });
}

/**
 * The sources named (all by default).
 * @throws Error naming the known sources for an unknown name, or the install command for a missing one
 */
export function resolveSources(names: string[] | undefined): [string, Source][] {
  const list = names ?? Object.keys(SOURCES);
  return list.map((name) => {
    const s = SOURCES[name];
    if (!s) throw new Error(`unknown data source "${name}": the known sources are ${Object.keys(SOURCES).join(', ')} (train/sources.ts)`);
    if (!existsSync(s.root)) throw new Error(`data source "${name}" is not installed: ${s.root} is missing (${s.install})`);
    return [name, s];
  });
}

/** Held-out documents: about 1 in 25, by a hash of the path (stable across runs and machines). */
export function isHeldOut(doc: Doc): boolean {
  // by file: the pieces of one file are all held out or all trained on
  const h = createHash('sha256').update(`${doc.source}:${doc.path.replace(/#.*$/, '')}`).digest();
  return h.readUInt32LE(0) % 25 === 0;
}
