#!/usr/bin/env python3
"""Builds and runs the benchmarks of tools/bench/benchmarks.txt; compares results and revisions.

Run it through tools/bench.sh (docs/benchmarks.md, "Running the benchmarks", is the manual):

  tools/bench.sh                         every benchmark, -c opt, 9 repetitions -> one result file
  tools/bench.sh --only=eplb_rebalance   some of them (names or regexes, comma-separated)
  tools/bench.sh --baseline=FILE|REV     then compare with an earlier result file
  tools/bench.sh --vs=REV                A/B: REV built in its own worktree, the two binaries
                                         run in turn, benchmark by benchmark
  tools/bench.sh --compare OLD NEW       compare two result files, nothing built
  tools/bench.sh --smoke                 every benchmark once, minimal time, no verdict (CI)

A result file is Google Benchmark's JSON: the benchmarks' rows, each name prefixed with its
registry name, aggregates (mean, median, stddev, cv) over all repetitions, and the run's
revision, machine and command under context.dsmoe_bench. Comparisons run Google Benchmark's
compare.py (Debian's libbenchmark-tools) with its Mann-Whitney U test. Exit status: 0 done (no
significant slowdown), 1 a significant slowdown beyond the threshold, 2 bad usage or a failed
build or run.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gbench_json  # noqa: E402  (the shared JSON shape)

REPO = Path(__file__).resolve().parents[2]
REGISTRY = REPO / "tools" / "bench" / "benchmarks.txt"
COMPARE_PY = Path(os.environ.get("BENCH_COMPARE_PY", "/usr/share/benchmark/compare.py"))
NAME_RE = re.compile(r"^[a-z0-9_]+$")
KEYS = {"args", "smoke", "launcher", "env", "requires"}


class BenchError(Exception):
    """A failure that ends the command with exit status 2 and a one-line message."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Registry


class Entry:
    """One registry line: a benchmark binary (or script) and how to run it."""

    def __init__(self, name, target, keys, line_no):
        self.name = name
        self.target = target
        self.args = shlex.split(keys.get("args", ""))
        self.smoke = shlex.split(keys.get("smoke", ""))
        self.launcher = shlex.split(keys.get("launcher", ""))
        self.env = dict(kv.split("=", 1) for kv in shlex.split(keys.get("env", "")))
        self.requires = keys.get("requires", "")
        self.line_no = line_no

    @property
    def is_label(self):
        return self.target.startswith("//")

    @property
    def needs_gpu(self):
        return self.requires == "gpu"

    def binary_in(self, bazel_bin, tree):
        """The executable's path, from bazel-bin for a label or `tree` for a script."""
        if self.is_label:
            package, _, name = self.target[2:].partition(":")
            return Path(bazel_bin) / package / (name or package.rsplit("/", 1)[-1])
        return Path(tree) / self.target


def parse_registry(path=REGISTRY):
    entries, seen = [], set()
    for line_no, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise BenchError(f"{path}:{line_no}: {e}")
        if len(words) < 2:
            raise BenchError(f"{path}:{line_no}: want NAME TARGET [KEY=VALUE ...]")
        name, target, rest = words[0], words[1], words[2:]
        if not NAME_RE.match(name) or name in seen:
            raise BenchError(f"{path}:{line_no}: bad or repeated name {name!r}")
        keys = {}
        for kv in rest:
            key, eq, value = kv.partition("=")
            if not eq or key not in KEYS:
                raise BenchError(f"{path}:{line_no}: unknown {kv!r}; keys: {sorted(KEYS)}")
            keys[key] = value
        if keys.get("requires", "gpu") != "gpu":
            raise BenchError(f"{path}:{line_no}: requires= takes only gpu")
        seen.add(name)
        entries.append(Entry(name, target, keys, line_no))
    return entries


def select(entries, only, gpu):
    chosen = []
    patterns = [p for p in (only or "").split(",") if p]
    for e in entries:
        if patterns and not any(re.fullmatch(p, e.name) for p in patterns):
            continue
        if e.needs_gpu and not gpu:
            log(f"skipping {e.name} ({e.target}): needs a GPU; give --gpu on a machine with one")
            continue
        chosen.append(e)
    if not chosen:
        raise BenchError(f"no benchmark selected by --only={only!r}")
    return chosen


# ---------------------------------------------------------------------------------------------
# Revision, machine, build


def git(tree, *args, quiet=False):
    return subprocess.run(["git", "-C", str(tree), *args], check=True, text=True,
                          stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL if quiet else None).stdout.strip()


