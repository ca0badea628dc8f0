// Reads a PNG (8-bit RGB/RGBA, non-interlaced: what Chromium's --screenshot writes) with node:zlib and
// prints its size, the number of distinct colours and the fraction of pixels that are not the
// background (the top-left pixel's colour). Exits with 1 when the image looks blank.
//   node --import tsx tests/render/png-stats.ts FILE.png [--min-ink 0.02] [--min-colours 16]
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

export interface PngStats {
  width: number;
  height: number;
  colours: number;
  /** fraction of pixels whose colour differs from the top-left pixel's */
  ink: number;
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG into RGBA pixels. */
export function decodePng(buf: Buffer): { width: number; height: number; rgba: Uint8Array } {
  const SIG = [137, 80, 78, 71, 13, 10, 26, 10];
  if (!SIG.every((b, i) => buf[i] === b)) throw new Error('not a PNG file');
  let at = 8;
  let width = 0;
  let height = 0;
  let colourType = 0;
  const idat: Buffer[] = [];
  while (at < buf.length) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8]!;
      colourType = data[9]!;
      if (depth !== 8 || (colourType !== 2 && colourType !== 6) || data[12] !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colourType}, interlace ${data[12]}`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    at += 12 + len;
  }
  const bpp = colourType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const cur = new Uint8Array(stride);
  const prev = new Uint8Array(stride);
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    const row = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp]! : 0;
      const b = prev[i]!;
      const c = i >= bpp ? prev[i - bpp]! : 0;
      let v = row[i]!;
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = v & 0xff;
    }
    for (let x = 0; x < width; x++) {
      for (let ch = 0; ch < 3; ch++) rgba[(y * width + x) * 4 + ch] = cur[x * bpp + ch]!;
      rgba[(y * width + x) * 4 + 3] = bpp === 4 ? cur[x * bpp + 3]! : 255;
    }
    prev.set(cur);
  }
  return { width, height, rgba };
}

export function pngStats(buf: Buffer): PngStats {
  const { width, height, rgba } = decodePng(buf);
  const px = new Uint32Array(rgba.buffer, rgba.byteOffset, width * height);
  const bg = px[0];
  const colours = new Set<number>();
  let ink = 0;
  for (const p of px) {
    colours.add(p);
    if (p !== bg) ink++;
  }
  return { width, height, colours: colours.size, ink: ink / Math.max(1, px.length) };
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const args = process.argv.slice(2);
  const file = args[0];
  if (!file) {
    console.error('usage: png-stats.ts FILE.png [--min-ink F] [--min-colours N]');
    process.exit(2);
  }
  const opt = (name: string, d: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : d;
  };
  const s = pngStats(readFileSync(file));
  const minInk = opt('--min-ink', 0.02);
  const minColours = opt('--min-colours', 16);
  const ok = s.ink >= minInk && s.colours >= minColours;
  console.log(`${file}: ${s.width}×${s.height}, ${s.colours} colours, ${(100 * s.ink).toFixed(1)}% non-background: ${ok ? 'OK' : 'LOOKS BLANK'}`);
  process.exit(ok ? 0 : 1);
}
