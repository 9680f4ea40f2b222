"""Trains the model of a training config with PyTorch: the baseline of train_vs_pytorch.sh.

The model is model/reference/deepseek_reference.py's port of DeepSeek-V3's reference model, built
in float32 from the config's model (the same shapes as our trainer's), trained with autograd and
torch.optim.AdamW on the same global batch (micro-batches x sequences x EP x DP sequences of
seq_len tokens per step) with the config's optimizer settings. The reference's forward is for
inference (KV caches written in place, torch.inference_mode), so training runs the port's modules
through the same arithmetic without the caches: MLA as the port's "naive" path (whole sequences,
causal mask), the gate as Gate.forward written without its in-place updates, MoE.forward and
the MLPs as they are. The sequence-wise balance loss and the bias update of our trainer are left
out (a few hundred FLOPs per token). Tokens are random ids, a fresh batch each step: the FLOPs of a
step do not depend on the text.

Prints one JSON line: {"tokens_per_second": median over the timed steps, "step_seconds": [...],
"loss": [...], "threads": N}.

  /usr/bin/python3 training/bench/pytorch_train.py --config=training/configs/tiny_cpu.textproto \
      --steps=20 --threads=2
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "model", "reference"))
import deepseek_reference as ref  # noqa: E402


def parse_textproto(text):
    """A text-format message as nested dicts (scalars, strings, messages, [lists]): enough for
    our configs. Repeated scalar fields keep their last value."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^\s{}\[\],:]+',
                        re.sub(r"#[^\n]*", "", text))
    pos = 0

    def value(tok):
        if tok.startswith('"'):
            return tok[1:-1]
        if tok in ("true", "false"):
            return tok == "true"
        try:
            return int(tok)
        except ValueError:
            try:
                return float(tok)
            except ValueError:
                return tok

    def message(end):
        nonlocal pos
        out = {}
        while pos < len(tokens) and tokens[pos] != end:
            name = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                out[name] = message("}")
                pos += 1
            elif tokens[pos] == "[":
                pos += 1
                items = []
                while tokens[pos] != "]":
                    if tokens[pos] != ",":
                        items.append(value(tokens[pos]))
                    pos += 1
                pos += 1
                out[name] = items
            else:
                out[name] = value(tokens[pos])
                pos += 1
        return out

    return message(None)


def model_args(model):
    mla = model.get("mla", {})
    moe = model.get("moe", {})
    if not mla:
        raise SystemExit("pytorch_train.py: the port implements MLA only; the config has no mla")
    return ref.ModelArgs(
        max_batch_size=1, max_seq_len=model["max_seq_len"], vocab_size=model["vocab_size"],
        dim=model["hidden_size"], inter_dim=model["intermediate_size"],
        moe_inter_dim=moe.get("expert_intermediate_size", 1), n_layers=model["num_layers"],
        n_dense_layers=model.get("first_k_dense_layers", 0), n_heads=model["num_heads"],
        n_routed_experts=moe.get("num_routed_experts", 1),
        n_shared_experts=moe.get("num_shared_experts", 0),
        n_activated_experts=moe.get("top_k", 1), n_expert_groups=moe.get("num_groups", 1),
        n_limited_groups=moe.get("topk_groups", 1), score_func=moe.get("score_func", "sigmoid"),
        route_scale=moe.get("route_scale", 1.0), q_lora_rank=mla.get("q_lora_rank", 0),
        kv_lora_rank=mla["kv_lora_rank"], qk_nope_head_dim=mla["qk_nope_head_dim"],
        qk_rope_head_dim=mla["qk_rope_head_dim"], v_head_dim=mla["v_head_dim"],
        original_seq_len=model.get("original_seq_len", 4096),
        rope_theta=model.get("rope_theta", 10000.0), rope_factor=model.get("rope_factor", 40),
        beta_fast=model.get("beta_fast", 32), beta_slow=model.get("beta_slow", 1),
        mscale=model.get("mscale", 1.0), gate_bias=moe.get("gate_bias"),
        rms_norm_eps=model.get("rms_norm_eps", 1e-6))


def mla_forward(attn, x, freqs_cis, mask):
    """MLA.forward's naive path for whole sequences, without the KV cache."""
    bsz, seqlen, _ = x.size()
    q = attn.wq(x) if attn.q_lora_rank == 0 else attn.wq_b(attn.q_norm(attn.wq_a(x)))
    q = q.view(bsz, seqlen, attn.n_heads, attn.qk_head_dim)
    q_nope, q_pe = torch.split(q, [attn.qk_nope_head_dim, attn.qk_rope_head_dim], dim=-1)
    q_pe = ref.apply_rotary_emb(q_pe, freqs_cis)
    kv, k_pe = torch.split(attn.wkv_a(x), [attn.kv_lora_rank, attn.qk_rope_head_dim], dim=-1)
    k_pe = ref.apply_rotary_emb(k_pe.unsqueeze(2), freqs_cis)
    q = torch.cat([q_nope, q_pe], dim=-1)
    kv = attn.wkv_b(attn.kv_norm(kv)).view(bsz, seqlen, attn.n_heads,
                                           attn.qk_nope_head_dim + attn.v_head_dim)
    k_nope, v = torch.split(kv, [attn.qk_nope_head_dim, attn.v_head_dim], dim=-1)
    k = torch.cat([k_nope, k_pe.expand(-1, -1, attn.n_heads, -1)], dim=-1)
    scores = torch.einsum("bshd,bthd->bsht", q, k) * attn.softmax_scale + mask.unsqueeze(1)
    x = torch.einsum("bsht,bthd->bshd", scores.softmax(dim=-1), v)
    return attn.wo(x.flatten(2))


