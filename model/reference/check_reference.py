"""Checks our logits against the float64 PyTorch port of DeepSeek's reference model.

  check_reference.py CASE_DIR CASE...

For each CASE, reads CASE_DIR/CASE.json and its safetensors file (written by dump_cases), builds
deepseek_reference.Transformer from the case's ModelArgs, loads the weights through convert.py's
renaming (strict: every reference parameter covered, every tensor used, and the names equal to
our ReferenceName's), and compares, over all positions of every sequence:
  - our f64 logits with the port's: max |ours - port| <= 1e-9 (absolute; the logits are O(1));
  - our f32 logits with the port's: max |ours - port| <= 1e-5 * max |port|;
  - our f64 last-position logits (InferenceForward's last_positions = 1) with the port's
    reference-style forward, which returns the last position only;
and checks the port with itself: its two attention forms ("absorb" and "naive") agree, and its
KV-cached incremental decode of the last two tokens agrees with the whole-sequence forward, to
1e-12. Exits 1 on the first failure, printing what differs.
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_reference as ref  # noqa: E402

F64_ABS = 1e-9
F32_REL = 1e-5
SELF_ABS = 1e-12


def fail(case, what):
    print(f"FAIL {case}: {what}")
    sys.exit(1)


def build(args, tensors, attn_impl):
    model = ref.Transformer(args, attn_impl)
    ref.load_checkpoint(model, tensors)
    return model.eval()


def check_case(case_dir, case):
    with open(os.path.join(case_dir, case + ".json")) as f:
        data = json.load(f)
    args = ref.ModelArgs.from_dict(data["args"])
    tensors = ref.read_safetensors(os.path.join(case_dir, data["weights"]))
    for name, ours in data["reference_names"].items():
        if ref.convert_name(name) != ours:
            fail(case, f"ReferenceName({name}) = {ours}, convert.py says {ref.convert_name(name)}")
    if set(data["reference_names"]) != set(tensors):
        fail(case, "the checkpoint's tensors are not our parameters")

    seq_len = data["seq_len"]
    tokens = torch.tensor(data["tokens"], dtype=torch.long).view(-1, seq_len)
    ours64 = torch.tensor(data["logits_f64"], dtype=torch.float64)
    ours32 = torch.tensor(data["logits_f32"], dtype=torch.float64)
    ours_last = torch.tensor(data["last_logits_f64"], dtype=torch.float64)

    model = build(args, tensors, "absorb")
    port = model(tokens, all_positions=True).reshape(-1, args.vocab_size)
    port_last = model(tokens)  # the reference's own output: the last position only
    naive = build(args, tensors, "naive")(tokens, all_positions=True).reshape(-1, args.vocab_size)

    err64 = (ours64 - port).abs().max().item()
    err32 = (ours32 - port).abs().max().item() / port.abs().max().item()
    err_last = (ours_last - port_last).abs().max().item()
    err_naive = (naive - port).abs().max().item()
    if not err64 <= F64_ABS:
        fail(case, f"f64 logits differ by {err64:.3e} > {F64_ABS}")
    if not err32 <= F32_REL:
        fail(case, f"f32 logits differ by {err32:.3e} of the largest > {F32_REL}")
    if not err_last <= F64_ABS:
        fail(case, f"f64 last-position logits differ by {err_last:.3e} > {F64_ABS}")
    if not err_naive <= SELF_ABS:
        fail(case, f"the port's naive and absorbed attention differ by {err_naive:.3e}")

    # The reference's incremental decode: prefill all but the last two tokens, then one token
    # at a time through the KV caches.
    inc = build(args, tensors, "absorb")
    inc(tokens[:, :seq_len - 2])
    steps = [inc(tokens[:, p:p + 1], start_pos=p) for p in (seq_len - 2, seq_len - 1)]
    full = port.view(tokens.size(0), seq_len, -1)
    err_inc = max((steps[i] - full[:, seq_len - 2 + i]).abs().max().item() for i in range(2))
    if not err_inc <= SELF_ABS:
        fail(case, f"the port's incremental decode differs from its full forward by {err_inc:.3e}")

    print(f"ok {case}: f64 {err64:.2e} (last {err_last:.2e}), f32 {err32:.2e} relative; "
          f"port naive/absorb {err_naive:.2e}, incremental {err_inc:.2e}; "
          f"max |logit| {port.abs().max().item():.2f}")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    torch.manual_seed(0)
    for case in sys.argv[2:]:
        check_case(sys.argv[1], case)


if __name__ == "__main__":
    main()
