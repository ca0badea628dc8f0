// SVG → PNG for moet pelican with resvg (@resvg/resvg-js: the Rust renderer's prebuilt N-API
// binding; no browser). Only SVGs that validateSvg accepted get here, so nothing external is ever
// fetched (resvg would not fetch a URL anyway; no resources directory is given, so a relative file
// path resolves to nothing). The output's longer side is PNG_SIZE px whatever the SVG declares, and
// the size resvg reports is checked again before rendering, so no SVG can make a large bitmap.
import { MoetError } from '../errors.js';

/** Longer side of a rendered PNG, in px. */
export const PNG_SIZE = 512;
/** Largest PNG side accepted (a guard on resvg's own size computation). */
const MAX_PNG_SIDE = 2048;

/** A rendered picture. */
export interface RenderedPng {
  png: Uint8Array;
  width: number;
  height: number;
  /** fraction of pixels that are not the white background (0: the picture is blank) */
  ink: number;
}

/** resvg-js is missing (an install with --omit=optional on a platform without a pinned binary). */
export class RendererUnavailableError extends MoetError {}

type ResvgModule = typeof import('@resvg/resvg-js');
let resvgPromise: Promise<ResvgModule> | null = null;

async function resvg(): Promise<ResvgModule> {
  resvgPromise ??= import('@resvg/resvg-js')
    .then((m) => ((m as { default?: ResvgModule }).default ?? m) as ResvgModule)
    .catch((e: unknown) => {
      resvgPromise = null;
      throw new RendererUnavailableError(
        `cannot load @resvg/resvg-js, the SVG renderer (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); ` +
          'reinstall moet with its optional dependencies (npm install, without --omit=optional), or add @resvg/resvg-js-<your platform>',
        { cause: e },
      );
    });
  return resvgPromise;
}

/**
 * Renders an SVG (one validateSvg accepted) to a PNG whose longer side is `size` px, on white.
 * @returns the PNG, or `{ error }` when resvg refuses the SVG or its size is out of bounds
 * @throws RendererUnavailableError when resvg cannot be loaded
 */
export async function renderSvg(svg: string, size = PNG_SIZE): Promise<RenderedPng | { error: string }> {
  const { Resvg } = await resvg();
  try {
    // first the size resvg itself computes (no fonts needed for that), then the real render
    const probe = new Resvg(svg, { fitTo: { mode: 'original' }, font: { loadSystemFonts: false }, logLevel: 'off' });
    const w = probe.width;
    const h = probe.height;
    if (!(w > 0 && h > 0 && Number.isFinite(w) && Number.isFinite(h))) return { error: `resvg computed the size ${w}×${h}` };
    const fitTo = w >= h ? ({ mode: 'width', value: size } as const) : ({ mode: 'height', value: size } as const);
    const outW = w >= h ? size : Math.ceil((size * w) / h);
    const outH = w >= h ? Math.ceil((size * h) / w) : size;
    if (outW > MAX_PNG_SIDE || outH > MAX_PNG_SIDE) return { error: `the picture would be ${outW}×${outH} px` };
    const image = new Resvg(svg, { fitTo, background: '#ffffff', logLevel: 'off' }).render();
    const px = image.pixels;
    let ink = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i] !== 255 || px[i + 1] !== 255 || px[i + 2] !== 255) ink++;
    return { png: new Uint8Array(image.asPng()), width: image.width, height: image.height, ink: ink / Math.max(1, px.length / 4) };
  } catch (e) {
    return { error: `resvg: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
}
