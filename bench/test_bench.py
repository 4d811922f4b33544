"""Host tests of the Linux side-by-side scripts (no QEMU, no network):

    python3 -m unittest discover -s bench
"""

import os
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_linux  # noqa: E402
import summary  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def row(system, rep, mode, threads, fps, wps=0, error=""):
    r = summary.row_from_result(system, rep, mode, threads, {
        "faults_per_sec": str(fps), "writer_ops_per_sec": str(wps)}, 1.0)
    r["error"] = error
    return r


def full_rows(scale):
    """Three reps of every figure for every system; system s, rep k gives
    scale[s] * base * k (so the median is rep 2's value)."""
    rows = []
    for s, f in scale.items():
        for rep in (1, 2, 3):
            for mode, t, base, wbase in (("quiet", 1, 100, 0), ("quiet", 2, 180, 0),
                                          ("writer", 1, 50, 10), ("writer", 2, 90, 6)):
                rows.append(row(s, rep, mode, t, f * base * rep, f * wbase * rep))
    return rows


class Stats(unittest.TestCase):
    def test_median_min_max_over_odd_and_even_counts(self):
        rows = [row("linux-6.1", i, "quiet", 1, v) for i, v in enumerate([5, 1, 100], 1)]
        s = summary.stats(rows)[("linux-6.1", "quiet", 1, "faults_per_sec")]
        self.assertEqual((s.n, s.median, s.min, s.max), (3, 5, 1, 100))
        rows.append(row("linux-6.1", 4, "quiet", 1, 7))
        s = summary.stats(rows)[("linux-6.1", "quiet", 1, "faults_per_sec")]
        self.assertEqual((s.n, s.median, s.min, s.max), (4, 6, 1, 100))

    def test_failed_runs_are_left_out(self):
        rows = [row("linux-6.1", 1, "quiet", 1, 10), row("linux-6.1", 2, "quiet", 1, 999, error="ENOMEM")]
        s = summary.stats(rows)[("linux-6.1", "quiet", 1, "faults_per_sec")]
        self.assertEqual((s.n, s.max), (1, 10))
        no_line = summary.row_from_result("ours-pervma-on", 1, "quiet", 2, None, 3.0)
        self.assertEqual(no_line["error"], "no result line")
        self.assertNotIn(("ours-pervma-on", "quiet", 2, "faults_per_sec"), summary.stats([no_line]))


class Ratios(unittest.TestCase):
    def setUp(self):
        self.rows = full_rows({"linux-6.12": 1, "ours-pervma-on": 3})
        self.lines = summary.ratio_lines(self.rows, summary.stats(self.rows))

    def line(self, start):
        found = [ln for ln in self.lines if ln.startswith(start)]
        self.assertEqual(len(found), 1, self.lines)
        return found[0]

    def test_ours_over_linux_612_for_every_figure(self):
        ln = self.line("- this kernel, per-VMA on / Linux 6.12")
        for h, *_ in summary.COLUMNS:
            self.assertIn(f"{h} 3.00", ln)

    def test_writer_over_quiet_and_two_over_one_thread(self):
        ln = self.line("- writer-mode faults / quiet faults, Linux 6.12")
        self.assertIn("T=1 0.50", ln)   # 50 / 100
        self.assertIn("T=2 0.50", ln)   # 90 / 180
        ln = self.line("- T=2 / T=1, this kernel, per-VMA on")
        self.assertIn("quiet faults 1.80", ln)
        self.assertIn("writer faults 1.80", ln)
        self.assertIn("writer ops/s 0.60", ln)

    def test_missing_reference_or_zero_gives_na(self):
        rows = full_rows({"ours-pervma-off": 1})
        lines = summary.ratio_lines(rows, summary.stats(rows))
        self.assertIn("quiet T=1 n/a", lines[0])
        rows = [row("linux-6.12", 1, "quiet", 1, 0), row("ours-pervma-on", 1, "quiet", 1, 5)]
        self.assertIn("quiet T=1 n/a", summary.ratio_lines(rows, summary.stats(rows))[0])


