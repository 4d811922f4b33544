# Entry points for people and CI. The work is done by the `tests` crate
# (qemu-run boots the kernel; test-suites runs everything `make test` counts)
# and by cargo (`cargo kbuild` builds the kernel, see .cargo/config.toml).
#
#   make run [PROG=demo ARGS=..]  boot with SMP=4, run a user program, exit by itself
#   make ktest SMP=N MEM=M ACCEL=tcg|kvm [KTEST=a,b] [APPEND="k=v"] [TIMEOUT=s]
#   make test                     host tests, loom models, must-fail checks, kernel tests at SMP=1, 2, 4 and 8
#   make lint                     clippy (host, kernel, user targets) and rustfmt, as CI runs them
#   make fuzz SEED=S SECONDS=T    the fuzzer for T seconds [MODES=syscalls,vm,flags,code] [CHILDREN=N]
#   make soak [SOAK_FAULTS=N SOAK_CYCLES=N SOAK_SECONDS=T SOAK_SMP=8]  the soak (docs/mm.md)
#   make gdb                      QEMU waiting for GDB, and GDB with the symbols
#   make grade LAB=name           grade a lab (docs/labs/); make lab-start LAB=name begins one
#   make loom / make seed         the loom models alone / the must-fail seed check alone
#
# RELEASE=1 boots the release kernel (run, ktest, gdb). QEMU=, QEMU_ARGS= and
# CPU= override the emulator binary, add arguments, or change the CPU model;
# KERNEL= boots another ELF (it is still built first). TCG_THREAD=multi|single
# forces one host thread per CPU or one for all (default: multi when SMP is at
# most the host CPU count; oversubscribed multi-threaded TCG crawls).

SMP     ?= 4
MEM     ?= 256M
ACCEL   ?= tcg
# A whole kernel-test run at SMP=8 takes about 2 minutes on a quiet host
# (one host thread for all CPUs); the limit leaves room for a slow or busy
# one, and a hang still fails, naming the test that was running.
TIMEOUT ?= 600
KTEST   ?=
# make run: the user program to run (user/src/bin/NAME.rs) and its arguments.
PROG    ?= demo
ARGS    ?=
APPEND  ?=
# qemu-run reads these from the environment.
export SMP MEM ACCEL TCG_THREAD TIMEOUT KTEST APPEND QEMU QEMU_ARGS CPU

TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
PROFILE    := $(if $(RELEASE),release,debug)
KERNEL     ?= $(TARGET_DIR)/x86_64-target/$(PROFILE)/kernel
HOST_BIN   := $(TARGET_DIR)/debug
KBUILD     := cargo kbuild $(if $(RELEASE),--release)
# Test kernels (ktest, fuzz, soak, test) carry the race-injection points
# and the replays; `make run` and benchmarks do not (docs/mm.md).
KBUILD_TEST := $(KBUILD) --features race-inject

.PHONY: help run ktest test gdb fault-insns bench bench-linux clippy lint fmt fmt-check deps fuzz soak \
	grade lab-start labs loom seed

help:
	@sed -n '5,19p' Makefile | sed 's/^# \{0,1\}//'

deps:
	@scripts/ensure-deps.sh

# Steps are recipe lines, not prerequisites, so `make -j` keeps their order.
run:
	@scripts/ensure-deps.sh
	$(KBUILD)
	cargo build -p tests --bins
	APPEND="prog=$(PROG) $(APPEND) -- $(ARGS)" $(HOST_BIN)/qemu-run --mode run $(KERNEL)

ktest:
	@scripts/ensure-deps.sh
	$(KBUILD_TEST)
	cargo build -p tests --bins
	$(HOST_BIN)/qemu-run --mode test $(KERNEL)

test:
	@scripts/ensure-deps.sh
	cargo build -p tests --bins
	$(HOST_BIN)/test-suites

# The labs (docs/labs/README.md). `make grade LAB=name` grades the working
# tree: KTAP and a line `score NAME: GOT/TOTAL PASS|FAIL`, the commands'
# output in target/grade/NAME.log. `make lab-start LAB=name` turns the
# working tree into the lab's starting point (do it on a fresh branch).
LAB ?=

labs:
	cargo build -q -p tests --bins
	$(HOST_BIN)/grade --list

grade:
	@scripts/ensure-deps.sh
	cargo build -p tests --bins
	@test -n "$(LAB)" || { echo "usage: make grade LAB=name; the labs:"; $(HOST_BIN)/grade --list; exit 2; }
	$(HOST_BIN)/grade $(LAB)

lab-start:
	cargo build -p tests --bins
	@test -n "$(LAB)" || { echo "usage: make lab-start LAB=name; the labs:"; $(HOST_BIN)/grade --list; exit 2; }
	$(HOST_BIN)/grade --start $(LAB)

# The loom models alone (what `make test` runs as its loom suite), in their
# own target directory: `--cfg loom` would otherwise rebuild everything.
LOOM_ENV := RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=$(TARGET_DIR)/loom

loom:
	$(LOOM_ENV) cargo test -p mm --release --test loom --test range_tree_loom

# The must-fail check alone: with the seed review's v6 code put back
# (feature seed-v6-ordering), its loom model must fail by itself; a build
# error or a pass fails this target.
SEED_TEST := loom_seed_detach_race

seed:
	@mkdir -p $(TARGET_DIR)
	$(LOOM_ENV) cargo test -p mm --release --features seed-v6-ordering --test loom \
	  -- --exact $(SEED_TEST) 2>&1 | tee $(TARGET_DIR)/seed.log; true
	@if grep -q '^test $(SEED_TEST) \.\.\. FAILED' $(TARGET_DIR)/seed.log; then \
	  echo "seed: $(SEED_TEST) failed with the seed's v6 ordering, as it must"; \
	else \
	  echo "seed check FAILED: $(SEED_TEST) did not fail by itself with the seed's v6 ordering"; exit 1; \
	fi

