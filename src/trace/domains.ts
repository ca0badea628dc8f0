// Expert specialization by domain: given routing traces of texts whose domain is known (prose, code,
// SVG, JSON …), per layer the distribution of each expert's tokens over the domains, and the mutual
// information between the domain of a token and the expert the router chose for it. Formulas:
// docs/moe-internals.md ("Expert specialization by domain").
import { escapeXml, viridis } from './svg.js';
import type { RoutingTrace } from './types.js';

/** One labelled text's routing. */
export interface LabelledTrace {
  domain: string;
  trace: RoutingTrace;
}

/** Specialization of one MoE layer. */
export interface LayerSpecialization {
  layer: number;
  /** [nExpert][nDomain] assignments: how many times expert e was among the k chosen for a token of domain d */
  counts: number[][];
  /** [nExpert][nDomain] each expert's assignments as a distribution over the domains (rows sum to 1; zeros for an unused expert) */
  share: number[][];
  /**
   * [nExpert][nDomain] share / the domain's share of all assignments: 1 = the expert sees the domain as
   * often as the text set does, 2 = twice as often
   */
  lift: number[][];
  /**
   * I(D; E) in bits, D the domain of a token and E one of its k chosen experts (each with probability
   * 1/k): Σ p(d,e) log2(p(d,e) / (p(d) p(e))). 0 when routing ignores the domain; at most min(H(D), log2 nExpert)
   */
  mutualInformation: number;
  /** mutualInformation / H(D): the fraction of the domain's entropy the chosen expert reveals, 0..1 */
  normalized: number;
  /** I(D; E1) in bits with E1 the top-1 expert only */
  mutualInformationTop1: number;
}

export interface DomainSpecialization {
  domains: string[];
  /** [nDomain] tokens traced per domain */
  tokens: number[];
  nLayer: number;
  k: number;
  nExpert: number;
  /** H(D) in bits over the traced tokens */
  domainEntropy: number;
  layers: LayerSpecialization[];
}

/** I(X; Y) in bits from a joint count table [x][y]. */
function mutualInformation(joint: number[][]): number {
  let total = 0;
  const px: number[] = joint.map((row) => row.reduce((a, b) => a + b, 0));
  const py: number[] = new Array<number>(joint[0]?.length ?? 0).fill(0);
  for (const row of joint) row.forEach((c, j) => (py[j]! += c));
  for (const v of px) total += v;
  if (total === 0) return 0;
  let mi = 0;
  joint.forEach((row, i) =>
    row.forEach((c, j) => {
      if (c > 0) mi += (c / total) * Math.log2((c * total) / (px[i]! * py[j]!));
    }),
  );
  return Math.max(0, mi);
}

function entropyBits(counts: number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / total) * Math.log2(c / total);
  return h;
}

/**
 * Expert specialization by domain over labelled traces (all of one model). Domains are listed in
 * order of first appearance unless `domains` gives the order.
 * @throws RangeError for no traces, traces of different shapes, or a domain missing from `domains`
 */
export function domainSpecialization(items: readonly LabelledTrace[], domains?: readonly string[]): DomainSpecialization {
  if (items.length === 0) throw new RangeError('domainSpecialization: no traces');
  const { nLayer, k, nExpert } = items[0]!.trace;
  const names = domains ? [...domains] : [...new Set(items.map((i) => i.domain))];
  const index = new Map(names.map((d, i) => [d, i]));
  const nD = names.length;
  const tokens = new Array<number>(nD).fill(0);
  const counts = Array.from({ length: nLayer }, () => Array.from({ length: nExpert }, () => new Array<number>(nD).fill(0)));
  const top1 = Array.from({ length: nLayer }, () => Array.from({ length: nExpert }, () => new Array<number>(nD).fill(0)));
  for (const { domain, trace } of items) {
    if (trace.nLayer !== nLayer || trace.k !== k || trace.nExpert !== nExpert) {
      throw new RangeError(`domainSpecialization: traces of different shapes (${trace.nLayer}x${trace.k}/${trace.nExpert} vs ${nLayer}x${k}/${nExpert})`);
    }
    const d = index.get(domain);
    if (d === undefined) throw new RangeError(`domainSpecialization: domain "${domain}" is not among ${names.join(', ')}`);
    const n = trace.tokens.length;
    tokens[d]! += n;
    for (let t = 0; t < n; t++) {
      for (let l = 0; l < nLayer; l++) {
        const o = (t * nLayer + l) * k;
        for (let j = 0; j < k; j++) counts[l]![trace.ids[o + j]!]![d]!++;
        top1[l]![trace.ids[o]!]![d]!++;
      }
    }
  }
  const hD = entropyBits(tokens);
  const layers: LayerSpecialization[] = counts.map((c, layer) => {
    const total = c.reduce((a, row) => a + row.reduce((x, y) => x + y, 0), 0);
    const domainShare = names.map((_, d) => c.reduce((a, row) => a + row[d]!, 0) / (total || 1));
    const share = c.map((row) => {
      const s = row.reduce((a, b) => a + b, 0);
      return row.map((v) => (s > 0 ? v / s : 0));
    });
    const lift = share.map((row) => row.map((v, d) => (domainShare[d]! > 0 ? v / domainShare[d]! : 0)));
    // mutual information from the joint table [domain][expert]
    const joint = names.map((_, d) => c.map((row) => row[d]!));
    const joint1 = names.map((_, d) => top1[layer]!.map((row) => row[d]!));
    const mi = mutualInformation(joint);
    return { layer, counts: c, share, lift, mutualInformation: mi, normalized: hD > 0 ? mi / hD : 0, mutualInformationTop1: mutualInformation(joint1) };
  });
  return { domains: names, tokens, nLayer, k, nExpert, domainEntropy: hD, layers };
}

