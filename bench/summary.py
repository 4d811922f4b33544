"""The reports of `bench_linux.py`: one CSV row per faultbench run, a markdown
table of medians with min and max, ratio lines, and an SVG bar chart.

Also usable on its own, to redo the reports of an earlier run:

    python3 bench/summary.py target/bench-linux/results/latest/runs.csv
"""

import csv
import json
import math
import os
import statistics
import sys
from xml.sax.saxutils import escape

# Systems in table and plot order.
LABELS = {
    "linux-6.1": "Linux 6.1 (mmap_lock only)",
    "linux-6.12": "Linux 6.12 (per-VMA locks)",
    "ours-pervma-off": "this kernel, per-VMA off",
    "ours-pervma-on": "this kernel, per-VMA on",
}
REFERENCE = "linux-6.12"
COLORS = {
    "linux-6.1": "#9e9e9e",
    "linux-6.12": "#4c72b0",
    "ours-pervma-off": "#f2a65a",
    "ours-pervma-on": "#c44e52",
}

# A column of the table: (heading, mode, threads, field).
COLUMNS = [
    ("quiet T=1", "quiet", 1, "faults_per_sec"),
    ("quiet T=2", "quiet", 2, "faults_per_sec"),
    ("writer T=1", "writer", 1, "faults_per_sec"),
    ("writer T=2", "writer", 2, "faults_per_sec"),
    ("writer ops/s T=1", "writer", 1, "writer_ops_per_sec"),
    ("writer ops/s T=2", "writer", 2, "writer_ops_per_sec"),
]

CSV_FIELDS = [
    "system", "label", "rep", "mode", "threads", "faults_per_sec", "writer_ops_per_sec",
    "faults", "writer_ops", "seconds", "minflt", "host_seconds", "error",
]


def row_from_result(system, rep, mode, threads, result, host_seconds):
    """A CSV row from the fields of one `faultbench` line (None: no line)."""
    row = dict.fromkeys(CSV_FIELDS, "")
    row.update(system=system, label=LABELS.get(system, system), rep=rep, mode=mode,
               threads=threads, host_seconds=f"{host_seconds:.1f}")
    if result is None:
        row["error"] = "no result line"
        return row
    for k in ("faults_per_sec", "writer_ops_per_sec", "faults", "writer_ops", "seconds", "minflt"):
        row[k] = result.get(k, "")
    row["error"] = result.get("error", "")
    return row


def fmt_int(v):
    return "-" if v is None else f"{round(v):,}"


def progress_line(done, total, rep, reps, label, mode, threads, result):
    head = f"[{done:>3}/{total}] rep {rep}/{reps}  {label:<28} {mode:<6} T={threads}: "
    if result is None:
        return head + "NO RESULT (see serial.log)"
    tail = f"{fmt_int(float(result['faults_per_sec']))} faults/s"
    if mode == "writer":
        tail += f", {fmt_int(float(result['writer_ops_per_sec']))} writer ops/s"
    if result.get("error"):
        tail += f"  ERROR {result['error']}"
    return head + tail


class Stat:
    """Median, min and max of one figure over the repetitions."""

    def __init__(self, values):
        self.n = len(values)
        self.median = statistics.median(values)
        self.min = min(values)
        self.max = max(values)


def stats(rows):
    """{(system, mode, threads, field): Stat} over the rows without errors."""
    values = {}
    for r in rows:
        if r["error"]:
            continue
        for field in ("faults_per_sec", "writer_ops_per_sec"):
            key = (r["system"], r["mode"], int(r["threads"]), field)
            values.setdefault(key, []).append(float(r[field]))
    return {k: Stat(v) for k, v in values.items()}


def systems_in(rows):
    seen = {r["system"] for r in rows}
    return [s for s in LABELS if s in seen] + sorted(seen - set(LABELS))


def ratio(a, b):
    """a / b of two Stats' medians; None when either is missing or b is 0."""
    if a is None or b is None or b.median == 0:
        return None
    return a.median / b.median


def fmt_ratio(r):
    return "n/a" if r is None else f"{r:.2f}"