def revision(tree):
    """(short commit, dirty) of a work tree."""
    rev = git(tree, "rev-parse", "--short=12", "HEAD")
    dirty = bool(git(tree, "status", "--porcelain", "--untracked-files=no"))
    return rev, dirty


def machine():
    """A description of this machine and a file-name slug for it (host, CPUs, CPU model)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    host, cpus = socket.gethostname().split(".")[0], os.cpu_count()
    slug = re.sub(r"[^a-z0-9]+", "-", f"{host}-{cpus}cpu-{model}".lower()).strip("-")
    return {"host": host, "cpus": cpus, "cpu_model": model, "slug": slug[:60]}


def bazel_flags(mode, cuda):
    return ["-c", mode] + (["--config=cuda"] if cuda else [])


def build(tree, entries, mode):
    """Builds the labels of `entries` in `tree`; returns {name: executable path}.

    Entries whose label does not exist in `tree` (a benchmark added later than that revision)
    are left out with a note."""
    paths = {}
    for cuda in (False, True):
        group = [e for e in entries if e.needs_gpu == cuda]
        labels = sorted({e.target for e in group if e.is_label})
        existing = set(labels)
        if labels:
            query = subprocess.run(
                ["bazel", "query", "--keep_going", "set(%s)" % " ".join(labels)], cwd=tree,
                text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            existing = set(query.stdout.split()) & set(labels)
            for label in sorted(set(labels) - existing):
                log(f"{label} does not exist in {tree}; left out there")
            if existing:
                log(f"building in {tree}: bazel build {' '.join(bazel_flags(mode, cuda))} "
                    + " ".join(sorted(existing)))
                if subprocess.run(["bazel", "build", *bazel_flags(mode, cuda), *sorted(existing)],
                                  cwd=tree).returncode != 0:
                    raise BenchError(f"bazel build failed in {tree}")
        bazel_bin = ""
        if existing:
            bazel_bin = subprocess.run(
                ["bazel", "info", *bazel_flags(mode, cuda), "bazel-bin"], cwd=tree, check=True,
                text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout.strip()
        for e in group:
            if e.is_label and e.target not in existing:
                continue
            path = e.binary_in(bazel_bin, tree)
            if not os.access(path, os.X_OK):
                if e.is_label:
                    raise BenchError(f"{e.name}: no executable at {path}")
                log(f"{e.name}: {e.target} is not in {tree}; left out there")
                continue
            paths[e.name] = path
    return paths


# ---------------------------------------------------------------------------------------------
# Running


def parse_json_output(text):
    """The first JSON object in a benchmark's stdout (a launcher may print lines before it)."""
    start = text.find("{")
    while start >= 0:
        try:
            obj, _ = json.JSONDecoder().raw_decode(text, start)
            if isinstance(obj, dict) and "benchmarks" in obj:
                return obj
        except json.JSONDecodeError:
            pass
        start = text.find("{", start + 1)
    return None


def run_entry(entry, binary, tree, flags, allow_empty=False):
    """Runs one benchmark binary once with `flags`; returns (argv, its JSON, seconds).
    A run that selects no benchmark is an error unless allow_empty."""
    argv = [*entry.launcher, str(binary), *entry.args, *flags]
    env = dict(os.environ, **entry.env)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=tree, env=env, text=True, stdout=subprocess.PIPE)
    seconds = time.monotonic() - start
    result = parse_json_output(proc.stdout)
    if proc.returncode != 0 or result is None:
        tail = proc.stdout.strip().splitlines()[-3:]
        raise BenchError(f"{entry.name}: `{shlex.join(argv)}` exited {proc.returncode}"
                         + ("" if result else ", no JSON on stdout") + "".join(
                             f"\n  | {t}" for t in tail))
    errors = [b for b in result["benchmarks"] if b.get("error_occurred")]
    if errors:
        raise BenchError(f"{entry.name}: {errors[0]['name']}: {errors[0].get('error_message')}")
    if not result["benchmarks"] and not allow_empty:
        raise BenchError(f"{entry.name}: `{shlex.join(argv)}` ran no benchmark")
    return argv, result, seconds


