"""Tests of tools/bench: the registry, the result files' shape, the verdict, the doc generator."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import gbench_json  # noqa: E402
import gen_docs  # noqa: E402


def gb_rows(name, times_ns, entry=None, **counters):
    """Iteration rows as Google Benchmark writes them (one per repetition)."""
    b = gbench_json.Benchmarks([f"--benchmark_repetitions={len(times_ns)}"])
    b.add(name, [t / 1e9 for t in times_ns], time_unit="ns",
          counters={k: [v] * len(times_ns) for k, v in counters.items()})
    rows = b.rows
    for r in rows:
        if entry:
            r.update(name=f"{entry}/{name}", run_name=f"{entry}/{name}", entry=entry)
    return rows


class RegistryTest(unittest.TestCase):
    def test_real_registry_parses_and_names_existing_targets(self):
        entries = bench.parse_registry()
        self.assertGreaterEqual(len(entries), 4)
        for e in entries:
            if not e.is_label:
                continue
            package, _, name = e.target[2:].partition(":")
            build = (bench.REPO / package / "BUILD").read_text()
            self.assertRegex(build, rf'name = "{re.escape(name)}"', e.target)

    def test_keys_and_errors(self):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write('# comment\nfoo //a:b args="--x=1 --y" launcher="mpirun -np 2" '
                    'env="A=1 B=2"  # trailing\nbar tools/x.sh requires=gpu smoke="--z"\n')
        entries = bench.parse_registry(f.name)
        self.assertEqual([e.name for e in entries], ["foo", "bar"])
        self.assertEqual(entries[0].args, ["--x=1", "--y"])
        self.assertEqual(entries[0].launcher, ["mpirun", "-np", "2"])
        self.assertEqual(entries[0].env, {"A": "1", "B": "2"})
        self.assertTrue(entries[1].needs_gpu and not entries[1].is_label)
        self.assertEqual(entries[1].smoke, ["--z"])
        self.assertEqual(str(entries[0].binary_in("/bin", "/t")), "/bin/a/b")
        for bad in ("foo\n", "Foo //a:b\n", "foo //a:b color=red\n", "a //a:b\na //c:d\n"):
            with open(f.name, "w") as g:
                g.write(bad)
            with self.assertRaises(bench.BenchError, msg=bad):
                bench.parse_registry(f.name)
        os.unlink(f.name)

    def test_select(self):
        entries = bench.parse_registry()
        names = [e.name for e in bench.select(entries, "comm_.*,eplb_rebalance", gpu=False)]
        self.assertIn("eplb_rebalance", names)
        self.assertTrue(all(n.startswith("comm_") or n == "eplb_rebalance" for n in names))
        self.assertNotIn("model_cuda_kernels", [e.name for e in bench.select(entries, "", False)])
        with self.assertRaises(bench.BenchError):
            bench.select(entries, "nothing_like_this", False)


class ShapeTest(unittest.TestCase):
    def test_aggregates_like_google_benchmark(self):
        out = gbench_json.with_aggregates(gb_rows("BM_X", [10, 20, 30, 40], tokens=5.0))
        aggs = {r["aggregate_name"]: r for r in out if r["run_type"] == "aggregate"}
        self.assertEqual(sorted(aggs), ["cv", "mean", "median", "stddev"])
        self.assertEqual(aggs["median"]["real_time"], 25)
        self.assertEqual(aggs["mean"]["cpu_time"], 25)
        self.assertAlmostEqual(aggs["cv"]["real_time"], aggs["stddev"]["real_time"] / 25)
        self.assertEqual(aggs["cv"]["aggregate_unit"], "percentage")
        self.assertEqual(aggs["median"]["tokens"], 5.0)
        self.assertEqual(aggs["median"]["name"], "BM_X_median")

    def test_collector_prefixes_and_renumbers(self):
        entry = bench.Entry("e", "//a:b", {}, 1)
        coll = bench.Collector({"revision": "abc"})
        for round_no in range(2):
            result = {"context": {"host_name": "h"},
                      "benchmarks": gbench_json.with_aggregates(gb_rows("BM_X", [1, 2, 3]))}
            coll.add(entry, 1, round_no, 3, ["bin"], result)
        data = coll.finish(2, 3)
        rows = [b for b in data["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual(len(rows), 6)
        self.assertEqual(sorted(r["repetition_index"] for r in rows), list(range(6)))
        self.assertTrue(all(r["name"] == "e/BM_X" and r["repetitions"] == 6 for r in rows))
        self.assertTrue(all(r["family_index"] == 10000 for r in rows))
        self.assertEqual(data["context"]["dsmoe_bench"]["revision"], "abc")
        self.assertEqual(len([b for b in data["benchmarks"] if b["run_type"] == "aggregate"]), 4)

    def test_command_timer_writes_the_shape(self):
        out = subprocess.run(
            [sys.executable, str(Path(gbench_json.__file__)), "--name=true_cmd",
             "--benchmark_repetitions=3", "--benchmark_format=json", "--", "true"],
            check=True, text=True, stdout=subprocess.PIPE).stdout
        data = bench.parse_json_output(out)
        rows = [b for b in data["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual(len(rows), 3)
        self.assertEqual(rows[0]["time_unit"], "ms")

    def test_other_binary_joins_through_the_command_form(self):
        # As a registry line would run a binary that prints its own time:
        #   NAME //pkg:binary launcher="tools/bench/gbench_json.py --name=... --seconds_from=... --"
        keys = {"launcher": f"{sys.executable} {gbench_json.__file__} --name=exec/step "
                            "--seconds_from='step_seconds (\\S+)' --",
                "args": "-c 'echo step 1; echo step_seconds 0.0123'"}
        entry = bench.Entry("fake", "//fake:binary", keys, 1)
        _, result, _ = bench.run_entry(entry, "/bin/sh", tempfile.gettempdir(),
                                       ["--benchmark_format=json", "--benchmark_repetitions=2",
                                        "--benchmark_min_warmup_time=0"])
        rows = [b for b in result["benchmarks"] if b["run_type"] == "iteration"]
        self.assertEqual([r["name"] for r in rows], ["exec/step/manual_time"] * 2)
        self.assertAlmostEqual(rows[0]["real_time"], 12.3)
        self.assertEqual(rows[0]["time_unit"], "ms")
        args = type("Args", (), {"filter": None, "passthrough": []})
        self.assertEqual(bench.list_benchmarks(entry, "/bin/sh", tempfile.gettempdir(), args),
                         ["exec/step/manual_time"])
        _, result, _ = bench.run_entry(
            entry, "/bin/sh", tempfile.gettempdir(),
            ["--benchmark_format=json", "--benchmark_filter=" + bench.exact_filter("other")],
            allow_empty=True)
        self.assertEqual(result["benchmarks"], [])

    def test_json_found_after_launcher_noise(self):
        self.assertEqual(bench.parse_json_output('warning {x}\n{"benchmarks": []}\n'),
                         {"benchmarks": []})
        self.assertIsNone(bench.parse_json_output("no json"))

    def test_exact_filter(self):
        f = bench.exact_filter("BM_X/policy:1/a.b+c/real_time")
        self.assertEqual(f, r"^BM_X/policy:1/a\.b\+c/real_time$")
        self.assertTrue(re.search(f, "BM_X/policy:1/a.b+c/real_time"))
        self.assertFalse(re.search(f, "BM_X/policy:1/a.b+c/real_time/2"))

    def test_format_time(self):
        self.assertEqual(gbench_json.format_time(0.000123), "123 us")
        self.assertEqual(gbench_json.format_time(0.9996), "1 s")
        self.assertEqual(gbench_json.format_time(2.5e-9), "2.5 ns")


def diff_entry(name, change, pvalue, run_type="", metric="time"):
    m = {"real_time": 100, "cpu_time": 100, "real_time_other": 100 * (1 + change),
         "cpu_time_other": 100 * (1 + change), "time": change, "cpu": change}
    utest = {} if run_type else {"time_pvalue": pvalue, "cpu_pvalue": pvalue,
                                 "nr_of_repetitions": 9, "nr_of_repetitions_other": 9,
                                 "have_optimal_repetitions": True}
    return {"name": name, "measurements": [m], "time_unit": "ns", "run_type": run_type,
            "utest": utest}


class VerdictTest(unittest.TestCase):
    def verdicts(self, change, pvalue, name="BM_X/real_time"):
        diff = [diff_entry(name, change, pvalue),
                diff_entry(name + "_median", change, None, run_type="aggregate")]
        return bench.verdict(diff, 0.10, 0.05)[0]["verdict"]

    def test_verdicts(self):
        self.assertEqual(self.verdicts(0.30, 0.001), "SLOWER")
        self.assertEqual(self.verdicts(0.30, 0.2), "same")
        self.assertEqual(self.verdicts(0.05, 0.001), "~")
        self.assertEqual(self.verdicts(-0.30, 0.001), "faster")

    def test_primary_metric(self):
        self.assertEqual(bench.primary_metric("e/BM_X/8/real_time"), "time")
        self.assertEqual(bench.primary_metric("e/BM_X/8/manual_time"), "time")
        self.assertEqual(bench.primary_metric("e/BM_X/8/process_time"), "cpu")
        self.assertEqual(bench.primary_metric("e/BM_X/8"), "cpu")


@unittest.skipUnless(bench.COMPARE_PY.is_file(), "libbenchmark-tools is not installed")
class CompareTest(unittest.TestCase):
    def write(self, tmp, name, times):
        data = {"context": {"dsmoe_bench": {}},
                "benchmarks": gbench_json.with_aggregates(gb_rows("BM_X/real_time", times, "e"))}
        path = Path(tmp) / name
        path.write_text(json.dumps(data))
        return path

    def test_slowdown_fails_and_no_change_passes(self):
        class Args:
            threshold, alpha = 10.0, 0.05
        try:
            bench.python_with_scipy()
        except bench.BenchError:
            self.skipTest("no python3 with scipy")
        with tempfile.TemporaryDirectory() as tmp:
            base = self.write(tmp, "base.json", [100 + i for i in range(9)])
            same = self.write(tmp, "same.json", [100 + (i * 5) % 9 for i in range(9)])
            slow = self.write(tmp, "slow.json", [150 + i for i in range(9)])
            self.assertEqual(bench.compare(base, same, Args), 0)
            self.assertEqual(bench.compare(base, slow, Args), 1)


class GenDocsTest(unittest.TestCase):
    def test_blocks_regenerated_and_prose_kept(self):
        rows = gb_rows("BM_A/8", [1000, 2000, 3000], "ours", algbw=2 * 1024 ** 3) + \
            gb_rows("rebalance", [5e6] * 3, "peer")
        data = {"context": {"load_avg": [1.5], "mhz_per_cpu": 2000, "dsmoe_bench": {
            "revision": "abc", "dirty": False, "date": "2026-12-01T00:00:00+00:00",
            "machine": {"host": "vm", "cpus": 2, "cpu_model": "X"}, "command": "tools/bench.sh",
            "compilation_mode": "opt", "rounds": 1, "repetitions_per_round": 3}},
            "benchmarks": gbench_json.with_aggregates(rows)}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "r.json"
            path.write_text(json.dumps(data))
            doc = ("    <!-- bench:table entries=NAME[,N2] [x=y] -->\n    <!-- bench:end -->\n"
                   "prose\n<!-- bench:table entries=ours,peer bytes=algbw -->\nold\n"
                   "<!-- bench:end -->\nmore prose\n"
                   "<!-- bench:table entries=missing -->\nuntouched\n<!-- bench:end -->\n")
            text, count = gen_docs.generate(doc, gen_docs.load([path]))
        self.assertEqual(count, 1)
        self.assertIn("prose\n", text)
        self.assertIn("more prose", text)
        self.assertIn("untouched", text)
        self.assertNotIn("\nold\n", text)
        self.assertIn("| ours | BM_A/8 | 2 us | 2 us |", text)
        self.assertIn("2 GiB/s", text)
        self.assertIn("| peer | rebalance | 5 ms |", text)
        self.assertIn("Command: `tools/bench.sh`", text)


if __name__ == "__main__":
    unittest.main()