def table(rows, st):
    """The medians table and the min..max table, as markdown lines."""
    head = "| system | " + " | ".join(c[0] for c in COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    med, spread = [head, rule], [head, rule]
    for s in systems_in(rows):
        cells = [st.get((s, m, t, f)) for _, m, t, f in COLUMNS]
        name = LABELS.get(s, s)
        med.append(f"| {name} | " + " | ".join(fmt_int(c and c.median) for c in cells) + " |")
        spread.append(f"| {name} | " + " | ".join(
            "-" if c is None else f"{fmt_int(c.min)} .. {fmt_int(c.max)} (n={c.n})" for c in cells) + " |")
    return med, spread


def ratio_lines(rows, st):
    """Ours / Linux 6.12 per figure; writer / quiet faults; T=2 / T=1."""
    lines = []
    systems = systems_in(rows)
    for s in (s for s in systems if s.startswith("ours")):
        parts = [f"{h} {fmt_ratio(ratio(st.get((s, m, t, f)), st.get((REFERENCE, m, t, f))))}"
                 for h, m, t, f in COLUMNS]
        lines.append(f"- {LABELS[s]} / {LABELS[REFERENCE]}: " + ", ".join(parts))
    for s in systems:
        parts = [f"T={t} {fmt_ratio(ratio(st.get((s, 'writer', t, 'faults_per_sec')), st.get((s, 'quiet', t, 'faults_per_sec'))))}"
                 for t in (1, 2)]
        lines.append(f"- writer-mode faults / quiet faults, {LABELS.get(s, s)}: " + ", ".join(parts))
    for s in systems:
        parts = [f"{name} {fmt_ratio(ratio(st.get((s, m, 2, f)), st.get((s, m, 1, f))))}"
                 for name, m, f in (("quiet faults", "quiet", "faults_per_sec"),
                                    ("writer faults", "writer", "faults_per_sec"),
                                    ("writer ops/s", "writer", "writer_ops_per_sec"))]
        lines.append(f"- T=2 / T=1, {LABELS.get(s, s)}: " + ", ".join(parts))
    return lines


def markdown(rows, meta):
    st = stats(rows)
    med, spread = table(rows, st)
    errors = [r for r in rows if r["error"]]
    out = [
        "# faultbench: Linux side by side",
        "",
        f"{meta.get('date', '')}, commit {meta.get('commit', '?')}; {meta.get('reps', '?')} reps x "
        f"{meta.get('seconds', '?')} s, SMP={meta.get('smp', '?')}, MEM={meta.get('mem', '?')}, "
        f"accel {meta.get('accel', '?')}, -cpu {meta.get('cpu', '?')}, {meta.get('pages', '?')} pages "
        f"per iteration; Linux: {meta.get('linux', '?')}; {meta.get('host', '?')}.",
        "",
        f"QEMU, every run (this kernel has no -initrd): `{meta.get('qemu', '?')}`",
        "",
        "Medians (faults/s; writer ops/s = map+protect+unmap cycles per s):",
        "",
        *med,
        "",
        "Min .. max over the repetitions:",
        "",
        *spread,
        "",
        "Ratios of medians:",
        "",
        *ratio_lines(rows, st),
    ]
    if errors:
        out += ["", f"{len(errors)} runs failed and are left out:", ""]
        out += [f"- rep {r['rep']} {r['system']} {r['mode']} T={r['threads']}: {r['error']}" for r in errors]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- SVG


def nice_step(top, ticks=5):
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) so that about
    `ticks` steps cover 0..top."""
    if top <= 0:
        return 1
    raw = top / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def fmt_axis(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def panel(x0, y0, w, h, title, groups, systems, st, field):
    """One bar chart: a group of bars per (mode, threads), a bar per system,
    height = median, whisker = min..max. Returns SVG elements."""
    top = max([st[(s, m, t, field)].max for (_, m, t) in groups for s in systems
               if (s, m, t, field) in st] or [1])
    step = nice_step(top)
    ymax = step * math.ceil(top / step)
    left, bottom = 56, 34
    pw, ph = w - left - 10, h - bottom - 28
    px, py = x0 + left, y0 + 28

    def y(v):
        return py + ph - ph * v / ymax

    el = [f'<text x="{x0 + w / 2}" y="{y0 + 16}" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    v = 0.0
    while v <= ymax + step / 2:
        el.append(f'<line x1="{px}" y1="{y(v):.1f}" x2="{px + pw}" y2="{y(v):.1f}" stroke="#ddd"/>')
        el.append(f'<text x="{px - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{fmt_axis(v)}</text>')
        v += step
    el.append(f'<line x1="{px}" y1="{py}" x2="{px}" y2="{py + ph}" stroke="#000"/>')
    gw = pw / len(groups)
    bw = gw * 0.8 / max(len(systems), 1)
    for gi, (name, m, t) in enumerate(groups):
        gx = px + gi * gw + gw * 0.1
        el.append(f'<text x="{px + gi * gw + gw / 2:.1f}" y="{py + ph + 16}" text-anchor="middle">{escape(name)}</text>')
        for si, s in enumerate(systems):
            c = st.get((s, m, t, field))
            if c is None:
                continue
            bx = gx + si * bw
            el.append(f'<rect class="bar" x="{bx:.1f}" y="{y(c.median):.1f}" width="{bw * 0.9:.1f}" '
                      f'height="{py + ph - y(c.median):.1f}" fill="{COLORS.get(s, "#777")}">'
                      f'<title>{escape(LABELS.get(s, s))} {escape(name)}: median {fmt_int(c.median)}, '
                      f'min {fmt_int(c.min)}, max {fmt_int(c.max)}, n={c.n}</title></rect>')
            cx = bx + bw * 0.45
            el.append(f'<path class="whisker" d="M{cx:.1f} {y(c.min):.1f}V{y(c.max):.1f}'
                      f'M{cx - 3:.1f} {y(c.min):.1f}h6M{cx - 3:.1f} {y(c.max):.1f}h6" stroke="#000"/>')
    el.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="#000"/>')
    return el


def svg(rows, meta):
    st = stats(rows)
    systems = systems_in(rows)
    faults = [(h.replace(" T=", ", T="), m, t) for h, m, t, f in COLUMNS if f == "faults_per_sec"]
    writer = [(f"T={t}", m, t) for h, m, t, f in COLUMNS if f == "writer_ops_per_sec"]
    width, height = 900, 400
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="#fff"/>',
          f'<text x="10" y="18" font-size="14" font-weight="bold">faultbench: medians, whiskers min..max '
          f'({meta.get("reps", "?")} reps x {meta.get("seconds", "?")} s, {meta.get("smp", "?")} vCPUs, '
          f'{escape(str(meta.get("accel", "?")))}, -cpu {escape(str(meta.get("cpu", "?")))})</text>']
    el += panel(0, 30, 560, 330, "faults/s", faults, systems, st, "faults_per_sec")
    el += panel(560, 30, 340, 330, "writer ops/s (writer mode)", writer, systems, st, "writer_ops_per_sec")
    for i, s in enumerate(systems):
        lx = 10 + i * 220
        el.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{COLORS.get(s, "#777")}"/>')
        el.append(f'<text x="{lx + 16}" y="{height - 12}">{escape(LABELS.get(s, s))}</text>')
    el.append("</svg>")
    return "\n".join(el) + "\n"


def write_reports(rows, meta, outdir):
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(markdown(rows, meta))
    with open(os.path.join(outdir, "faultbench.svg"), "w") as f:
        f.write(svg(rows, meta))


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: summary.py RUNS.CSV (writes summary.md and faultbench.svg next to it)")
    with open(argv[1], newline="") as f:
        rows = list(csv.DictReader(f))
    outdir = os.path.dirname(os.path.abspath(argv[1]))
    meta = {}
    if os.path.exists(os.path.join(outdir, "meta.json")):
        with open(os.path.join(outdir, "meta.json")) as f:
            meta = json.load(f)
    write_reports(rows, meta, outdir)
    with open(os.path.join(outdir, "summary.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main(sys.argv)
