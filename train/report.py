"""The training curve of a run as a markdown table and an SVG picture (docs/tiny-moe.md).

usage: python3 train/report.py --run train/runs/tiny [--svg docs/tiny-moe-loss.svg]
Reads run/log.jsonl: training loss (mean of the logged steps between evaluations) and held-out loss
per domain at every evaluation.
"""
import argparse
import json
import os

COLOURS = {'train': '#444444', 'prose': '#1f77b4', 'code': '#d62728', 'svg': '#2ca02c', 'json': '#9467bd'}


def read(run):
    rows = [json.loads(line) for line in open(os.path.join(run, 'log.jsonl'))]
    rows.sort(key=lambda r: r['step'])
    return rows


def table(rows):
    out = ['| step | tokens | time | train loss | ' + ' | '.join(f'held-out {d}' for d in ['prose', 'code', 'svg', 'json']) + ' |',
           '|---:|---:|---:|---:|' + '---:|' * 4]
    acc = []
    for r in rows:
        if 'loss' in r:
            acc.append(r['loss'])
        if 'val' in r:
            v = r['val']
            tr = sum(acc) / len(acc) if acc else float('nan')
            out.append(f"| {r['step']} | {r['tokens'] / 1e6:.2f} M | {r['elapsed'] / 60:.0f} min | {tr:.3f} | "
                       + ' | '.join(f"{v.get(d, float('nan')):.3f}" for d in ['prose', 'code', 'svg', 'json']) + ' |')
            acc = []
    return '\n'.join(out)


def svg(rows):
    w, h, l, t, r_, b = 680, 360, 56, 30, 140, 44
    steps = max(r['step'] for r in rows)
    series = {'train': [(r['step'], r['loss']) for r in rows if 'loss' in r]}
    for d in ['prose', 'code', 'svg', 'json']:
        series[d] = [(r['step'], r['val'][d]) for r in rows if 'val' in r and d in r['val']]
    ymax = 8.5
    X = lambda s: l + (w - l - r_) * s / steps
    Y = lambda v: t + (h - t - b) * (1 - min(v, ymax) / ymax)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">',
         '<title>tiny-moe training curve</title>', f'<rect width="{w}" height="{h}" fill="#fff"/>',
         f'<text x="{l}" y="18" font-size="13" font-weight="bold">tiny-moe: training loss and held-out loss per domain (nats/token)</text>']
    for v in range(0, 9):
        o.append(f'<line x1="{l}" x2="{w - r_}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>'
                 f'<text x="{l - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    for s in range(0, steps + 1, 100):
        o.append(f'<text x="{X(s):.1f}" y="{h - b + 16}" text-anchor="middle">{s}</text>')
    o.append(f'<text x="{(l + w - r_) / 2}" y="{h - 8}" text-anchor="middle">step (16 × 256 tokens each)</text>')
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        path = ' '.join(f'{"M" if j == 0 else "L"}{X(s):.1f},{Y(v):.1f}' for j, (s, v) in enumerate(pts))
        o.append(f'<path d="{path}" fill="none" stroke="{COLOURS[name]}" stroke-width="{1 if name == "train" else 2}"/>')
        label = 'train (batch)' if name == 'train' else f'held-out {name}'
        o.append(f'<line x1="{w - r_ + 10}" x2="{w - r_ + 26}" y1="{t + 14 * i + 6}" y2="{t + 14 * i + 6}" stroke="{COLOURS[name]}" stroke-width="2"/>'
                 f'<text x="{w - r_ + 30}" y="{t + 14 * i + 10}">{label}</text>')
    o.append('</svg>')
    return '\n'.join(o) + '\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--run', required=True)
    ap.add_argument('--svg')
    a = ap.parse_args()
    rows = read(a.run)
    print(table(rows))
    if a.svg:
        with open(a.svg, 'w') as f:
            f.write(svg(rows))


if __name__ == '__main__':
    main()