class Markdown(unittest.TestCase):
    def test_table_has_medians_and_spread_per_system_in_order(self):
        rows = full_rows({"ours-pervma-on": 1000, "linux-6.1": 1})
        md = summary.markdown(rows, {"reps": 3})
        lines = md.splitlines()
        i61 = next(i for i, ln in enumerate(lines) if ln.startswith("| Linux 6.1 "))
        ion = next(i for i, ln in enumerate(lines) if ln.startswith("| this kernel, per-VMA on "))
        self.assertLess(i61, ion)
        self.assertEqual(lines[ion].split(" | ")[1:3], ["200,000", "360,000"])
        self.assertIn("| this kernel, per-VMA on | 100,000 .. 300,000 (n=3) |", md)

    def test_failed_runs_are_listed(self):
        rows = [row("linux-6.1", 1, "quiet", 1, 10, error="no result line")]
        self.assertIn("- rep 1 linux-6.1 quiet T=1: no result line", summary.markdown(rows, {}))


class Svg(unittest.TestCase):
    def test_nice_steps(self):
        self.assertEqual(summary.nice_step(100), 20)
        self.assertEqual(summary.nice_step(431921), 100000)
        self.assertEqual(summary.nice_step(12), 2.5)
        self.assertEqual(summary.nice_step(0), 1)

    def test_one_bar_and_whisker_per_figure_heights_follow_medians(self):
        rows = full_rows({"linux-6.1": 1, "linux-6.12": 2, "ours-pervma-off": 3, "ours-pervma-on": 4})
        root = ET.fromstring(summary.svg(rows, {}))
        bars = [e for e in root.iter(SVG + "rect") if e.get("class") == "bar"]
        whiskers = [e for e in root.iter(SVG + "path") if e.get("class") == "whisker"]
        self.assertEqual(len(bars), 4 * 6)
        self.assertEqual(len(whiskers), 4 * 6)
        # The first panel's first group is quiet T=1: medians 200, 400, 600, 800.
        h = [float(b.get("height")) for b in bars[:4]]
        for k in range(4):
            self.assertAlmostEqual(h[k] / h[0], k + 1, delta=0.05)  # heights have 0.1 px
        # A whisker runs from min (lower on the page) to max.
        d = whiskers[0].get("d")
        y_min, y_max = (float(v) for v in d.split("V")[0].split(" ")[1:] + [d.split("V")[1].split("M")[0]])
        self.assertGreater(y_min, y_max)

    def test_bar_is_the_median_and_whisker_spans_min_to_max(self):
        rows = [row("linux-6.1", i, "quiet", 1, v) for i, v in enumerate([100, 200, 900], 1)]
        rows += [row("linux-6.12", i, "quiet", 1, v) for i, v in enumerate([300, 400, 500], 1)]
        root = ET.fromstring(summary.svg(rows, {}))
        bars = [e for e in root.iter(SVG + "rect") if e.get("class") == "bar"]
        whiskers = [e for e in root.iter(SVG + "path") if e.get("class") == "whisker"]
        for bar, whisker, (lo, med, hi) in zip(bars, whiskers, [(100, 200, 900), (300, 400, 500)]):
            base = float(bar.get("y")) + float(bar.get("height"))
            px_per_unit = float(bar.get("height")) / med
            d = whisker.get("d")  # "Mx y_min Vy_max M..."
            y_min = float(d.split("V")[0].split(" ")[1])
            y_max = float(d.split("V")[1].split("M")[0])
            self.assertAlmostEqual((base - y_min) / px_per_unit, lo, delta=lo * 0.02)
            self.assertAlmostEqual((base - y_max) / px_per_unit, hi, delta=hi * 0.02)

    def test_missing_figures_draw_no_bar(self):
        rows = [row("linux-6.1", 1, "quiet", 1, 10)]
        root = ET.fromstring(summary.svg(rows, {}))
        self.assertEqual(len([e for e in root.iter(SVG + "rect") if e.get("class") == "bar"]), 1)