/**
 * The specialization as one SVG: per layer a heatmap of experts (rows) × domains (columns), each cell
 * the share of the expert's assignments that came from the domain (rows sum to 1), with the layer's
 * mutual information in its title.
 */
export function specializationSvg(s: DomainSpecialization, title = 'Expert specialization by domain'): string {
  const cell = 22;
  const left = 70;
  const top = 84;
  const nD = s.domains.length;
  const panelW = nD * cell;
  // room for the panel's two title lines
  const gap = Math.max(28, 120 - panelW);
  const w = left + s.nLayer * (panelW + gap) + 90;
  const h = top + s.nExpert * cell + 84;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${w}" height="${h}" fill="#fff"/>`,
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
  ];
  for (const L of s.layers) {
    const x0 = left + L.layer * (panelW + gap);
    out.push(`<text x="${x0}" y="36" font-weight="bold">layer ${L.layer}</text>`);
    out.push(`<text x="${x0}" y="50">I = ${L.mutualInformation.toFixed(2)} bits (${(100 * L.normalized).toFixed(0)}%)</text>`);
    s.domains.forEach((d, j) => {
      const x = x0 + j * cell + cell / 2;
      out.push(`<text x="${x}" y="${top - 6}" transform="rotate(-45 ${x} ${top - 6})" font-size="10">${escapeXml(d)}</text>`);
    });
    L.share.forEach((row, e) => {
      if (L.layer === 0) out.push(`<text x="${left - 6}" y="${top + e * cell + cell / 2 + 4}" text-anchor="end">expert ${e}</text>`);
      const n = L.counts[e]!.reduce((a, b) => a + b, 0);
      row.forEach((v, j) => {
        out.push(
          `<rect x="${x0 + j * cell}" y="${top + e * cell}" width="${cell - 1}" height="${cell - 1}" fill="${viridis(v)}">` +
            `<title>layer ${L.layer}, expert ${e}, ${escapeXml(s.domains[j]!)}: ${(100 * v).toFixed(1)}% of its ${n} assignments (lift ${L.lift[e]![j]!.toFixed(2)})</title></rect>`,
        );
      });
    });
  }
  // legend
  const lx = w - 70;
  out.push(`<defs><linearGradient id="spec-scale" x1="0" y1="1" x2="0" y2="0">${[0, 0.25, 0.5, 0.75, 1].map((t) => `<stop offset="${t}" stop-color="${viridis(t)}"/>`).join('')}</linearGradient></defs>`);
  out.push(`<rect x="${lx}" y="${top}" width="14" height="${s.nExpert * cell}" fill="url(#spec-scale)"/>`);
  out.push(`<text x="${lx + 18}" y="${top + 8}">100%</text><text x="${lx + 18}" y="${top + s.nExpert * cell}">0%</text>`);
  out.push(`<text x="${left}" y="${h - 44}">cell: the share of the expert's token assignments that came from each domain (rows sum to 100%)</text>`);
  out.push(`<text x="${left}" y="${h - 28}">tokens per domain: ${s.domains.map((d, i) => `${escapeXml(d)} ${s.tokens[i]}`).join(', ')}</text>`);
  out.push(`<text x="${left}" y="${h - 12}">I = mutual information between a token's domain and a chosen expert; % of H(domain) = ${s.domainEntropy.toFixed(2)} bits</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