class Collector:
    """Gathers the rows of one revision's runs into one result file's JSON."""

    def __init__(self, meta):
        self.meta = meta
        self.context = None
        self.rows = []
        self.argv = {}

    def add(self, entry, index, round_no, reps, argv, result, family=None):
        if self.context is None:
            self.context = dict(result.get("context", {}))
        self.argv.setdefault(entry.name, shlex.join(argv))
        for row in result["benchmarks"]:
            if row.get("run_type") == "aggregate":
                continue  # recomputed over every round by finish()
            row = dict(row)
            row["name"] = f"{entry.name}/{row['name']}"
            row["run_name"] = f"{entry.name}/{row.get('run_name', row['name'])}"
            row["family_index"] = index * 10000 + (row.get("family_index", 0) if family is None
                                                   else family)
            row["repetition_index"] = round_no * reps + row.get("repetition_index", 0)
            row["entry"], row["round"] = entry.name, round_no
            self.rows.append(row)

    def finish(self, rounds, reps):
        context = dict(self.context or {})
        context["dsmoe_bench"] = dict(self.meta, argv=self.argv, rounds=rounds,
                                      repetitions_per_round=reps,
                                      load_avg_end=list(os.getloadavg()))
        for row in self.rows:
            row["repetitions"] = rounds * reps
        return {"context": context,
                "benchmarks": gbench_json.with_aggregates(self.rows)}


def common_flags(args, reps, benchmark_filter=None):
    flags = ["--benchmark_format=json", f"--benchmark_repetitions={reps}"]
    if args.min_time:
        flags.append(f"--benchmark_min_time={args.min_time}")
    benchmark_filter = benchmark_filter or args.filter
    if benchmark_filter:
        flags.append(f"--benchmark_filter={benchmark_filter}")
    return flags + args.passthrough


def exact_filter(name):
    """A --benchmark_filter that selects the benchmark called `name` and nothing else."""
    return "^" + "".join("\\" + c if c in "\\^$.|?*+()[]{}" else c for c in name) + "$"


def list_benchmarks(entry, binary, tree, args):
    """The names `binary` would run (--benchmark_list_tests), or None if it cannot list them."""
    argv = [*entry.launcher, str(binary), *entry.args, "--benchmark_list_tests=true",
            *([f"--benchmark_filter={args.filter}"] if args.filter else []), *args.passthrough]
    proc = subprocess.run(argv, cwd=tree, env=dict(os.environ, **entry.env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if proc.returncode != 0:
        return None
    # Under mpirun every rank lists them: keep each name once, in order.
    return list(dict.fromkeys(n.strip() for n in proc.stdout.splitlines() if n.strip())) or None


def now_stamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def result_path(out_dir, rev, dirty, mach, stamp, tag=""):
    name = f"{rev}{'+dirty' if dirty else ''}_{mach['slug']}_{stamp}{'_' + tag if tag else ''}"
    return Path(out_dir) / f"{name}.json"


def write_result(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    log(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
        f"({sum(1 for b in data['benchmarks'] if b.get('run_type') != 'aggregate')} rows)")


def meta_for(tree, mode, command, mach, extra=None):
    rev, dirty = revision(tree)
    meta = {"revision": rev, "dirty": dirty, "machine": mach, "compilation_mode": mode,
            "command": command, "date": datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec="seconds")}
    meta.update(extra or {})
    return meta, rev, dirty


def do_smoke(args, entries):
    """Every benchmark once with minimal time; fails on a crash, an error row or no rows."""
    paths = build(REPO, entries, args.compilation_mode)
    flags = ["--benchmark_format=json", "--benchmark_repetitions=1",
             f"--benchmark_min_time={args.min_time or '0.01'}"]
    if args.filter:
        flags.append(f"--benchmark_filter={args.filter}")
    failed, total_start = 0, time.monotonic()
    for e in entries:
        if e.name not in paths:
            log(f"FAIL {e.name}: not built")
            failed += 1
            continue
        try:
            _, result, seconds = run_entry(e, paths[e.name], REPO, flags + e.smoke +
                                           args.passthrough)
            log(f"ok   {e.name}: {len(result['benchmarks'])} benchmarks, {seconds:.1f} s")
        except BenchError as err:
            log(f"FAIL {err}")
            failed += 1
    log(f"smoke: {len(entries) - failed} ok, {failed} failed, "
        f"{time.monotonic() - total_start:.0f} s")
    return 2 if failed else 0


def do_run(args, entries, command, mach):
    """Builds this tree, runs every entry, writes one result file; compares with --baseline."""
    reps = args.repetitions or 9
    meta, rev, dirty = meta_for(REPO, args.compilation_mode, command, mach)
    paths = build(REPO, entries, args.compilation_mode)
    coll = Collector(meta)
    for i, e in enumerate(entries):
        argv, result, seconds = run_entry(e, paths[e.name], REPO, common_flags(args, reps))
        coll.add(e, i, 0, reps, argv, result)
        log(f"{e.name}: {seconds:.1f} s")
    path = result_path(args.out, rev, dirty, mach, now_stamp())
    write_result(path, coll.finish(1, reps))
    if args.baseline:
        return compare(resolve_result(args.baseline, args.out, mach), path, args)
    return 0


def vs_worktree_path():
    digest = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"dsmoe-bench-vs-{digest}"


def remove_worktree(path):
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "-C", str(REPO), "worktree", "prune"])


