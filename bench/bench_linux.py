#!/usr/bin/env python3
"""Linux side by side: faultbench on Debian's Linux 6.1 and 6.12 and on this
kernel (per-VMA off and on), in the same QEMU, repetitions interleaved.

    python3 bench/bench_linux.py --kernel target/x86_64-target/release/kernel

(`make bench-linux` runs it after building the release kernel.) Steps:

1. fetch: `apt-get download` of Debian's cloud kernel images (6.1 from
   bookworm, 6.12 from trixie) and busybox-static. A suite the machine's apt
   does not know is read through a throw-away apt state under the work
   directory (its own sources.list, lists and cache), so no system setting
   changes. The .debs are kept: a second run downloads nothing.
2. build: bench/faultbench.c compiled static with gcc, and an initramfs
   (busybox, bench/guest-init.sh as /init, faultbench) written by this script.
3. run: every system boots with the same QEMU machine, accelerator, CPU
   model, vCPU count and memory. Repetition 1 of every system, then
   repetition 2, ...; one line of progress per faultbench run.
4. report: runs.csv, summary.md and faultbench.svg (bench/summary.py).

Only the Python standard library, apt-get, dpkg-deb, gcc and QEMU are used.
"""

import argparse
import csv
import datetime
import glob
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# The figures of one system: every mode at every thread count.
RUNS = [("quiet", 1), ("quiet", 2), ("writer", 1), ("writer", 2)]


class Linux:
    """A Debian kernel package: its version series, suite and name pattern."""

    def __init__(self, key, series, suite, pattern):
        self.key = key
        self.series = series
        self.suite = suite
        self.pattern = re.compile(pattern)


LINUXES = [
    # Every fault takes mmap_lock.
    Linux("linux-6.1", "6.1", "bookworm", r"^linux-image-6\.1\.0-\d+-cloud-amd64-unsigned$"),
    # Per-VMA locks (the rw-semaphore version before the reference count).
    # Debian 13's build (bookworm-security's +deb12 6.12 is not the one).
    Linux("linux-6.12", "6.12", "trixie", r"^linux-image-6\.12\.\d+\+deb13-cloud-amd64-unsigned$"),
]
BUSYBOX_SUITE = "bookworm"


def log(msg):
    print(f"bench-linux: {msg}", flush=True)


def run(cmd, **kw):
    """Runs a command, echoing it; raises with its output if it fails."""
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- fetching


