// moet pelican's prompt sets, token comparison and gallery page (no model).
import { describe, expect, it } from 'vitest';
import { galleryHtml } from '../../src/pelican/gallery.js';
import { DEFAULT_PROMPTS, parsePromptSet, PromptSetError, PROMPT_SETS } from '../../src/pelican/prompts.js';
import { compareTokens, parityLine, type EngineResult, type PelicanSummary } from '../../src/pelican/run.js';

describe('prompt sets', () => {
  it('the default set starts with Simon Willison\'s pelican and has other animal + vehicle pairs', () => {
    expect(DEFAULT_PROMPTS[0]).toEqual({ id: 'pelican-bicycle', prompt: 'Generate an SVG of a pelican riding a bicycle' });
    expect(DEFAULT_PROMPTS.length).toBeGreaterThanOrEqual(3);
    for (const p of DEFAULT_PROMPTS) expect(p.prompt).toMatch(/^Generate an SVG of an? \w+ riding an? \w+$/);
    expect(PROMPT_SETS['tiny']!.every((p) => p.prefill?.startsWith('<svg '))).toBe(true);
  });

  it('reads plain lines, JSON lines and a JSON array; ids default to a slug and stay unique', () => {
    expect(parsePromptSet('# my set\nGenerate an SVG of a cat driving a tractor\n\nDraw a fox\nDraw a fox\n')).toEqual([
      { id: 'cat-driving-a-tractor', prompt: 'Generate an SVG of a cat driving a tractor' },
      { id: 'draw-a-fox', prompt: 'Draw a fox' },
      { id: 'draw-a-fox-2', prompt: 'Draw a fox' },
    ]);
    expect(parsePromptSet('{"id": "x", "prompt": "p", "prefill": "<svg"}\nplain')).toEqual([{ id: 'x', prompt: 'p', prefill: '<svg' }, { id: 'plain', prompt: 'plain' }]);
    expect(parsePromptSet('[ "one", {"prompt": "two", "system": "be brief"} ]')).toEqual([{ id: 'one', prompt: 'one' }, { id: 'two', prompt: 'two', system: 'be brief' }]);
  });

  it('refuses bad files with the place of the problem', () => {
    expect(() => parsePromptSet('\n# nothing\n', 'f.txt')).toThrow(new PromptSetError('f.txt has no prompts'));
    expect(() => parsePromptSet('ok\n{"prompt": 3}', 'f.txt')).toThrow(/f.txt, line 2: expected a prompt/);
    expect(() => parsePromptSet('{"prompt": "a", "temp": "0"}')).toThrow(/unknown field "temp"/);
    expect(() => parsePromptSet('[{"id": "a b", "prompt": "x"}]')).toThrow(/entry 1: the id "a b" must be/);
    expect(() => parsePromptSet('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}')).toThrow(/the id "a" is used twice/);
    expect(() => parsePromptSet('[1, 2')).toThrow(/not valid JSON/);
  });
});

describe('token parity', () => {
  const text = (id: number) => `<${id}>`;
  it('identical outputs', () => {
    expect(compareTokens([1, 2, 3], [1, 2, 3], true, text)).toEqual({ greedy: true, identical: true, moetTokens: 3, llamaTokens: 3, firstDiff: null });
  });
  it('reports the first differing index and both tokens', () => {
    const p = compareTokens([1, 2, 3, 4], [1, 2, 9, 4], true, text);
    expect(p.firstDiff).toEqual({ index: 2, moet: { id: 3, text: '<3>' }, llama: { id: 9, text: '<9>' } });
    expect(parityLine(p)).toBe('parity: DIFFERENT at generated token 2: moet 3 "<3>", llama.cpp 9 "<9>" (4 vs 4 tokens)');
  });
  it('one output a prefix of the other: the shorter one ends there', () => {
    const p = compareTokens([1, 2], [1, 2, 5], false, text);
    expect(p.firstDiff).toEqual({ index: 2, moet: null, llama: { id: 5, text: '<5>' } });
    expect(parityLine(p)).toMatch(/different \(sampled: not expected to match\) at generated token 2: moet \(end of output\)/);
  });
});

describe('gallery', () => {
  const engine = (e: EngineResult['engine'], status: string, files: Record<string, string>): EngineResult => ({
    engine: e, status, warnings: ['a <b> warning'], promptTokens: 10, promptMs: 5, generatedTokens: 20, evalRuns: 19, genMs: 100,
    promptTps: 2000, genTps: 190, stopReason: 'eog', answerChars: 100, thinkingChars: 0, files,
  });
  const summary: PelicanSummary = {
    version: 1,
    createdAt: '2025-01-01T00:00:00.000Z',
    model: { path: 'm.gguf', name: 'M <&>', architecture: 'qwen3moe', backend: 'cpu', contextLength: 512, fileSize: 1, parameterCount: 1 },
    llama: { nodeLlamaCppVersion: '3.22.1', gpu: 'cpu', threads: 2 },
    settings: { promptSet: 'default', runs: 1, seed: 42, maxTokens: 64, enableThinking: false, sampling: { temperature: 0 }, greedy: true },
    runs: [{
      promptId: 'p', prompt: 'Draw <script>alert(1)</script>', run: 1, seed: 42, dir: 'p 1', promptTokens: 10,
      moet: { ...engine('moet', 'ok', { png: 'p 1/moet.png', svg: 'p 1/moet.svg' }), png: { width: 512, height: 256, ink: 0.5 }, svg: { source: 'fenced', closed: true, count: 1, elements: 3, paths: 1 } },
      llama: engine('llama.cpp', 'invalid: unclosed <g>', { raw: 'p 1/llama.raw.txt' }),
      parity: { greedy: true, identical: false, moetTokens: 20, llamaTokens: 20, firstDiff: { index: 7, moet: { id: 1, text: '<' }, llama: { id: 2, text: '>' } } },
    }],
    totals: { moet: { ok: 1, noSvg: 0, invalid: 0, error: 0 }, 'llama.cpp': { ok: 0, noSvg: 0, invalid: 1, error: 0 } },
    parity: { greedy: true, compared: 1, identical: 0, pass: false },
  };
  it('shows both engines, speeds and the parity line, escaping what the model and the user wrote', () => {
    const html = galleryHtml(summary);
    expect(html).not.toContain('<script>');
    expect(html).toContain('Draw &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('M &lt;&amp;&gt;');
    expect(html).toContain('<img src="p%201/moet.png"');
    expect(html).toContain('<a href="p%201/moet.svg">');
    expect(html).toContain('<th>llama.cpp</th>');
    expect(html).toContain('invalid: unclosed &lt;g&gt;');
    expect(html).toContain('gen 190 t/s (20 tokens, eog)');
    expect(html).toContain('parity: DIFFERENT at generated token 7: moet 1 &quot;&lt;&quot;');
    expect(html).toContain('greedy: FAIL');
    expect(html).toContain('a &lt;b&gt; warning');
  });
  it('without llama.cpp: one column', () => {
    const { llama: _l, parity: _p, ...rest } = summary;
    const html = galleryHtml({ ...rest, runs: summary.runs.map(({ llama: _x, parity: _y, ...r }) => r) });
    expect(html).not.toContain('llama.cpp');
  });
});