def do_vs(args, entries, command, mach):
    """A/B: REV (base) against this work tree (new). For each benchmark the two binaries run in
    turn, `rounds` times each (A B, B A, ...), so that both sides' samples share the machine's
    phase."""
    try:
        base_commit = git(REPO, "rev-parse", "--verify", "--quiet", args.vs + "^{commit}",
                          quiet=True)
    except subprocess.CalledProcessError:
        raise BenchError(f"--vs={args.vs}: not a revision of this repository")
    reps, rounds = args.repetitions or 1, args.rounds
    stamp = now_stamp()
    new_meta, new_rev, new_dirty = meta_for(REPO, args.compilation_mode, command, mach,
                                            {"ab": {"role": "new", "vs": base_commit}})
    new_paths = build(REPO, entries, args.compilation_mode)
    tree = vs_worktree_path()
    remove_worktree(tree)  # left over from an interrupted run
    try:
        log(f"checking {args.vs} out into {tree} (its own Bazel output base)")
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet",
                        str(tree), base_commit], check=True)
        base_meta, base_rev, base_dirty = meta_for(
            tree, args.compilation_mode, command, mach,
            {"ab": {"role": "base", "vs": git(REPO, "rev-parse", "HEAD")}})
        base_paths = build(tree, entries, args.compilation_mode)
        # One Bazel server is enough while measuring.
        subprocess.run(["bazel", "shutdown"], cwd=tree, stderr=subprocess.DEVNULL)
        base, new = Collector(base_meta), Collector(new_meta)
        sides = {"base": (base, base_paths, tree), "new": (new, new_paths, REPO)}
        for i, e in enumerate(entries):
            if e.name not in base_paths or e.name not in new_paths:
                log(f"{e.name}: not in both revisions; not compared")
                continue
            names = None
            if args.interleave == "benchmark":
                names = list_benchmarks(e, new_paths[e.name], REPO, args)
                if names is None:
                    log(f"{e.name}: cannot list its benchmarks; interleaving whole runs")
            units = [(exact_filter(n), n) for n in names] if names else [(None, None)]
            for j, (benchmark_filter, name) in enumerate(units):
                start = time.monotonic()
                for r in range(rounds):
                    runs = {}
                    for role in (("base", "new") if r % 2 == 0 else ("new", "base")):
                        _, paths, cwd = sides[role]
                        runs[role] = run_entry(e, paths[e.name], cwd,
                                               common_flags(args, reps, benchmark_filter),
                                               allow_empty=name is not None)
                    if name is not None and not runs["base"][1]["benchmarks"]:
                        log(f"{e.name}/{name}: not in {args.vs}; not compared")
                        break
                    for role, (argv, result, _) in runs.items():
                        sides[role][0].add(e, i, r, reps, argv, result,
                                           family=j if name is not None else None)
                log(f"{e.name}/{name or '*'}: {rounds} rounds x {reps} repetitions a side, "
                    f"{time.monotonic() - start:.1f} s")
    finally:
        subprocess.run(["bazel", "shutdown"], cwd=tree, stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL) if tree.exists() else None
        remove_worktree(tree)
    if not base.rows:
        raise BenchError("no benchmark exists in both revisions")
    base_path = result_path(args.out, base_rev, base_dirty, mach, stamp, "ab-base")
    new_path = result_path(args.out, new_rev, new_dirty, mach, stamp, "ab-new")
    write_result(base_path, base.finish(rounds, reps))
    write_result(new_path, new.finish(rounds, reps))
    return compare(base_path, new_path, args)


# ---------------------------------------------------------------------------------------------
# Comparing


