#!/usr/bin/python3
"""Times DeepSeek's own DualPipe / DualPipeV (Python, PyTorch) on the CPU, the peer of
//dualpipe:executor_benchmark.

The workload is example_dualpipe.py's: stages of Linear(512 -> 2048, no bias) -> GELU ->
Linear(2048 -> 512, no bias), MSE loss, 20 micro-batches of 3 x 256 tokens, f32. Ranks are
processes on the gloo backend with one intra-op thread and (unless --blas_threads says otherwise)
one OpenBLAS thread each: torch.set_num_threads alone leaves OpenBLAS's own pool at every core.
OpenBLAS's kernels follow OPENBLAS_CORETYPE from the environment, as for the C++ side. DeepSeek's code is imported from a
checkout given with --repo (fetched separately, never committed); it assumes CUDA in two places,
which this script redirects to the CPU without editing their files.

Prints one line per timed step and, last, `step_seconds <median>`.

  /usr/bin/python3 dualpipe/bench/dualpipe_reference.py --repo=/tmp/DualPipe --schedule=dualpipe --steps=3
"""
import argparse
import os
import statistics
import sys
import time


def stage_module(hidden, weight_grad_store):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class SplitLinear(torch.autograd.Function):
        """A bias-free linear layer whose weight gradient can be deferred (zero-bubble W)."""

        @staticmethod
        def forward(ctx, x, weight):
            ctx.save_for_backward(x, weight)
            return F.linear(x, weight)

        @staticmethod
        def backward(ctx, grad_out):
            x, weight = ctx.saved_tensors
            if weight.grad is None:
                weight.grad = torch.zeros_like(weight)

            def weight_grad():
                weight.grad += grad_out.flatten(0, -2).T @ x.flatten(0, -2)

            if weight_grad_store.enabled:
                weight_grad_store.put(weight_grad)
            else:
                weight_grad()
            return grad_out @ weight, None

    class Linear(nn.Linear):
        def forward(self, x):
            return SplitLinear.apply(x, self.weight)

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1 = Linear(hidden, 4 * hidden, bias=False)
            self.linear2 = Linear(4 * hidden, hidden, bias=False)

        def forward(self, x):
            return self.linear2(F.gelu(self.linear1(x)))

    return Stage


def worker(rank, args, results):
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    torch.set_num_threads(1)
    sys.path.insert(0, args.repo)
    import dualpipe
    import dualpipe.comm

    # DeepSeek's code allocates receive buffers on "cuda" and checks the module's device against
    # torch.cuda.current_device(); both become the CPU here.
    def cpu_buffers():
        return [torch.empty(s, dtype=dualpipe.comm.TENSOR_DTYPE, requires_grad=True)
                for s in dualpipe.comm.TENSOR_SHAPES]
    dualpipe.comm.build_from_tensor_shapes = cpu_buffers
    torch.cuda.current_device = lambda: "cpu"

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(args.port)
    dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    torch.manual_seed(233)
    chunks, mbs, seq, hidden = args.microbatches, 3, 256, 512
    dualpipe.set_p2p_tensor_shapes([(mbs, seq, hidden)])
    dualpipe.set_p2p_tensor_dtype(torch.float32)
    Stage = stage_module(hidden, dualpipe.WeightGradStore)

    def criterion(output, target):
        return F.mse_loss(output, target).clone()

    x = torch.randn(chunks * mbs, seq, hidden)
    labels = torch.randn(chunks * mbs, seq, hidden)
    modules = torch.nn.Sequential(Stage(), Stage())
    if args.schedule == "dualpipe":
        model = dualpipe.DualPipe(modules)
        first, last = rank == 0, rank == args.ranks - 1
        inputs = x.chunk(2)[0] if first else x.chunk(2)[1] if last else None
        target = labels.chunk(2)[1] if first else labels.chunk(2)[0] if last else None
    else:
        model = dualpipe.DualPipeV(modules)
        inputs = x if rank == 0 else None
        target = labels if rank == 0 else None

    seconds = []
    for step in range(args.steps + 1):  # the first is a warm-up
        dist.barrier()
        start = time.perf_counter()
        model.step(inputs, num_chunks=chunks, criterion=criterion, labels=(target,))
        dist.barrier()
        if step > 0:
            seconds.append(time.perf_counter() - start)
        model.zero_grad()
    if rank == 0:
        results.put(seconds)
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="checkout of deepseek-ai/DualPipe")
    parser.add_argument("--schedule", choices=["dualpipe", "dualpipev"], default="dualpipe")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--microbatches", type=int, default=20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--port", type=int, default=29517)
    parser.add_argument("--blas_threads", type=int, default=1,
                        help="OpenBLAS threads per rank (torch.set_num_threads does not limit "
                             "them; 1 makes each rank single-threaded, as the C++ side is)")
    args = parser.parse_args()
    # Read by OpenBLAS when it loads in the spawned ranks.
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    os.environ["OMP_NUM_THREADS"] = "1"
    if not os.path.isfile(os.path.join(args.repo, "dualpipe", "dualpipe.py")):
        sys.exit(f"dualpipe_reference: {args.repo} is not a DualPipe checkout")
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(worker, args=(args, results), nprocs=args.ranks, start_method="spawn")
    seconds = results.get()
    for i, s in enumerate(seconds):
        print(f"{i + 1:6d} {s:12.3f}")
    print(f"step_seconds {statistics.median(seconds):.4f}")


if __name__ == "__main__":
    main()