# The fuzzer (docs/fuzzing.md): the kernel test fuzz_short, run for SECONDS
# (or for CHILDREN children) from SEED; the guest's clock bounds the run and
# qemu-run's timeout is SECONDS plus a margin for boot and the last child.
SEED     ?= 1
SECONDS  ?= 60
MODES    ?= syscalls,vm,flags,code
CHILDREN ?=
FUZZ_LIMIT := $(if $(CHILDREN),fuzz.children=$(CHILDREN),fuzz.seconds=$(SECONDS))

fuzz:
	@scripts/ensure-deps.sh
	$(KBUILD_TEST)
	cargo build -p tests --bins
	KTEST=fuzz_short TIMEOUT=$$(( $(SECONDS) + 300 )) \
	  APPEND="fuzz.seed=$(SEED) fuzz.modes=$(MODES) $(FUZZ_LIMIT) $(APPEND)" \
	  $(HOST_BIN)/qemu-run --mode test $(KERNEL)

# The soak (docs/mm.md): `soak` processes at SMP=8 until both targets are
# reached; reaching SOAK_SECONDS first fails. Measured under TCG on two host
# cores: see docs/mm.md for the fault rate and the expected wall time.
SOAK_FAULTS  ?= 10000000
SOAK_CYCLES  ?= 100000
SOAK_SECONDS ?= 14400
SOAK_SMP     ?= 8

soak:
	@scripts/ensure-deps.sh
	$(KBUILD_TEST)
	cargo build -p tests --bins
	SMP=$(SOAK_SMP) KTEST=soak_short TIMEOUT=$$(( $(SOAK_SECONDS) + 600 )) \
	  APPEND="soak.faults=$(SOAK_FAULTS) soak.cycles=$(SOAK_CYCLES) soak.seconds=$(SOAK_SECONDS) $(APPEND)" \
	  $(HOST_BIN)/qemu-run --mode test $(KERNEL)

gdb:
	@scripts/ensure-deps.sh
	$(KBUILD)
	cargo build -p tests --bins
	scripts/gdb.sh $(HOST_BIN)/qemu-run $(KERNEL) $(TARGET_DIR)/gdb-serial.log

# The instructions of a few user page faults, per function, single-stepped
# under GDB in the release kernel (gdb/count_fault.py): a figure the host's
# load cannot change.
fault-insns:
	@scripts/ensure-deps.sh
	cargo kbuild --release
	cargo build -p tests --bins
	scripts/fault-insns.sh $(HOST_BIN)/qemu-run $(BENCH_KERNEL) $(TARGET_DIR)/fault-insns-serial.log

# Every figure the project records (docs/benchmarks.md): the kernel's
# (release build, lockdep off; `bench NAME VALUE UNIT` lines) at SMP=1 and
# SMP=4, then the mm crate's host benchmarks.
BENCH_KERNEL := $(TARGET_DIR)/x86_64-target/release/kernel

bench:
	@scripts/ensure-deps.sh
	cargo kbuild --release
	cargo build -p tests --bins
	$(HOST_BIN)/qemu-run --mode run --smp 1 --append "mode=bench $(APPEND)" $(BENCH_KERNEL)
	$(HOST_BIN)/qemu-run --mode run --smp 4 --append "mode=bench $(APPEND)" $(BENCH_KERNEL)
	cargo run --release -p mm --example mmbench
	cargo run --release -p mm --example tree_bench

# faultbench side by side with Debian's Linux 6.1 and 6.12, all in the same
# QEMU (bench/README.md). Its own defaults: REPS=5 SECONDS=5 SMP=2 MEM=1G,
# CPU=qemu64; ACCEL as everywhere; LINUX_APPEND= adds to Linux's command
# line. Results: target/bench-linux/results/.
bench-linux:
	@scripts/ensure-deps.sh
	cargo kbuild --release
	python3 bench/bench_linux.py --kernel $(BENCH_KERNEL) \
	    --reps $(or $(REPS),5) --seconds $(or $(SECONDS),5) \
	    --smp $(if $(filter file,$(origin SMP)),2,$(SMP)) \
	    --mem $(if $(filter file,$(origin MEM)),1G,$(MEM)) \
	    --accel $(ACCEL) --cpu $(or $(CPU),qemu64) --qemu $(or $(QEMU),qemu-system-x86_64) \
	    $(if $(LINUX_APPEND),--linux-append "$(LINUX_APPEND)")

# Lints, warnings as errors: the host crates (tests included), the kernel
# for its own target, and the user programs for theirs. The workspaces deny
# unsafe blocks without a SAFETY comment (Cargo.toml, user/Cargo.toml).
USER_CLIPPY := cargo clippy --manifest-path user/Cargo.toml --release \
	--target user/x86_64-user.json -Zjson-target-spec \
	-Zbuild-std=core,alloc,compiler_builtins -Zbuild-std-features=compiler-builtins-mem \
	--target-dir $(TARGET_DIR)/user-clippy

clippy:
	@scripts/ensure-deps.sh
	cargo clippy -p mm -p tests -p abi --all-targets -- -D warnings
	cargo clippy -p mm --features race-inject -- -D warnings
	cargo kclippy -- -D warnings
	cargo kclippy --features race-inject -- -D warnings
	$(USER_CLIPPY) -- -D warnings

# What CI checks besides `make test`: lints and formatting.
lint: clippy fmt-check

fmt:
	cargo fmt --all
	cargo fmt --all --manifest-path user/Cargo.toml

fmt-check:
	cargo fmt --all -- --check
	cargo fmt --all --manifest-path user/Cargo.toml -- --check
