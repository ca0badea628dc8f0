// From a model's answer to a recorded result: extract the SVG, validate it, render it. Never throws
// for anything the model wrote: every outcome is a status ('ok', 'no svg', 'invalid: <reason>').
import { renderSvg, type RenderedPng } from './render.js';
import { extractSvg, validateSvg, type ExtractedSvg } from './svg.js';

/** What the SVG of an answer turned out to be. */
export interface Judgement {
  /** 'ok', 'no svg' or 'invalid: <reason>' */
  status: string;
  /** a hint on why (the answer was cut at the token limit, it ended while thinking, …) */
  note?: string;
  /** repairs and remarks that did not make it invalid */
  warnings: string[];
  /** where the SVG came from in the answer, when there was one */
  extracted?: Omit<ExtractedSvg, 'svg'>;
  /** the extracted SVG source (repaired when valid), when there was one */
  svg?: string;
  /** for a valid SVG: its size and counts */
  info?: { width: number; height: number; elements: number; paths: number; elementCounts: Record<string, number>; depth: number };
  /** for a rendered one */
  png?: RenderedPng;
}

/** How the answer ended, for the notes. */
export interface AnswerContext {
  /** the generation stopped at the token limit (true) or at a full context ('context') */
  truncated?: boolean | 'context';
  /** the model's thinking (not searched for an SVG) */
  thinking?: string;
}

/**
 * Extracts, validates and renders the SVG of `answer` (the answer without its thinking).
 * @throws RendererUnavailableError when resvg cannot be loaded (not a property of the answer)
 */
export async function judgeAnswer(answer: string, ctx: AnswerContext = {}): Promise<Judgement> {
  const cut = ctx.truncated === 'context' ? 'the answer was cut by a full context (raise -c)' : ctx.truncated ? 'the answer was cut at the token limit (raise --max-tokens)' : undefined;
  const found = extractSvg(answer);
  if (!found) {
    const thinkingOnly = answer.trim() === '' && (ctx.thinking ?? '').trim() !== '';
    const note = thinkingOnly && ctx.truncated ? `the model was still thinking when ${ctx.truncated === 'context' ? 'the context was full (raise -c' : 'it reached the token limit (raise --max-tokens'} or use --no-think)` : thinkingOnly ? 'the answer was empty after the thinking' : cut;
    return { status: 'no svg', warnings: [], ...(note ? { note } : {}) };
  }
  const { svg, ...extracted } = found;
  const warnings: string[] = [];
  if (found.count > 1) warnings.push(`the answer holds ${found.count} SVGs: the first was judged`);
  const check = validateSvg(svg);
  warnings.push(...check.warnings);
  if (!check.valid) return { status: `invalid: ${check.reason}`, warnings, extracted, svg, ...(cut && !found.closed ? { note: cut } : {}) };
  const { width, height, elements, paths, elementCounts, depth } = check;
  const info = { width, height, elements, paths, elementCounts, depth };
  const png = await renderSvg(check.svg);
  if ('error' in png) return { status: `invalid: ${png.error}`, warnings, extracted, svg: check.svg, info };
  if (png.ink === 0) warnings.push('the picture is blank (all white)');
  return { status: 'ok', warnings, extracted, svg: check.svg, info, png };
}