def debian_mirror():
    """The Debian mirror the machine's apt already uses (not the security one)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    uris = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            uris += re.findall(r"^URIs:\s*(\S+)", f.read(), re.M)
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as f:
            uris += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", f.read(), re.M)
    for uri in uris:
        if "security" not in uri and re.search(r"/debian/?$", uri):
            return uri
    sys.exit("bench-linux: no Debian mirror in /etc/apt; set DEBIAN_MIRROR=http://.../debian")


class Apt:
    """apt-get and apt-cache with either the machine's state or a throw-away
    one for a single suite (nothing outside `root` is written)."""

    def __init__(self, root=None, suite=None):
        # apt drops to the `_apt` user to download, who may not be able to
        # write into this checkout; this command only.
        self.opts = ["-o", "APT::Sandbox::User=root"] if os.getuid() == 0 else []
        if root is None:
            return
        root = os.path.abspath(root)
        for d in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        sources = os.path.join(root, "etc/sources.list")
        with open(sources, "w") as f:
            f.write(f"deb [signed-by={KEYRING}] {debian_mirror()} {suite} main\n")
        self.opts += [
            "-o", f"Dir::Etc::SourceList={sources}",
            "-o", f"Dir::Etc::SourceParts={root}/etc/sources.list.d",
            "-o", f"Dir::Etc::PreferencesParts={root}/etc/preferences.d",
            "-o", f"Dir::State={root}",
            "-o", f"Dir::State::Lists={root}/lists",
            "-o", f"Dir::Cache={root}/cache",
        ]
        if not glob.glob(os.path.join(root, "lists", "*Packages*")):
            run(["apt-get", *self.opts, "update"])

    def names(self, prefix):
        out = subprocess.run(["apt-cache", *self.opts, "pkgnames", prefix],
                             capture_output=True, text=True).stdout
        return out.split()

    def download(self, name, dest):
        run(["apt-get", *self.opts, "download", name], cwd=dest)


def newest(names, pattern):
    """The highest version among package names matching `pattern`."""
    def key(n):
        return [int(x) for x in re.findall(r"\d+", n)]
    names = sorted((n for n in names if pattern.match(n)), key=key)
    return names[-1] if names else None


def fetch_deb(work, prefix, pattern, suite):
    """A .deb of the newest package matching `pattern`; downloaded once."""
    dl = os.path.join(work, "dl")
    os.makedirs(dl, exist_ok=True)
    cached = newest([os.path.basename(p).split("_")[0] for p in glob.glob(f"{dl}/*.deb")], pattern)
    if cached:
        return glob.glob(f"{dl}/{cached}_*.deb")[0]
    name = newest(Apt().names(prefix), pattern)
    apt = Apt()
    if name is None:
        log(f"the machine's apt knows no {pattern.pattern}; reading {suite} into a throw-away apt state")
        apt = Apt(os.path.join(work, "apt", suite), suite)
        name = newest(apt.names(prefix), pattern)
    if name is None:
        sys.exit(f"bench-linux: no package matches {pattern.pattern} in {suite}")
    apt.download(name, dl)
    return glob.glob(f"{dl}/{name}_*.deb")[0]


def extract(deb, member_glob, dest):
    """Copies the first file matching `member_glob` out of a .deb."""
    with tempfile.TemporaryDirectory(dir=os.path.dirname(dest)) as x:
        run(["dpkg-deb", "-x", deb, x])
        found = sorted(glob.glob(os.path.join(x, member_glob)))
        if not found:
            sys.exit(f"bench-linux: {deb} has no {member_glob}")
        shutil.copy(found[0], dest + ".tmp")
        os.replace(dest + ".tmp", dest)


def fetch_all(work, wanted):
    """Kernel images (of the systems in `wanted`) and busybox, extracted
    once into work/."""
    kernels = {}
    for lx in (lx for lx in LINUXES if lx.key in wanted):
        image = os.path.join(work, f"vmlinuz-{lx.series}")
        if not os.path.exists(image):
            deb = fetch_deb(work, f"linux-image-{lx.series}.", lx.pattern, lx.suite)
            with open(image + ".package", "w") as f:
                f.write(os.path.basename(deb).removesuffix(".deb") + "\n")
            extract(deb, "boot/vmlinuz-*", image)
        kernels[lx.key] = image
    busybox = os.path.join(work, "busybox")
    if not os.path.exists(busybox):
        deb = fetch_deb(work, "busybox-static", re.compile(r"^busybox-static$"), BUSYBOX_SUITE)
        extract(deb, "bin/busybox", busybox)
    return kernels, busybox


# ---------------------------------------------------------------- initramfs


def cpio_newc(entries):
    """A cpio archive in the kernel's `newc` format. `entries` are
    (name, mode, data, rdev) with `mode` including the file type."""
    out = io.BytesIO()

    def pad4():
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data, rdev) in enumerate(entries + [("TRAILER!!!", 0, b"", (0, 0))], 1):
        fields = [ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
        out.write(b"070701" + "".join(f"{v:08x}" for v in fields).encode())
        out.write(name.encode() + b"\0")
        pad4()
        out.write(data)
        pad4()
    return out.getvalue()


def build_initramfs(work, busybox):
    """faultbench (static, from bench/faultbench.c) and the initramfs."""
    fb = os.path.join(work, "faultbench")
    run(["gcc", "-O2", "-static", "-pthread", "-Wall", "-Wextra", "-o", fb,
         os.path.join(HERE, "faultbench.c")])

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    exe, d = 0o100755, 0o040755
    entries = [
        ("bin", d, b"", (0, 0)), ("dev", d, b"", (0, 0)),
        ("proc", d, b"", (0, 0)), ("sys", d, b"", (0, 0)),
        # The kernel opens /dev/console for init's output before init runs.
        ("dev/console", 0o020600, b"", (5, 1)),
        ("bin/busybox", exe, read(busybox), (0, 0)),
        ("init", exe, read(os.path.join(HERE, "guest-init.sh")), (0, 0)),
        ("faultbench", exe, read(fb), (0, 0)),
    ]
    path = os.path.join(work, "initramfs.gz")
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(cpio_newc(entries))
    return path


# ---------------------------------------------------------------- running


RESULT = re.compile(r"faultbench mode=\S+ .*")


def parse_result(line):
    """The key=value fields of a `faultbench mode=...` line, or None."""
    m = RESULT.search(line)
    if not m:
        return None
    fields = dict(kv.split("=", 1) for kv in m.group(0).split()[1:] if "=" in kv)
    return fields if "faults_per_sec" in fields else None


class System:
    def __init__(self, key, label, kernel, initrd, append):
        self.key, self.label = key, label
        self.kernel, self.initrd, self.append = kernel, initrd, append


SYSTEMS = ["linux-6.1", "linux-6.12", "ours-pervma-off", "ours-pervma-on"]


def systems(args, linux_kernels, initrd):
    """The systems to run, in `SYSTEMS` order; `args.systems` picks them."""
    out = []
    for key in ("linux-6.1", "linux-6.12"):
        if key in linux_kernels:
            out.append(System(key, summary.LABELS[key], linux_kernels[key], initrd,
                              ("console=ttyS0 quiet panic=-1 " + args.linux_append).strip()))
    # `phases=on`: this kernel times the phases of map/protect/unmap and of
    # faults and prints them (`phase NAME ...` lines in serial.log).
    ours = "mode=run prog=faultbench" + (" phases=on" if getattr(args, "phases", False) else "")
    for key, extra in (("ours-pervma-off", " pervma=off"), ("ours-pervma-on", "")):
        if key in getattr(args, "systems", SYSTEMS):
            out.append(System(key, summary.LABELS[key], args.kernel, None, ours + extra))
    return out


def accel_arg(accel, smp):
    """`tcg` gets one host thread per vCPU unless vCPUs outnumber host CPUs
    (oversubscribed multi-threaded TCG crawls), as `make run` chooses."""
    if accel == "tcg":
        return "tcg,thread=" + ("multi" if smp <= (os.cpu_count() or 1) else "single")
    return accel


def qemu_argv(args, system, append):
    """The one QEMU command line every system shares; only kernel, initrd
    and command line differ. The debug-exit device lets this kernel end
    QEMU; Linux ignores it."""
    argv = [args.qemu, "-machine", "q35", "-accel", accel_arg(args.accel, args.smp),
            "-cpu", args.cpu, "-smp", str(args.smp), "-m", args.mem,
            "-kernel", system.kernel]
    if system.initrd:
        argv += ["-initrd", system.initrd]
    return argv + ["-append", append, "-serial", "stdio", "-display", "none",
                   "-monitor", "none", "-no-reboot",
                   "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def boot(args, system, runs, logf):
    """Boots `system` once for `runs` (mode, threads) and returns their result
    fields (None for a run with no result line), and the host seconds."""
    if system.initrd:
        spec = ",".join(f"{m}:{t}" for m, t in runs)
        append = f"{system.append} fb_runs={spec} fb_dur={args.seconds} fb_pages={args.pages}"
    else:
        (m, t), = runs
        append = f"{system.append} -- -m {m} -t {t} -d {args.seconds} -p {args.pages}"
    argv = qemu_argv(args, system, append)
    logf.write("$ " + " ".join(argv) + "\n")
    logf.flush()
    timeout = 300 + len(runs) * (3 * args.seconds + 30)
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        out, note = p.stdout, f"# qemu exit status {p.returncode}"
    except subprocess.TimeoutExpired as e:
        out, note = e.stdout or b"", f"# killed after {timeout} s"
    wall = time.monotonic() - t0
    text = out.decode(errors="replace").replace("\r", "")
    logf.write(text + note + f", {wall:.1f} s\n")
    found = [r for r in map(parse_result, text.splitlines()) if r]
    results = []
    for m, t in runs:
        match = next((r for r in found if r.get("mode") == m and r.get("threads") == str(t)), None)
        results.append(match)
    return results, wall


def package_of(image):
    """The .deb an extracted kernel image came from."""
    try:
        with open(image + ".package") as f:
            return f.read().strip()
    except OSError:
        return os.path.basename(image)


def commit_of(path):
    try:
        return subprocess.run(["git", "-C", path, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def bench(args, systems_, outdir):
    """Every system, every run, REPS times; each run is one fresh boot.
    The order interleaves as finely as it can: for each repetition, for each
    (mode, threads), every system in turn, so a slow spell on the host hits
    all systems alike."""
    rows = []
    total = args.reps * len(RUNS) * len(systems_)
    done = 0
    with open(os.path.join(outdir, "serial.log"), "w") as logf:
        for rep in range(1, args.reps + 1):
            for m, t in RUNS:
                for s in systems_:
                    logf.write(f"# rep {rep} {s.key} {m} T={t}\n")
                    (result,), wall = boot(args, s, [(m, t)], logf)
                    done += 1
                    rows.append(summary.row_from_result(s.key, rep, m, t, result, wall))
                    print(summary.progress_line(done, total, rep, args.reps, s.label, m, t, result)
                          + f"  [{wall:.0f} s]", flush=True)
    return rows


def need_tools(qemu):
    """Says what to install rather than failing halfway."""
    missing = {tool: pkg for tool, pkg in (("apt-get", "apt"), ("apt-cache", "apt"), ("dpkg-deb", "dpkg"),
                                           ("gcc", "gcc libc6-dev"), (qemu, "qemu-system-x86"))
               if not shutil.which(tool)}
    if missing:
        sys.exit(f"bench-linux: missing {', '.join(missing)}; install with: "
                 f"apt-get install {' '.join(sorted(set(missing.values())))}")


def main():
    root = os.path.dirname(HERE)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default=os.path.join(target, "x86_64-target/release/kernel"),
                    help="this project's kernel ELF (the release build)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5, help="seconds per faultbench run")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", default="1G")
    ap.add_argument("--accel", default="tcg", help="tcg, kvm, or a full -accel value")
    ap.add_argument("--cpu", default="qemu64", help="QEMU CPU model for every system")
    ap.add_argument("--pages", type=int, default=2048, help="pages per faultbench iteration")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--linux-append", default="", help="more Linux command line (e.g. mitigations=off)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated subset of " + ",".join(SYSTEMS) + " (default: all)")
    ap.add_argument("--phases", action="store_true",
                    help="this kernel prints its per-phase times (phase lines in serial.log)")
    ap.add_argument("--work", default=os.environ.get("WORK") or os.path.join(target, "bench-linux"),
                    help="downloads, guest files and results")
    args = ap.parse_args()
    if args.reps < 1 or args.seconds < 1 or args.smp < 1:
        ap.error("REPS, SECONDS and SMP must be at least 1")
    args.systems = [s for s in args.systems.split(",") if s]
    if not args.systems or any(s not in SYSTEMS for s in args.systems):
        ap.error(f"--systems: a comma-separated subset of {','.join(SYSTEMS)}")
    if not os.path.exists(args.kernel):
        sys.exit(f"bench-linux: no kernel at {args.kernel} (cargo kbuild --release)")

    need_tools(args.qemu)
    args.kernel = os.path.abspath(args.kernel)
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    kernels, busybox = fetch_all(work, args.systems)
    initrd = build_initramfs(work, busybox) if kernels else None
    sys_ = systems(args, kernels, initrd)

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(work, "results", stamp)
    os.makedirs(outdir)
    example = " ".join(qemu_argv(args, System("", "", "KERNEL", "INITRD", ""), "CMDLINE"))
    log(f"{args.reps} reps x {len(sys_)} systems x {len(RUNS)} runs of {args.seconds} s; "
        f"log: {outdir}/serial.log")
    log(f"QEMU: {example}")
    load0 = os.getloadavg()[0]
    rows = bench(args, sys_, outdir)
    host = f"{os.cpu_count()} host CPUs, load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end"

    meta = {
        "date": stamp, "commit": commit_of(root), "qemu": example, "host": host,
        "reps": args.reps, "seconds": args.seconds, "smp": args.smp, "mem": args.mem,
        "accel": accel_arg(args.accel, args.smp), "cpu": args.cpu, "pages": args.pages,
        "linux": ", ".join(package_of(k) for k in kernels.values()),
    }
    with open(os.path.join(outdir, "runs.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=summary.CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    summary.write_reports(rows, meta, outdir)
    latest = os.path.join(work, "results", "latest")
    if os.path.islink(latest):
        os.remove(latest)
    if not os.path.exists(latest):
        os.symlink(stamp, latest)
    with open(os.path.join(outdir, "summary.md")) as f:
        print(f.read())
    log(f"wrote {outdir}/runs.csv, summary.md, faultbench.svg (also {latest}/)")
    failed = sum(1 for r in rows if r["error"])
    if failed:
        log(f"{failed} of {len(rows)} runs gave no result; see serial.log")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
