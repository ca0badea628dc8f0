"""qwen3moe in PyTorch, in exactly the parameterization moet and llama.cpp run
(shared/docs/qwen3moe.md; src/cpu/qwen3moe.ts):

  x = token_embd[id]
  per layer:  h = RMSNorm(x) * attn_norm
              q, k, v = Wq h, Wk h, Wv h            (GQA: n_head query heads, n_head_kv K/V heads)
              q, k = RMSNorm per head * q_norm / k_norm, then NEOX RoPE (i pairs with i + head_dim/2)
              x += Wo · softmax(q k^T / sqrt(head_dim), causal) v
              h = RMSNorm(x) * ffn_norm
              P = softmax(W_gate_inp h); S = top-k of P; w = P_S / max(sum P_S, 6.1035e-5)
              x += sum_{e in S} w_e · W_down[e] (silu(W_gate[e] h) * W_up[e] h)
  logits = W_output (RMSNorm(x) * output_norm)      (W_output = token_embd when tied)

Parameter layouts are [out, in] (torch's Linear), which is ggml's [in, out] with ne0 = in: the raw
bytes go to the GGUF unchanged. Expert tensors are [n_expert, out, in] = ggml [in, out, n_expert].
"""
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# llama.cpp's clamp of the renormalization denominator (build_moe_ffn)
RENORM_MIN = 6.103515625e-5


@dataclass
class Config:
    n_vocab: int = 4096
    n_embd: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 64
    n_expert: int = 8
    n_expert_used: int = 2
    n_ff_exp: int = 256
    context_length: int = 512
    rope_base: float = 10000.0
    rms_eps: float = 1e-6
    tied: bool = False

    def to_dict(self):
        return asdict(self)


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope_neox(x, pos, base):
    """x: [B, H, T, D]; pos: [T]. Element i pairs with i + D/2, angle pos * base^(-2i/D)."""
    d = x.shape[-1]
    half = d // 2
    inv = base ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / d)
    ang = pos.to(torch.float64)[:, None] * inv[None, :]
    cos = torch.cos(ang).to(x.dtype)
    sin = torch.sin(ang).to(x.dtype)
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        d, hd = c.n_embd, c.head_dim
        self.attn_norm = nn.Parameter(torch.ones(d))
        self.wq = nn.Parameter(torch.empty(c.n_head * hd, d))
        self.wk = nn.Parameter(torch.empty(c.n_head_kv * hd, d))
        self.wv = nn.Parameter(torch.empty(c.n_head_kv * hd, d))
        self.wo = nn.Parameter(torch.empty(d, c.n_head * hd))
        self.q_norm = nn.Parameter(torch.ones(hd))
        self.k_norm = nn.Parameter(torch.ones(hd))
        self.ffn_norm = nn.Parameter(torch.ones(d))
        self.router = nn.Parameter(torch.empty(c.n_expert, d))
        self.gate = nn.Parameter(torch.empty(c.n_expert, c.n_ff_exp, d))
        self.up = nn.Parameter(torch.empty(c.n_expert, c.n_ff_exp, d))
        self.down = nn.Parameter(torch.empty(c.n_expert, d, c.n_ff_exp))

    def attention(self, x, pos):
        c = self.c
        B, T, _ = x.shape
        h = rms_norm(x, self.attn_norm, c.rms_eps)
        q = (h @ self.wq.t()).view(B, T, c.n_head, c.head_dim)
        k = (h @ self.wk.t()).view(B, T, c.n_head_kv, c.head_dim)
        v = (h @ self.wv.t()).view(B, T, c.n_head_kv, c.head_dim)
        q = rms_norm(q, self.q_norm, c.rms_eps).transpose(1, 2)
        k = rms_norm(k, self.k_norm, c.rms_eps).transpose(1, 2)
        v = v.transpose(1, 2)
        q = rope_neox(q, pos, c.rope_base)
        k = rope_neox(k, pos, c.rope_base)
        rep = c.n_head // c.n_head_kv  # query head h reads K/V head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(c.head_dim)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float('-inf'))
        o = torch.softmax(s, dim=-1) @ v
        o = o.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim)
        return o @ self.wo.t()

    def moe(self, x, stats):
        c = self.c
        B, T, d = x.shape
        h = rms_norm(x, self.ffn_norm, c.rms_eps).reshape(B * T, d)
        probs = torch.softmax(h @ self.router.t(), dim=-1)  # [N, E]
        topw, topi = torch.topk(probs, c.n_expert_used, dim=-1)  # descending
        topw = topw / topw.sum(-1, keepdim=True).clamp_min(RENORM_MIN)
        out = torch.zeros_like(h)
        flat_e = topi.reshape(-1)
        flat_t = torch.arange(B * T).repeat_interleave(c.n_expert_used)
        flat_w = topw.reshape(-1)
        order = torch.argsort(flat_e, stable=True)
        counts = torch.bincount(flat_e, minlength=c.n_expert).tolist()
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            sel = order[start:start + n]
            start += n
            tok = flat_t[sel]
            xe = h[tok]
            ye = (F.silu(xe @ self.gate[e].t()) * (xe @ self.up[e].t())) @ self.down[e].t()
            out.index_add_(0, tok, ye * flat_w[sel, None])
        if stats is not None:
            # Switch Transformer's balance loss: E * sum_e f_e * mean P_e, with f_e the share of the
            # N*k assignments that went to expert e (1 when balanced)
            f = torch.bincount(flat_e, minlength=c.n_expert).to(x.dtype) / flat_e.numel()
            stats.append((c.n_expert * (f * probs.mean(0)).sum(), counts))
        return out.view(B, T, d)

    def forward(self, x, pos, stats=None):
        x = x + self.attention(x, pos)
        return x + self.moe(x, stats)