class Driver(unittest.TestCase):
    def test_result_line_is_found_inside_console_noise(self):
        line = ("\x1b[0mfaultbench mode=writer threads=2 pages=16 faults=32 seconds=1.000 "
                "faults_per_sec=32 writer_ops=3 writer_ops_per_sec=3 minflt=33 error=ENOMEM")
        r = bench_linux.parse_result(line)
        self.assertEqual((r["mode"], r["threads"], r["writer_ops_per_sec"], r["error"]),
                         ("writer", "2", "3", "ENOMEM"))
        self.assertIsNone(bench_linux.parse_result("faultbench_kernel success=1 abort=0"))
        self.assertIsNone(bench_linux.parse_result("usage: faultbench [-t threads]"))

    def test_newest_package_by_numeric_version(self):
        pat = bench_linux.LINUXES[0].pattern
        names = ["linux-image-6.1.0-9-cloud-amd64-unsigned", "linux-image-6.1.0-57-cloud-amd64-unsigned",
                 "linux-image-6.1.0-60-cloud-amd64", "linux-image-6.12.1+deb13-cloud-amd64-unsigned"]
        self.assertEqual(bench_linux.newest(names, pat), "linux-image-6.1.0-57-cloud-amd64-unsigned")
        self.assertIsNone(bench_linux.newest(["busybox-static"], pat))

    def test_cpio_newc_entries_are_aligned_and_readable(self):
        entries = [("bin", 0o040755, b"", (0, 0)), ("dev/console", 0o020600, b"", (5, 1)),
                   ("init", 0o100755, b"#!/bin/sh\n", (0, 0))]
        data = bench_linux.cpio_newc(entries)
        off, seen = 0, []
        while True:
            self.assertEqual(off % 4, 0)
            self.assertEqual(data[off:off + 6], b"070701")
            f = [int(data[off + 6 + 8 * i: off + 14 + 8 * i], 16) for i in range(13)]
            name = data[off + 110: off + 110 + f[11] - 1].decode()
            off += 110 + f[11]
            off += -off % 4
            body = data[off: off + f[6]]
            off += f[6] + (-f[6] % 4)
            if name == "TRAILER!!!":
                break
            seen.append((name, f[1], body, (f[9], f[10])))
        self.assertEqual(seen, entries)
        self.assertEqual(off, len(data))

    def test_same_qemu_command_for_every_system_but_kernel_initrd_and_append(self):
        class A:
            qemu, accel, smp, mem, cpu = "qemu", "tcg", 1, "1G", "qemu64"
        linux = bench_linux.System("linux-6.1", "L", "/k/vmlinuz", "/k/initrd", "console=ttyS0")
        ours = bench_linux.System("ours-pervma-on", "O", "/k/kernel", None, "mode=run")
        a, b = (bench_linux.qemu_argv(A, s, "x") for s in (linux, ours))

        def strip(argv):
            out, skip = [], False
            for v in argv:
                if skip:
                    skip = False
                elif v in ("-kernel", "-initrd", "-append"):
                    skip = True
                else:
                    out.append(v)
            return out
        self.assertEqual(strip(a), strip(b))
        self.assertIn("tcg,thread=multi", a)
        self.assertEqual(a[a.index("-cpu") + 1], "qemu64")

    def test_systems_subset_and_phases_switch(self):
        class A:
            kernel, linux_append = "/k/kernel", ""
            systems, phases = ["ours-pervma-off"], True
        got = bench_linux.systems(A, {}, None)
        self.assertEqual([s.key for s in got], ["ours-pervma-off"])
        self.assertEqual(got[0].append, "mode=run prog=faultbench phases=on pervma=off")
        A.systems, A.phases = bench_linux.SYSTEMS, False
        got = bench_linux.systems(A, {"linux-6.1": "/v1", "linux-6.12": "/v2"}, "/i")
        self.assertEqual([s.key for s in got], bench_linux.SYSTEMS)
        self.assertEqual(got[3].append, "mode=run prog=faultbench")


if __name__ == "__main__":
    unittest.main()