def resolve_result(spec, out_dir, mach):
    """A result file's path, or the newest result file of revision `spec` on this machine."""
    if Path(spec).is_file():
        return Path(spec)
    try:
        rev = git(REPO, "rev-parse", "--short=12", spec + "^{commit}", quiet=True)
    except subprocess.CalledProcessError:
        raise BenchError(f"{spec}: neither a result file nor a revision")
    found = sorted(Path(out_dir).glob(f"{rev}_{mach['slug']}_*.json"))
    found = [f for f in found if not f.name.endswith("_ab-base.json")] or found
    if not found:
        raise BenchError(f"no result file of {rev} on this machine in {out_dir}; "
                         f"run tools/bench.sh at {rev} first, or use --vs={spec}")
    return found[-1]


def primary_metric(name):
    """'time' (wall) for benchmarks that report real or manual time, else 'cpu'."""
    return "time" if re.search(r"/(real|manual)_time$", name) else "cpu"


def python_with_scipy():
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import scipy, numpy"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL).returncode == 0:
            return py
    raise BenchError("compare.py needs python3-scipy and python3-numpy: "
                     "apt-get install -y libbenchmark-tools python3-scipy python3-numpy")


def compare(base_path, new_path, args):
    """compare.py's table and U test for base -> new; returns 1 on a significant slowdown."""
    if not COMPARE_PY.is_file():
        raise BenchError(f"{COMPARE_PY} is missing: apt-get install -y libbenchmark-tools "
                         "python3-scipy python3-numpy")
    py = python_with_scipy()
    with tempfile.TemporaryDirectory() as tmp:
        # compare.py gets the repetitions and the median: one table row and one U test row each.
        short = []
        for src in (base_path, new_path):
            data = json.loads(Path(src).read_text())
            data["benchmarks"] = [b for b in data["benchmarks"] if b.get("run_type") != "aggregate"
                                  or b.get("aggregate_name") == "median"]
            dst = Path(tmp) / ("base.json" if not short else "new.json")
            dst.write_text(json.dumps(data))
            short.append(dst)
        dump = Path(tmp) / "diff.json"
        cmd = [py, str(COMPARE_PY), "-a", "--alpha", str(args.alpha), "-d", str(dump)]
        if not sys.stdout.isatty():
            cmd.append("--no-color")
        log(f"compare.py: {base_path} -> {new_path}")
        proc = subprocess.run(cmd + ["benchmarks", str(short[0]), str(short[1])], text=True,
                              stdout=subprocess.PIPE)
        out = proc.stdout.replace(str(short[0]), str(base_path)).replace(str(short[1]),
                                                                         str(new_path))
        print(out, end="")
        if proc.returncode != 0 or not dump.is_file():
            raise BenchError("compare.py failed")
        diff = json.loads(dump.read_text())
    verdicts = verdict(diff, args.threshold / 100.0, args.alpha)
    print_verdict(verdicts, args.threshold, args.alpha)
    return 1 if any(v["verdict"] == "SLOWER" for v in verdicts) else 0


def verdict(diff, threshold, alpha):
    """One line per benchmark compared: its metric's median change, p-value and verdict."""
    by_name = {d["name"]: d for d in diff}
    out = []
    for d in diff:
        if not d.get("utest") or d.get("run_type") == "aggregate":
            continue
        median = by_name.get(d["name"] + "_median")
        if median is None:
            continue
        metric = primary_metric(d["name"])
        m = median["measurements"][0]
        change = m[metric]
        pvalue = d["utest"][f"{metric}_pvalue"]
        old = m["real_time" if metric == "time" else "cpu_time"]
        new = m["real_time_other" if metric == "time" else "cpu_time_other"]
        significant = pvalue < alpha
        v = "same"
        if significant and change > threshold:
            v = "SLOWER"
        elif significant and change < -threshold:
            v = "faster"
        elif significant:
            v = "~"  # significant but within the threshold
        out.append({"name": d["name"], "metric": "wall" if metric == "time" else "CPU",
                    "old": old, "new": new, "unit": d["time_unit"], "change": change,
                    "pvalue": pvalue, "n": (d["utest"]["nr_of_repetitions"],
                                            d["utest"]["nr_of_repetitions_other"]),
                    "verdict": v})
    return out