class Qwen3Moe(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.c = c
        self.tok_embd = nn.Parameter(torch.empty(c.n_vocab, c.n_embd))
        self.blocks = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.output_norm = nn.Parameter(torch.ones(c.n_embd))
        self.output = None if c.tied else nn.Parameter(torch.empty(c.n_vocab, c.n_embd))
        self.reset_parameters()

    def reset_parameters(self, seed=None):
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        c = self.c
        std = 0.02
        resid = std / math.sqrt(2 * c.n_layer)
        with torch.no_grad():
            self.tok_embd.normal_(0, std, generator=g)
            if self.output is not None:
                self.output.normal_(0, std, generator=g)
            for b in self.blocks:
                for p in (b.wq, b.wk, b.wv, b.router, b.gate, b.up):
                    p.normal_(0, std, generator=g)
                for p in (b.wo, b.down):
                    p.normal_(0, resid, generator=g)

    def lm_head(self):
        return self.tok_embd if self.output is None else self.output

    def forward(self, ids, stats=None):
        """ids: [B, T] → logits [B, T, V]; `stats` (a list) collects each layer's (balance loss, counts)."""
        T = ids.shape[1]
        pos = torch.arange(T)
        x = self.tok_embd[ids]
        for b in self.blocks:
            x = b(x, pos, stats)
        return rms_norm(x, self.output_norm, self.c.rms_eps) @ self.lm_head().t()

    def gguf_tensors(self):
        """(name, tensor) in llama.cpp's names; each tensor's torch layout is the GGUF's reversed shape."""
        out = [('token_embd.weight', self.tok_embd)]
        for i, b in enumerate(self.blocks):
            p = f'blk.{i}.'
            out += [
                (p + 'attn_norm.weight', b.attn_norm),
                (p + 'attn_q.weight', b.wq),
                (p + 'attn_k.weight', b.wk),
                (p + 'attn_v.weight', b.wv),
                (p + 'attn_output.weight', b.wo),
                (p + 'attn_q_norm.weight', b.q_norm),
                (p + 'attn_k_norm.weight', b.k_norm),
                (p + 'ffn_norm.weight', b.ffn_norm),
                (p + 'ffn_gate_inp.weight', b.router),
                (p + 'ffn_gate_exps.weight', b.gate),
                (p + 'ffn_up_exps.weight', b.up),
                (p + 'ffn_down_exps.weight', b.down),
            ]
        out.append(('output_norm.weight', self.output_norm))
        if self.output is not None:
            out.append(('output.weight', self.output))
        return out