def gate_forward(gate, x):
    """Gate.forward without in-place updates (autograd needs the originals)."""
    scores = ref.linear(x, gate.weight)
    scores = scores.softmax(dim=-1) if gate.score_func == "softmax" else scores.sigmoid()
    original_scores = scores
    if gate.bias is not None:
        scores = scores + gate.bias
    if gate.n_groups > 1:
        scores = scores.view(x.size(0), gate.n_groups, -1)
        if gate.bias is None:
            group_scores = scores.amax(dim=-1)
        else:
            group_scores = scores.topk(2, dim=-1)[0].sum(dim=-1)
        indices = group_scores.topk(gate.topk_groups, dim=-1)[1]
        mask = scores.new_ones(x.size(0), gate.n_groups, dtype=bool).scatter_(1, indices, False)
        scores = scores.masked_fill(mask.unsqueeze(-1), float("-inf")).flatten(1)
    indices = torch.topk(scores, gate.topk, dim=-1)[1]
    weights = original_scores.gather(1, indices)
    if gate.score_func == "sigmoid":
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights * gate.route_scale, indices


def moe_forward(moe, x):
    """MoE.forward with gate_forward."""
    shape = x.size()
    x = x.view(-1, moe.dim)
    weights, indices = gate_forward(moe.gate, x)
    y = torch.zeros_like(x)
    counts = torch.bincount(indices.flatten(), minlength=moe.n_routed_experts).tolist()
    for i in range(moe.n_routed_experts):
        if counts[i] == 0:
            continue
        idx, top = torch.where(indices == i)
        y = y.index_add(0, idx, moe.experts[i](x[idx]) * weights[idx, top, None])
    z = moe.shared_experts(x) if moe.shared_experts is not None else 0
    return (y + z).view(shape)


def forward(model, tokens):
    """Transformer.forward for training: logits [batch, seqlen, vocab] of every position."""
    seqlen = tokens.size(1)
    h = model.embed(tokens)
    freqs_cis = model.freqs_cis[:seqlen]
    mask = torch.full((seqlen, seqlen), float("-inf"), dtype=h.dtype).triu_(1)
    for layer in model.layers:
        h = h + mla_forward(layer.attn, layer.attn_norm(h), freqs_cis, mask)
        x = layer.ffn_norm(h)
        h = h + (moe_forward(layer.ffn, x) if isinstance(layer.ffn, ref.MoE) else layer.ffn(x))
    return model.head(model.norm(h))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(args.config) as f:
        config = parse_textproto(f.read())
    model_config = config.get("model")
    if model_config is None:
        with open(config["model_config"]) as f:
            model_config = parse_textproto(f.read())
    parallel, data, opt = config["parallel"], config["data"], config["optimizer"]
    batch = (parallel["microbatches"] * parallel["sequences_per_microbatch"] *
             parallel.get("ep", 1) * parallel.get("dp", 1))
    seq_len = data["seq_len"]

    ref.DTYPE = torch.float32  # the port's modules take their dtype from here
    model = ref.Transformer(model_args(model_config), attn_impl="naive")
    std = model_config.get("init_std", 0.02)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name.endswith("gate.bias"):
            torch.nn.init.zeros_(p)
            p.requires_grad_(False)  # the selection bias follows the bias rule, not gradients
        elif "norm" in name:
            torch.nn.init.ones_(p)
            no_decay.append(p)
        else:
            torch.nn.init.normal_(p, 0.0, std)
            decay.append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": opt.get("weight_decay", 0.0)},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=opt["lr"], betas=(opt.get("beta1", 0.9), opt.get("beta2", 0.999)),
        eps=opt.get("eps", 1e-8))
    clip = opt.get("clip_grad_norm", 0.0)
    vocab = model_config["vocab_size"]

    seconds, losses = [], []
    for step in range(args.warmup + args.steps):
        rows = torch.randint(0, vocab, (batch, seq_len + 1))
        start = time.perf_counter()
        logits = forward(model, rows[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(decay + no_decay, clip)
        optimizer.step()
        elapsed = time.perf_counter() - start
        if step >= args.warmup:
            seconds.append(elapsed)
        losses.append(loss.item())
    tokens = batch * seq_len
    print(json.dumps({"tokens_per_second": tokens / statistics.median(seconds),
                      "tokens_per_step": tokens, "step_seconds": seconds, "loss": losses,
                      "threads": args.threads}))


if __name__ == "__main__":
    main()