def print_verdict(verdicts, threshold, alpha):
    if not verdicts:
        print("\nNo benchmark had 2 or more repetitions on both sides: no U test, no verdict.")
        return
    print(f"\nVerdict: SLOWER / faster = the median moved by more than {threshold:g}% with U test "
          f"p < {alpha:g}; ~ = significant but within {threshold:g}% (metric: wall time for "
          f"*/real_time and */manual_time, else CPU time)")
    changed = [v for v in verdicts if v["verdict"] != "same"]
    if changed:
        width = max(len(v["name"]) for v in changed)
        print(f"{'benchmark':<{width}}  metric  {'old median':>10}  {'new median':>10}  "
              f"{'change':>7}  {'p':>7}  verdict")
        for v in changed:
            old = gbench_json.format_time(gbench_json.seconds(v["old"], v["unit"]))
            new = gbench_json.format_time(gbench_json.seconds(v["new"], v["unit"]))
            print(f"{v['name']:<{width}}  {v['metric']:<6}  {old:>10}  {new:>10}  "
                  f"{100 * v['change']:>+6.1f}%  {v['pvalue']:>7.4f}  {v['verdict']}")
    counts = {k: sum(1 for v in verdicts if v["verdict"] == k) for k in
              ("SLOWER", "faster", "~", "same")}
    few = min(min(v["n"]) for v in verdicts)
    print(f"{len(verdicts)} compared: {counts['SLOWER']} SLOWER, {counts['faster']} faster, "
          f"{counts['~']} ~, {counts['same']} no significant change"
          + (f" (only {few} repetitions on a side; 9 or more make the U test reliable)"
             if few < 9 else ""))


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    passthrough = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(
        prog="tools/bench.sh", description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to every benchmark binary. "
               "Manual: docs/benchmarks.md, 'Running the benchmarks'.")
    p.add_argument("--only", help="registry names or regexes, comma-separated (default: all)")
    p.add_argument("--filter", help="--benchmark_filter for every binary (a regex)")
    p.add_argument("--repetitions", type=int,
                   help="repetitions per run (default 9; with --vs 1 per round and side)")
    p.add_argument("--rounds", type=int, default=9, help="A/B rounds with --vs (default 9)")
    p.add_argument("--interleave", choices=["benchmark", "binary"], default="benchmark",
                   help="with --vs, alternate A and B for each benchmark (default), or whole runs")
    p.add_argument("--min_time", help="--benchmark_min_time for every binary, in seconds")
    p.add_argument("--baseline", metavar="FILE|REV",
                   help="after the run, compare with a result file (or REV's newest one)")
    p.add_argument("--vs", metavar="REV", help="A/B this work tree against REV, interleaved")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"),
                   help="compare two result files (or revisions); nothing is built or run")
    p.add_argument("--threshold", type=float, default=10.0,
                   help="percent slower that fails, when significant (default 10)")
    p.add_argument("--alpha", type=float, default=0.05, help="U test level (default 0.05)")
    p.add_argument("--smoke", action="store_true",
                   help="every benchmark once, minimal time, no result file, no verdict")
    p.add_argument("--gpu", action="store_true",
                   help="also the benchmarks that need a GPU (built with --config=cuda)")
    p.add_argument("-c", "--compilation_mode",
                   help="Bazel -c (default opt; fastbuild with --smoke, the build CI tests)")
    p.add_argument("--out", default=str(REPO / "bench-results"),
                   help="folder of result files (default bench-results/, git-ignored)")
    p.add_argument("--list", action="store_true", help="print the registry and exit")
    args = p.parse_args(argv)
    args.passthrough = passthrough
    if args.compilation_mode is None:
        args.compilation_mode = "fastbuild" if args.smoke else "opt"
    if sum(bool(x) for x in (args.smoke, args.vs, args.compare)) > 1:
        p.error("--smoke, --vs and --compare exclude each other")
    if args.repetitions is not None and args.repetitions < 1 or args.rounds < 1:
        p.error("--repetitions and --rounds must be 1 or more")
    return args


def main(argv):
    args = parse_args(argv)
    command = shlex.join(["tools/bench.sh", *argv])
    try:
        entries = parse_registry()
        if args.list:
            for e in entries:
                print(f"{e.name:<20} {e.target}" + (" (needs --gpu)" if e.needs_gpu else ""))
            return 0
        mach = machine()
        if args.compare:
            return compare(resolve_result(args.compare[0], args.out, mach),
                           resolve_result(args.compare[1], args.out, mach), args)
        entries = select(entries, args.only, args.gpu)
        if args.smoke:
            return do_smoke(args, entries)
        if args.vs:
            return do_vs(args, entries, command, mach)
        return do_run(args, entries, command, mach)
    except BenchError as e:
        log(str(e))
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
