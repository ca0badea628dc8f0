"""Trains the tiny qwen3moe (train/model.py) on train/prepare.ts's data, with checkpoints that resume,
and exports the weights as raw f32 tensors + a JSON manifest for train/export.ts (which writes the
GGUF with moet's own writer).

usage: python3 train/train.py --run train/runs/tiny [--preset tiny] [--steps N] ...
       python3 train/train.py --run DIR --bench 20        (training speed, nothing written)
       python3 train/train.py --run DIR --export-only     (export the checkpoint as it is)

Threads: 1 by default (--threads), so that a shared machine keeps a core; run it under `nice`.
The run directory holds ckpt.pt (atomic: written to ckpt.pt.tmp, then renamed), log.jsonl (one line
per logged step, val losses per domain) and export/ (manifest.json, weights.f32).
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Qwen3Moe  # noqa: E402

DOMAINS = ['prose', 'code', 'svg', 'json']
# share of training sequences per domain
MIXTURE = {'prose': 0.3, 'code': 0.3, 'svg': 0.2, 'json': 0.2}

PRESETS = {
    # the shipped model (docs/tiny-moe.md)
    'tiny': dict(n_embd=256, n_layer=4, n_head=4, n_head_kv=2, head_dim=64, n_expert=8, n_expert_used=2, n_ff_exp=192, tied=True),
    # a few seconds per step less: for trying the pipeline end to end
    'smoke': dict(n_embd=64, n_layer=2, n_head=2, n_head_kv=1, head_dim=32, n_expert=4, n_expert_used=2, n_ff_exp=64),
}

CKPT_KEYS = {'format', 'config', 'train', 'data', 'step', 'model', 'optim', 'tokens'}


class CheckpointError(Exception):
    pass


def fail(msg):
    print(f'train.py: {msg}', file=sys.stderr)
    sys.exit(2)


def data_fingerprint(data_dir):
    h = hashlib.sha256()
    with open(os.path.join(data_dir, 'meta.json'), 'rb') as f:
        h.update(f.read())
    with open(os.path.join(data_dir, 'tokenizer.json'), 'rb') as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def load_streams(data_dir, split):
    out = {}
    for d in DOMAINS:
        p = os.path.join(data_dir, f'{d}.{split}.u16')
        if os.path.exists(p):
            out[d] = np.fromfile(p, dtype=np.uint16)
    if not out:
        fail(f'no {split} data in {data_dir}: run `node --import tsx train/prepare.ts` first')
    return out


def batch(streams, rng, n, seq):
    """n windows of seq+1 tokens: domains drawn by MIXTURE, offsets uniform."""
    names = [d for d in DOMAINS if d in streams]
    w = np.array([MIXTURE[d] for d in names])
    doms = rng.choice(len(names), size=n, p=w / w.sum())
    rows = []
    for di in doms:
        s = streams[names[di]]
        o = rng.integers(0, len(s) - seq - 1)
        rows.append(s[o:o + seq + 1].astype(np.int64))
    x = torch.from_numpy(np.stack(rows))
    return x[:, :-1], x[:, 1:]


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    t = (step - a.warmup) / max(1, a.steps - a.warmup)
    return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def make_optim(model, a):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{'params': decay, 'weight_decay': a.wd}, {'params': no_decay, 'weight_decay': 0.0}],
                             lr=a.lr, betas=(0.9, 0.95), eps=1e-8)


def save_checkpoint(path, state):
    tmp = path + '.tmp'
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    """The checkpoint's dict. @raises CheckpointError when it cannot be read or lacks what a run needs."""
    try:
        state = torch.load(path, map_location='cpu')
    except Exception as e:  # truncated, overwritten, not a torch file
        raise CheckpointError(f'checkpoint {path} is corrupt or not a checkpoint ({type(e).__name__}: {e}); '
                              f'delete it (or the run directory) to start over, or pass --fresh') from None
    if not isinstance(state, dict) or state.get('format') != 'moet-tiny-moe-1' or not CKPT_KEYS <= set(state):
        raise CheckpointError(f'checkpoint {path} is not a moet tiny-MoE checkpoint (missing '
                              f'{sorted(CKPT_KEYS - set(state)) if isinstance(state, dict) else "everything"}); '
                              f'delete it or pass --fresh')
    return state


