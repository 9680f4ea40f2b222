"""A float64 PyTorch port of DeepSeek-V3's reference model, for checking ours against it.

Written from the definitions in deepseek-ai/DeepSeek-V3's inference/model.py (ModelArgs,
precompute_freqs_cis, apply_rotary_emb, MLA, MLP, Gate, Expert, MoE, Block, Transformer) and the
renaming of inference/convert.py, for one process (world_size 1) and in float64 throughout: the
reference's bf16/fp8 storage, its float32 softmaxes and its float32 RoPE tables become float64,
so the port is the reference's arithmetic at float64 precision. Otherwise it follows the
reference step by step, including both of its attention forms ("naive": keys and values cached
per head; "absorb": wkv_b folded into the query and output, the compressed latent cached) and
its KV caches, so the incremental (start_pos > 0) forward works as the reference's does.

Where the reference fixes something that our config states, the port takes it from ModelArgs:
  gate_bias     the reference gives the gate its bias exactly when dim == 7168 (None: that rule)
  rms_norm_eps  the reference's RMSNorm always uses its default 1e-6
and with n_shared_experts == 0 it builds no shared experts (the reference would build an MLP of
width 0, which adds zeros). Transformer.forward returns the logits of every position
(all_positions=True) or, as the reference, of the last one.

Runs with Debian's python3-torch (1.13: no F.rms_norm, so RMSNorm is written out).
"""

import json
import math
import struct
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DTYPE = torch.float64


