"""Reference logits of train/model.py for the parity test (tests/train/parity.test.ts): builds a small
qwen3moe with random weights (seeded; norms perturbed away from 1 so that they matter), exports it the
way train.py does, and writes the float64 forward's logits for a token sequence.

usage: python3 train/reference.py --out DIR [--seed S] [--tied] [--tokens N]
writes DIR/export/{manifest.json, weights.f32}, DIR/tokens.json, DIR/logits.f64 ([N, n_vocab])
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, Qwen3Moe  # noqa: E402
from train import export  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--tied', action='store_true')
    ap.add_argument('--tokens', type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(1)
    c = Config(n_vocab=320, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, head_dim=16, n_expert=6, n_expert_used=2,
               n_ff_exp=32, context_length=128, rope_base=10000.0, rms_eps=1e-6, tied=a.tied)
    m = Qwen3Moe(c)
    g = torch.Generator().manual_seed(a.seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=g))
    os.makedirs(a.out, exist_ok=True)
    export(m, a.out, {})
    ids = torch.randint(0, c.n_vocab, (1, a.tokens), generator=g)
    with torch.no_grad():
        logits = m.double()(ids)[0]
    with open(os.path.join(a.out, 'tokens.json'), 'w') as f:
        json.dump(ids[0].tolist(), f)
    logits.contiguous().numpy().astype('<f8').tofile(os.path.join(a.out, 'logits.f64'))


if __name__ == '__main__':
    main()
