#!/usr/bin/env python3
"""Google Benchmark's JSON for benchmarks that are not Google Benchmark binaries.

tools/bench.sh runs every registered benchmark with Google Benchmark's flags and reads the JSON it
prints on stdout. A benchmark written in something else (an executor step driven by a script, a
server load run, a peer such as DeepSeek's Python EPLB or the JS tokenizer) prints the same shape
with this module; the shape is written out in docs/benchmarks.md, "Result files".

As a library (python3, standard library only):

    import sys; sys.path.insert(0, "tools/bench"); import gbench_json
    b = gbench_json.Benchmarks(sys.argv[1:])        # takes --benchmark_* flags, rejects others
    b.measure("rebalance/4x32", lambda: rebalance(loads), time_unit="ms")  # times a callable
    b.add("server/decode", real_s=[0.91, 0.88], cpu_s=[0.42, 0.40],        # or adds timings
          counters={"tokens/s": [1100.0, 1135.0]}, time_unit="s")
    b.write()                                       # JSON on stdout (or to --benchmark_out)

As a command, timing a whole process per repetition (wall and the children's CPU time), or
taking the seconds the process prints itself (--seconds_from: a regex, group 1 the seconds):

    tools/bench/gbench_json.py --name=eplb_py/4x32 [--benchmark_repetitions=9] -- python3 x.py
    tools/bench/gbench_json.py --name=executor/dualpipe --seconds_from='step_seconds (\\S+)' \\
        -- bazel-bin/dualpipe/executor_benchmark --steps=5

--benchmark_* flags after the command are taken as its own, so a registry line can run a binary
that is not a Google Benchmark through it: launcher="tools/bench/gbench_json.py --name=N --".
--benchmark_min_warmup_time=0 there drops the warm-up run (for a registry line's smoke=).

Honoured flags: --benchmark_format=json (the only format), --benchmark_repetitions=N (default 1),
--benchmark_min_time=S (measure() repeats the callable until S seconds per repetition; default
0.5), --benchmark_filter=REGEX (a leading '-' negates), --benchmark_out=FILE.
"""

import datetime
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

UNITS = {"ns": 1e9, "us": 1e6, "ms": 1e3, "s": 1.0}
STANDARD = {"name", "family_index", "per_family_instance_index", "run_name", "run_type",
            "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
            "time_unit", "aggregate_name", "aggregate_unit", "label", "error_occurred",
            "error_message", "entry", "round"}


def counters_of(row):
    """A row's user counters: its numeric fields beyond Google Benchmark's own."""
    return {k: v for k, v in row.items()
            if k not in STANDARD and isinstance(v, (int, float)) and not isinstance(v, bool)}


def with_aggregates(rows):
    """`rows` (iteration rows) followed, per run_name, by mean, median, stddev and cv rows
    computed over all of that run_name's repetitions, as Google Benchmark writes them."""
    groups = {}
    for row in rows:
        if row.get("run_type", "iteration") == "iteration":
            groups.setdefault(row.get("run_name", row["name"]), []).append(row)
    out = []
    for run_name, group in groups.items():
        out.extend(group)
        if len(group) < 2:
            continue
        first = group[0]
        fields = ["real_time", "cpu_time", *counters_of(first)]
        values = {f: [float(r.get(f, 0.0)) for r in group] for f in fields}
        stats = {
            "mean": {f: statistics.fmean(v) for f, v in values.items()},
            "median": {f: statistics.median(v) for f, v in values.items()},
            "stddev": {f: statistics.stdev(v) for f, v in values.items()},
        }
        stats["cv"] = {f: (stats["stddev"][f] / stats["mean"][f] if stats["mean"][f] else 0.0)
                       for f in fields}
        for agg, vals in stats.items():
            row = {k: first[k] for k in ("family_index", "per_family_instance_index", "threads",
                                         "time_unit", "entry") if k in first}
            row.update(name=f"{run_name}_{agg}", run_name=run_name, run_type="aggregate",
                       repetitions=len(group), aggregate_name=agg,
                       aggregate_unit="percentage" if agg == "cv" else "time",
                       iterations=len(group))
            row.update(vals)
            out.append(row)
    return out


def seconds(value, time_unit):
    """A row's time field in seconds."""
    return value / UNITS[time_unit]


def format_time(secs):
    """Seconds as 3 significant digits in ns, us, ms or s: 0.000123 -> '123 us'."""
    for unit in ("s", "ms", "us", "ns"):
        value = secs * UNITS[unit]
        if abs(value) >= 0.9995 or unit == "ns":
            return f"{value:.3g} {unit}" if abs(value) < 1000 else f"{value:.0f} {unit}"


def context(executable):
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_name": socket.gethostname(),
        "executable": executable,
        "num_cpus": os.cpu_count(),
        "load_avg": list(os.getloadavg()),
        "library_build_type": "gbench_json.py",
    }