@torch.no_grad()
def evaluate(model, val, seq, windows=8):
    """Mean next-token loss per domain on fixed, evenly spaced windows of the held-out streams."""
    model.eval()
    out = {}
    for d, s in val.items():
        n = min(windows, max(1, (len(s) - 1) // seq))
        offs = np.linspace(0, len(s) - seq - 1, n).astype(np.int64)
        x = torch.from_numpy(np.stack([s[o:o + seq + 1].astype(np.int64) for o in offs]))
        logits = model(x[:, :-1])
        out[d] = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1)).item()
    model.train()
    return out


def export(model, run_dir, extra):
    """run/export/{weights.f32, manifest.json}: tensors in GGUF names, shapes in ggml order (ne0 first)."""
    d = os.path.join(run_dir, 'export')
    os.makedirs(d, exist_ok=True)
    tensors = []
    offset = 0
    tmp = os.path.join(d, 'weights.f32.tmp')
    with open(tmp, 'wb') as f:
        for name, t in model.gguf_tensors():
            a = t.detach().to(torch.float32).contiguous().numpy()
            f.write(a.tobytes())
            tensors.append({'name': name, 'shape': list(reversed(a.shape)), 'offset': offset, 'count': int(a.size)})
            offset += a.nbytes
    os.replace(tmp, os.path.join(d, 'weights.f32'))
    manifest = {'format': 'moet-tiny-moe-export-1', 'config': model.c.to_dict(), 'tensors': tensors, **extra}
    with open(os.path.join(d, 'manifest.json.tmp'), 'w') as f:
        json.dump(manifest, f, indent=1)
    os.replace(os.path.join(d, 'manifest.json.tmp'), os.path.join(d, 'manifest.json'))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data'))
    ap.add_argument('--run', required=True)
    ap.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    ap.add_argument('--steps', type=int, default=1200)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--seq', type=int, default=256)
    ap.add_argument('--context', type=int, default=512, help='context_length written to the GGUF')
    ap.add_argument('--lr', type=float, default=2.5e-3)
    ap.add_argument('--warmup', type=int, default=100)
    ap.add_argument('--wd', type=float, default=0.1)
    ap.add_argument('--aux', type=float, default=0.01, help='load-balancing loss coefficient')
    ap.add_argument('--seed', type=int, default=1234)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--ckpt-every', type=int, default=50)
    ap.add_argument('--eval-every', type=int, default=100)
    ap.add_argument('--log-every', type=int, default=10)
    ap.add_argument('--bench', type=int, default=0, help='time this many steps and exit (nothing written)')
    ap.add_argument('--fresh', action='store_true', help='discard an existing checkpoint of this run')
    ap.add_argument('--export-only', action='store_true')
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    meta_path = os.path.join(a.data, 'meta.json')
    if not os.path.exists(meta_path):
        fail(f'{meta_path} is missing: run `node --import tsx train/prepare.ts` first')
    with open(meta_path) as f:
        meta = json.load(f)
    cfg = Config(n_vocab=meta['vocab'], context_length=a.context, **PRESETS[a.preset])
    fingerprint = data_fingerprint(a.data)
    train_args = {k: getattr(a, k) for k in ('preset', 'steps', 'batch', 'seq', 'lr', 'warmup', 'wd', 'aux', 'seed')}

    model = Qwen3Moe(cfg)
    model.reset_parameters(a.seed)
    optim = make_optim(model, a)
    train = load_streams(a.data, 'train')
    val = load_streams(a.data, 'val')
    n_params = sum(p.numel() for p in model.parameters())
    print(f'config {cfg.to_dict()} | {n_params / 1e6:.2f} M parameters | data {fingerprint}', file=sys.stderr)

    if a.bench:
        t0 = None
        for step in range(a.bench + 2):
            if step == 2:
                t0 = time.time()
            x, y = batch(train, np.random.default_rng([a.seed, step]), a.batch, a.seq)
            stats = []
            logits = model(x, stats)
            loss = F.cross_entropy(logits.reshape(-1, cfg.n_vocab), y.reshape(-1))
            (loss + a.aux * sum(s[0] for s in stats) / len(stats)).backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        dt = (time.time() - t0) / a.bench
        print(json.dumps({'sec_per_step': round(dt, 3), 'tokens_per_sec': round(a.batch * a.seq / dt),
                          'params': n_params, 'loss': round(loss.item(), 3)}))
        return

    os.makedirs(a.run, exist_ok=True)
    ckpt = os.path.join(a.run, 'ckpt.pt')
    log_path = os.path.join(a.run, 'log.jsonl')
    step, tokens, elapsed = 0, 0, 0.0
    if os.path.exists(ckpt) and a.fresh:
        os.remove(ckpt)
        if os.path.exists(log_path):
            os.remove(log_path)
    if os.path.exists(ckpt):
        try:
            state = load_checkpoint(ckpt)
        except CheckpointError as e:
            fail(str(e))
        if state['config'] != cfg.to_dict() or state['data'] != fingerprint:
            fail(f'checkpoint {ckpt} belongs to another run (config {state["config"]}, data {state["data"]}); '
                 f'use another --run directory or pass --fresh')
        if not a.export_only and {k: v for k, v in state['train'].items() if k != 'steps'} != \
                {k: v for k, v in train_args.items() if k != 'steps'}:
            fail(f'checkpoint {ckpt} was trained with {state["train"]}, not {train_args}; pass the same options '
                 f'(only --steps may change) or --fresh')
        try:
            model.load_state_dict(state['model'])
            optim.load_state_dict(state['optim'])
        except Exception as e:
            fail(f'checkpoint {ckpt} does not fit the model ({e}); delete it or pass --fresh')
        step, tokens, elapsed = state['step'], state['tokens'], state.get('elapsed', 0.0)
        print(f'resuming {ckpt} at step {step}', file=sys.stderr)

    def checkpoint():
        save_checkpoint(ckpt, {'format': 'moet-tiny-moe-1', 'config': cfg.to_dict(), 'train': train_args,
                               'data': fingerprint, 'step': step, 'tokens': tokens, 'elapsed': elapsed,
                               'model': model.state_dict(), 'optim': optim.state_dict()})

    last_val = None
    if not a.export_only:
        model.train()
        log = open(log_path, 'a')
        t_last = time.time()
        while step < a.steps:
            for g in optim.param_groups:
                g['lr'] = lr_at(step, a)
            x, y = batch(train, np.random.default_rng([a.seed, step]), a.batch, a.seq)
            stats = []
            logits = model(x, stats)
            ce = F.cross_entropy(logits.reshape(-1, cfg.n_vocab), y.reshape(-1))
            bal = sum(s[0] for s in stats) / len(stats)
            (ce + a.aux * bal).backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            optim.zero_grad(set_to_none=True)
            step += 1
            tokens += a.batch * a.seq
            now = time.time()
            elapsed += now - t_last
            t_last = now
            rec = None
            if step % a.log_every == 0 or step == a.steps:
                loads = [max(s[1]) / (sum(s[1]) / len(s[1])) for s in stats]
                rec = {'step': step, 'tokens': tokens, 'elapsed': round(elapsed, 1), 'lr': round(lr_at(step - 1, a), 6),
                       'loss': round(ce.item(), 4), 'balance': round(bal.item(), 4), 'grad_norm': round(gn.item(), 3),
                       'max_over_mean': [round(v, 2) for v in loads]}
            if step % a.eval_every == 0 or step == a.steps:
                last_val = evaluate(model, val, a.seq)
                rec = rec or {'step': step, 'tokens': tokens, 'elapsed': round(elapsed, 1)}
                rec['val'] = {k: round(v, 4) for k, v in last_val.items()}
                t_last = time.time()
            if rec:
                log.write(json.dumps(rec) + '\n')
                log.flush()
                print(json.dumps(rec), file=sys.stderr, flush=True)
            if step % a.ckpt_every == 0 or step == a.steps:
                checkpoint()
        log.close()
    if last_val is None:
        last_val = evaluate(model, val, a.seq)
    d = export(model, a.run, {'train': {**train_args, 'steps_done': step, 'tokens': tokens, 'elapsed_s': round(elapsed),
                                        'val_loss': {k: round(v, 4) for k, v in last_val.items()}},
                              'data': fingerprint, 'vocab': os.path.abspath(os.path.join(a.data, 'tokenizer.json'))})
    print(f'exported {d}', file=sys.stderr)


if __name__ == '__main__':
    main()