@dataclass
class ModelArgs:
    max_batch_size: int = 8
    max_seq_len: int = 4096 * 4
    vocab_size: int = 102400
    dim: int = 2048
    inter_dim: int = 10944
    moe_inter_dim: int = 1408
    n_layers: int = 27
    n_dense_layers: int = 1
    n_heads: int = 16
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    n_activated_experts: int = 6
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: str = "softmax"
    route_scale: float = 1.0
    q_lora_rank: int = 0
    kv_lora_rank: int = 512
    qk_nope_head_dim: int = 128
    qk_rope_head_dim: int = 64
    v_head_dim: int = 128
    original_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_factor: float = 40
    beta_fast: int = 32
    beta_slow: int = 1
    mscale: float = 1.0
    gate_bias: Optional[bool] = None
    rms_norm_eps: float = 1e-6

    @staticmethod
    def from_dict(d):
        names = {f.name for f in fields(ModelArgs)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelArgs fields {sorted(unknown)}")
        return ModelArgs(**d)


def linear(x, weight, bias=None):
    return F.linear(x, weight, bias)


class Linear(nn.Module):
    def __init__(self, in_features, out_features, bias=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=DTYPE))
        self.bias = nn.Parameter(torch.empty(out_features, dtype=DTYPE)) if bias else None

    def forward(self, x):
        return linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, dtype=DTYPE))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def precompute_freqs_cis(args):
    dim = args.qk_rope_head_dim
    seqlen = args.max_seq_len
    beta_fast = args.beta_fast
    beta_slow = args.beta_slow
    base = args.rope_theta
    factor = args.rope_factor

    def find_correction_dim(num_rotations, dim, base, max_seq_len):
        return dim * math.log(max_seq_len / (num_rotations * 2 * math.pi)) / (2 * math.log(base))

    def find_correction_range(low_rot, high_rot, dim, base, max_seq_len):
        low = math.floor(find_correction_dim(low_rot, dim, base, max_seq_len))
        high = math.ceil(find_correction_dim(high_rot, dim, base, max_seq_len))
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(min, max, dim):
        if min == max:
            max += 0.001
        linear_func = (torch.arange(dim, dtype=DTYPE) - min) / (max - min)
        return torch.clamp(linear_func, 0, 1)

    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=DTYPE) / dim))
    if seqlen > args.original_seq_len:
        low, high = find_correction_range(beta_fast, beta_slow, dim, base, args.original_seq_len)
        smooth = 1 - linear_ramp_factor(low, high, dim // 2)
        freqs = freqs / factor * (1 - smooth) + freqs * smooth
    t = torch.arange(seqlen, dtype=DTYPE)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def apply_rotary_emb(x, freqs_cis):
    x = torch.view_as_complex(x.contiguous().view(*x.shape[:-1], -1, 2))
    freqs_cis = freqs_cis.view(1, x.size(1), 1, x.size(-1))
    return torch.view_as_real(x * freqs_cis).flatten(3)


class MLA(nn.Module):
    def __init__(self, args, attn_impl):
        super().__init__()
        self.attn_impl = attn_impl
        self.dim = args.dim
        self.n_heads = args.n_heads
        self.q_lora_rank = args.q_lora_rank
        self.kv_lora_rank = args.kv_lora_rank
        self.qk_nope_head_dim = args.qk_nope_head_dim
        self.qk_rope_head_dim = args.qk_rope_head_dim
        self.qk_head_dim = args.qk_nope_head_dim + args.qk_rope_head_dim
        self.v_head_dim = args.v_head_dim
        eps = args.rms_norm_eps
        if self.q_lora_rank == 0:
            self.wq = Linear(self.dim, self.n_heads * self.qk_head_dim)
        else:
            self.wq_a = Linear(self.dim, self.q_lora_rank)
            self.q_norm = RMSNorm(self.q_lora_rank, eps)
            self.wq_b = Linear(self.q_lora_rank, self.n_heads * self.qk_head_dim)
        self.wkv_a = Linear(self.dim, self.kv_lora_rank + self.qk_rope_head_dim)
        self.kv_norm = RMSNorm(self.kv_lora_rank, eps)
        self.wkv_b = Linear(self.kv_lora_rank,
                            self.n_heads * (self.qk_nope_head_dim + self.v_head_dim))
        self.wo = Linear(self.n_heads * self.v_head_dim, self.dim)
        self.softmax_scale = self.qk_head_dim ** -0.5
        if args.max_seq_len > args.original_seq_len:
            mscale = 0.1 * args.mscale * math.log(args.rope_factor) + 1.0
            self.softmax_scale = self.softmax_scale * mscale * mscale
        b, s = args.max_batch_size, args.max_seq_len
        if attn_impl == "naive":
            self.register_buffer("k_cache", torch.zeros(b, s, self.n_heads, self.qk_head_dim,
                                                        dtype=DTYPE), persistent=False)
            self.register_buffer("v_cache", torch.zeros(b, s, self.n_heads, self.v_head_dim,
                                                        dtype=DTYPE), persistent=False)
        else:
            self.register_buffer("kv_cache", torch.zeros(b, s, self.kv_lora_rank, dtype=DTYPE),
                                 persistent=False)
            self.register_buffer("pe_cache", torch.zeros(b, s, self.qk_rope_head_dim, dtype=DTYPE),
                                 persistent=False)

    def forward(self, x, start_pos, freqs_cis, mask):
        bsz, seqlen, _ = x.size()
        end_pos = start_pos + seqlen
        if self.q_lora_rank == 0:
            q = self.wq(x)
        else:
            q = self.wq_b(self.q_norm(self.wq_a(x)))
        q = q.view(bsz, seqlen, self.n_heads, self.qk_head_dim)
        q_nope, q_pe = torch.split(q, [self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        q_pe = apply_rotary_emb(q_pe, freqs_cis)
        kv = self.wkv_a(x)
        kv, k_pe = torch.split(kv, [self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        k_pe = apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis)
        if self.attn_impl == "naive":
            q = torch.cat([q_nope, q_pe], dim=-1)
            kv = self.wkv_b(self.kv_norm(kv))
            kv = kv.view(bsz, seqlen, self.n_heads, self.qk_nope_head_dim + self.v_head_dim)
            k_nope, v = torch.split(kv, [self.qk_nope_head_dim, self.v_head_dim], dim=-1)
            k = torch.cat([k_nope, k_pe.expand(-1, -1, self.n_heads, -1)], dim=-1)
            self.k_cache[:bsz, start_pos:end_pos] = k
            self.v_cache[:bsz, start_pos:end_pos] = v
            scores = torch.einsum("bshd,bthd->bsht", q,
                                  self.k_cache[:bsz, :end_pos]) * self.softmax_scale
        else:
            wkv_b = self.wkv_b.weight.view(self.n_heads, -1, self.kv_lora_rank)
            q_nope = torch.einsum("bshd,hdc->bshc", q_nope, wkv_b[:, :self.qk_nope_head_dim])
            self.kv_cache[:bsz, start_pos:end_pos] = self.kv_norm(kv)
            self.pe_cache[:bsz, start_pos:end_pos] = k_pe.squeeze(2)
            scores = (torch.einsum("bshc,btc->bsht", q_nope, self.kv_cache[:bsz, :end_pos]) +
                      torch.einsum("bshr,btr->bsht", q_pe, self.pe_cache[:bsz, :end_pos])
                      ) * self.softmax_scale
        if mask is not None:
            scores += mask.unsqueeze(1)
        scores = scores.softmax(dim=-1)
        if self.attn_impl == "naive":
            x = torch.einsum("bsht,bthd->bshd", scores, self.v_cache[:bsz, :end_pos])
        else:
            x = torch.einsum("bsht,btc->bshc", scores, self.kv_cache[:bsz, :end_pos])
            x = torch.einsum("bshc,hdc->bshd", x, wkv_b[:, -self.v_head_dim:])
        return self.wo(x.flatten(2))


class MLP(nn.Module):
    def __init__(self, dim, inter_dim):
        super().__init__()
        self.w1 = Linear(dim, inter_dim)
        self.w2 = Linear(inter_dim, dim)
        self.w3 = Linear(dim, inter_dim)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


Expert = MLP  # the reference's Expert is the same SwiGLU MLP


class Gate(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.dim = args.dim
        self.topk = args.n_activated_experts
        self.n_groups = args.n_expert_groups
        self.topk_groups = args.n_limited_groups
        self.score_func = args.score_func
        self.route_scale = args.route_scale
        self.weight = nn.Parameter(torch.empty(args.n_routed_experts, args.dim, dtype=DTYPE))
        has_bias = self.dim == 7168 if args.gate_bias is None else args.gate_bias
        self.bias = (nn.Parameter(torch.empty(args.n_routed_experts, dtype=DTYPE))
                     if has_bias else None)

    def forward(self, x):
        scores = linear(x, self.weight)
        if self.score_func == "softmax":
            scores = scores.softmax(dim=-1)
        else:
            scores = scores.sigmoid()
        original_scores = scores
        if self.bias is not None:
            scores = scores + self.bias
        if self.n_groups > 1:
            scores = scores.view(x.size(0), self.n_groups, -1)
            if self.bias is None:
                group_scores = scores.amax(dim=-1)
            else:
                group_scores = scores.topk(2, dim=-1)[0].sum(dim=-1)
            indices = group_scores.topk(self.topk_groups, dim=-1)[1]
            mask = scores.new_ones(x.size(0), self.n_groups, dtype=bool).scatter_(1, indices, False)
            scores = scores.masked_fill_(mask.unsqueeze(-1), float("-inf")).flatten(1)
        indices = torch.topk(scores, self.topk, dim=-1)[1]
        weights = original_scores.gather(1, indices)
        if self.score_func == "sigmoid":
            weights /= weights.sum(dim=-1, keepdim=True)
        weights *= self.route_scale
        return weights, indices


class MoE(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.dim = args.dim
        self.n_routed_experts = args.n_routed_experts
        self.gate = Gate(args)
        self.experts = nn.ModuleList([Expert(args.dim, args.moe_inter_dim)
                                      for _ in range(self.n_routed_experts)])
        self.shared_experts = (MLP(args.dim, args.n_shared_experts * args.moe_inter_dim)
                               if args.n_shared_experts > 0 else None)

    def forward(self, x):
        shape = x.size()
        x = x.view(-1, self.dim)
        weights, indices = self.gate(x)
        y = torch.zeros_like(x)
        counts = torch.bincount(indices.flatten(), minlength=self.n_routed_experts).tolist()
        for i in range(self.n_routed_experts):
            if counts[i] == 0:
                continue
            idx, top = torch.where(indices == i)
            y[idx] += self.experts[i](x[idx]) * weights[idx, top, None]
        z = self.shared_experts(x) if self.shared_experts is not None else 0
        return (y + z).view(shape)


class Block(nn.Module):
    def __init__(self, layer_id, args, attn_impl):
        super().__init__()
        self.attn = MLA(args, attn_impl)
        self.ffn = MLP(args.dim, args.inter_dim) if layer_id < args.n_dense_layers else MoE(args)
        self.attn_norm = RMSNorm(args.dim, args.rms_norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.rms_norm_eps)

    def forward(self, x, start_pos, freqs_cis, mask):
        x = x + self.attn(self.attn_norm(x), start_pos, freqs_cis, mask)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, args, attn_impl="absorb"):
        super().__init__()
        self.max_seq_len = args.max_seq_len
        self.embed = nn.Embedding(args.vocab_size, args.dim, dtype=DTYPE)
        self.layers = nn.ModuleList([Block(i, args, attn_impl) for i in range(args.n_layers)])
        self.norm = RMSNorm(args.dim, args.rms_norm_eps)
        self.head = Linear(args.dim, args.vocab_size)
        self.register_buffer("freqs_cis", precompute_freqs_cis(args), persistent=False)

    @torch.inference_mode()
    def forward(self, tokens, start_pos=0, all_positions=False):
        """tokens [batch, seqlen] -> logits [batch, vocab] of the last position (as the
        reference), or [batch, seqlen, vocab] of every position."""
        seqlen = tokens.size(1)
        h = self.embed(tokens)
        freqs_cis = self.freqs_cis[start_pos:start_pos + seqlen]
        mask = None
        if seqlen > 1:
            mask = torch.full((seqlen, seqlen), float("-inf"), dtype=DTYPE).triu_(1)
        for layer in self.layers:
            h = layer(h, start_pos, freqs_cis, mask)
        h = self.norm(h)
        return self.head(h if all_positions else h[:, -1])


# inference/convert.py's renaming of Hugging Face checkpoint names to the reference's.
CONVERT_MAPPING = {
    "embed_tokens": "embed", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm", "q_proj": "wq", "q_a_proj": "wq_a",
    "q_a_layernorm": "q_norm", "q_b_proj": "wq_b", "kv_a_proj_with_mqa": "wkv_a",
    "kv_a_layernorm": "kv_norm", "kv_b_proj": "wkv_b", "o_proj": "wo", "gate": "gate",
    "gate_proj": "w1", "down_proj": "w2", "up_proj": "w3", "norm": "norm", "lm_head": "head",
    "scale": "scale",
}


def convert_name(name):
    """A checkpoint name as convert.py renames it."""
    if name.startswith("model."):
        name = name[len("model."):]
    name = name.replace("self_attn", "attn")
    name = name.replace("mlp", "ffn")
    name = name.replace("weight_scale_inv", "scale")
    name = name.replace("e_score_correction_bias", "bias")
    key = name.split(".")[-2]
    assert key in CONVERT_MAPPING, f"Key {key} not found in mapping"
    return name.replace(key, CONVERT_MAPPING[key])


_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """{name: float64 tensor} of a safetensors file (F64, F32 or BF16 tensors)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_size])
    start = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[start + begin:start + end]
        if entry["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_NUMPY_DTYPES[entry["dtype"]])
        tensors[name] = torch.from_numpy(array.astype(np.float64).reshape(entry["shape"]))
    return tensors


def load_checkpoint(model, tensors):
    """Loads checkpoint-named tensors into the port through convert.py's renaming; every
    parameter must be covered and every tensor used (load_state_dict(strict=True))."""
    state = {convert_name(name): value for name, value in tensors.items()}
    model.load_state_dict(state, strict=True)