class Benchmarks:
    """Collects rows under Google Benchmark's flags and writes its JSON."""

    def __init__(self, argv, executable=None):
        self.repetitions, self.min_time, self.filter, self.out = 1, 0.5, "", None
        for arg in argv:
            key, _, value = arg.partition("=")
            if key == "--benchmark_repetitions":
                self.repetitions = int(value)
            elif key == "--benchmark_min_time":
                self.min_time = float(value.rstrip("s"))
            elif key == "--benchmark_filter":
                self.filter = value
            elif key == "--benchmark_out":
                self.out = value
            elif key == "--benchmark_format" and value == "json":
                pass
            elif key.startswith("--benchmark_") and key != "--benchmark_format":
                pass  # display flags and the like: nothing to do for JSON
            else:
                raise SystemExit(f"{sys.argv[0]}: unknown flag {arg}")
        self.rows = []
        self.executable = executable or os.path.abspath(sys.argv[0])

    def selected(self, name):
        if not self.filter or self.filter == "all":
            return True
        if self.filter.startswith("-"):
            return not re.search(self.filter[1:], name)
        return bool(re.search(self.filter, name))

    def add(self, name, real_s, cpu_s=None, iterations=1, counters=None, time_unit="ns"):
        """Adds one row per repetition: real_s[i] and cpu_s[i] are seconds per iteration;
        counters maps a counter's name to one value per repetition."""
        if not self.selected(name):
            return
        cpu_s = cpu_s if cpu_s is not None else real_s
        family = len({r["run_name"] for r in self.rows})
        for i, (real, cpu) in enumerate(zip(real_s, cpu_s)):
            row = {"name": name, "family_index": family, "per_family_instance_index": 0,
                   "run_name": name, "run_type": "iteration", "repetitions": len(real_s),
                   "repetition_index": i, "threads": 1, "iterations": iterations,
                   "real_time": real * UNITS[time_unit], "cpu_time": cpu * UNITS[time_unit],
                   "time_unit": time_unit}
            for counter, values in (counters or {}).items():
                row[counter] = values[i]
            self.rows.append(row)

    def measure(self, name, fn, time_unit="ns"):
        """Times fn() (repeated until min_time) once per repetition and adds the rows."""
        if not self.selected(name):
            return
        fn()  # warm-up
        real_s, cpu_s, iters = [], [], 0
        for _ in range(self.repetitions):
            n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
            while True:
                fn()
                n += 1
                if time.perf_counter() - wall0 >= self.min_time:
                    break
            real_s.append((time.perf_counter() - wall0) / n)
            cpu_s.append((time.process_time() - cpu0) / n)
            iters = n
        self.add(name, real_s, cpu_s, iterations=iters, time_unit=time_unit)

    def result(self):
        return {"context": context(self.executable), "benchmarks": with_aggregates(self.rows)}

    def write(self):
        text = json.dumps(self.result(), indent=1) + "\n"
        if self.out:
            with open(self.out, "w") as f:
                f.write(text)
        sys.stdout.write(text)


def time_command(name, command, bench, seconds_from=None, warmup=1):
    """Runs `command` `warmup` times, then once per repetition, and adds one row per repetition.

    Without seconds_from the row's time is the whole process's (wall; CPU of it and its
    children). With seconds_from (a regex whose group 1 is a number of seconds, e.g.
    r"step_seconds (\\S+)") the wall time is that number from the last line of the command's
    output that matches, and the name ends in /manual_time, as Google Benchmark names benchmarks
    that measure their own time; the CPU time stays the whole process's."""
    def once():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(command, text=True,
                              stdout=subprocess.PIPE if seconds_from else subprocess.DEVNULL)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{sys.argv[0]}: {command[0]} exited {proc.returncode}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if seconds_from:
            found = re.findall(seconds_from, proc.stdout)
            if not found:
                raise SystemExit(f"{sys.argv[0]}: no line of {command[0]}'s output matches "
                                 f"{seconds_from!r}")
            wall = float(found[-1][0] if isinstance(found[-1], tuple) else found[-1])
        return wall, cpu

    if not bench.selected(name):
        return
    for _ in range(warmup):
        once()
    times = [once() for _ in range(bench.repetitions)]
    bench.add(name, [w for w, _ in times], [c for _, c in times], time_unit="ms")


USAGE = (f"usage: {sys.argv[0]} --name=NAME [--seconds_from=REGEX] [--warmup=N] "
         "[--benchmark_*=...] -- COMMAND [ARG ...]")


def main(argv):
    """The command form. --benchmark_* flags after COMMAND are taken as ours, so that
    tools/bench.sh can run it as a registry entry's launcher= (it appends them)."""
    if "--" not in argv:
        raise SystemExit(__doc__)
    i = argv.index("--")
    ours = argv[:i] + [a for a in argv[i + 1:] if a.startswith("--benchmark_")]
    command = [a for a in argv[i + 1:] if not a.startswith("--benchmark_")]
    opts = {"--name": None, "--seconds_from": None, "--warmup": "1"}
    flags = []
    for arg in ours:
        key, eq, value = arg.partition("=")
        if key in opts and eq:
            opts[key] = value
        elif key == "--benchmark_list_tests":
            opts[key] = value in ("", "true", "1")
        elif key == "--benchmark_min_warmup_time":
            opts["--warmup"] = "0" if float(value.rstrip("s") or 0) == 0 else opts["--warmup"]
        else:
            flags.append(arg)
    if not opts["--name"] or not command:
        raise SystemExit(USAGE)
    name = opts["--name"] + ("/manual_time" if opts["--seconds_from"] else "")
    bench = Benchmarks(flags, executable=command[0])
    if opts.get("--benchmark_list_tests"):
        if bench.selected(name):
            print(name)
        return 0
    time_command(name, command, bench, opts["--seconds_from"], int(opts["--warmup"]))
    bench.write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
