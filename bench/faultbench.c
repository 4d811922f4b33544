/*
 * faultbench.c: the page-fault throughput benchmark of
 * user/src/bin/faultbench.rs, for Linux, so one script compares the two.
 * Same options, same work, same output line.
 *
 * Each worker thread loops for D seconds:
 *     p = mmap(P pages, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)
 *     for each 4 KiB page: p[i * 4096] = 1      (one write fault per page)
 *     munmap(p)
 * and counts the pages it touched (= faults).
 *
 * -m quiet : only the workers run.
 * -m writer: one extra thread loops mmap(16 pages) / mprotect(PROT_READ) /
 *            munmap on a small unrelated region, so it takes the address
 *            space's write lock (mmap_lock) three times per op, all the time.
 * -m spinner: one extra thread only spins in user mode (no system call, no
 *            memory): the control for writer mode.
 *
 * Every thread maps at its own *hint* address (not MAP_FIXED): the writer at
 * 16 TiB, worker i at 16 TiB + (i + 1) GiB, so no two threads' mappings
 * merge. -n drops the hints and lets the kernel place every mapping.
 *
 * Differences from the Rust program, each forced by Linux: transparent huge
 * pages are disabled for the process (PR_SET_THP_DISABLE) so every touched
 * page is one fault; minflt is getrusage()'s minor-fault delta (the Rust
 * program reads the kernel's fault counters); -v (the per-VMA switch of this
 * project's kernel) has no Linux counterpart, so it is refused rather than
 * ignored; there is no second `faultbench_kernel` line.
 *
 * Build: gcc -O2 -static -pthread -o faultbench faultbench.c
 * Usage: faultbench [-t threads] [-p pages] [-d seconds] [-m quiet|writer|spinner] [-n] [-v on|off]
 * Output (one line):
 *   faultbench mode=writer threads=2 pages=2048 faults=N seconds=S
 *     faults_per_sec=F writer_ops=W writer_ops_per_sec=X minflt=M [error=ENAME]
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#endif

#define PAGE 4096UL
#define WRITER_PAGES 16UL
#define HINT_BASE 0x100000000000UL /* 16 TiB */
#define HINT_STRIDE (1UL << 30)    /* 1 GiB per thread */

/* Plain atomic calls are sequentially consistent; the two named orderings
 * match the Rust program's. */
static atomic_int go;    /* 0 = wait, 1 = run */
static atomic_int stop;  /* set by main after D seconds */
static atomic_int ready; /* threads that reached the start line */
static unsigned long npages = 2048;
static int use_hints = 1;

struct thread {
    pthread_t tid;
    int idx;
    unsigned long faults;
    unsigned long iters;
    int err;
    char pad[64]; /* keeps each thread's counters off its neighbour's line */
};

static void *hint_for(int idx)
{
    return use_hints ? (void *)(HINT_BASE + (unsigned long)idx * HINT_STRIDE)
                     : NULL;
}

static void wait_start(void)
{
    atomic_fetch_add(&ready, 1);
    /* Acquire pairs with main's release store of `go`. */
    while (!atomic_load_explicit(&go, memory_order_acquire))
        sched_yield();
}

static void *worker_fn(void *arg)
{
    struct thread *w = arg;
    size_t len = npages * PAGE;
    void *hint = hint_for(w->idx + 1);
    unsigned long faults = 0, iters = 0;

    wait_start();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        volatile char *p = mmap(hint, len, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            w->err = errno;
            break;
        }
        for (unsigned long i = 0; i < npages; i++)
            p[i * PAGE] = 1;
        faults += npages;
        if (munmap((void *)p, len) != 0) {
            w->err = errno;
            break;
        }
        iters++;
    }
    w->faults = faults;
    w->iters = iters;
    return NULL;
}

static void *writer_fn(void *arg)
{
    struct thread *w = arg;
    size_t len = WRITER_PAGES * PAGE;
    void *hint = hint_for(0);
    unsigned long ops = 0;

    wait_start();
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        void *p = mmap(hint, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            w->err = errno;
            break;
        }
        if (mprotect(p, len, PROT_READ) != 0 || munmap(p, len) != 0) {
            w->err = errno;
            break;
        }
        ops++;
    }
    w->iters = ops;
    return NULL;
}

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static long minflt_now(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_minflt;
}

/* count / (ns / 1e9), rounded to nearest, as the Rust program's per_second. */
static uint64_t per_second(uint64_t count, uint64_t ns)
{
    if (ns == 0)
        return 0;
    return (uint64_t)(((unsigned __int128)count * 1000000000u + ns / 2) / ns);
}

/* Decimal or 0x-hex, no sign or spaces (the Rust program's parse_u64). */
static int parse_u64(const char *s, uint64_t *out)
{
    int base = 10;
    char *end;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (base == 16 ? !isxdigit((unsigned char)*s) : !isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    *out = strtoull(s, &end, base);
    return (errno || *end) ? -1 : 0;
}

/* "5" or "0.25" seconds into nanoseconds, without floating point. */
static int parse_seconds_ns(const char *s, uint64_t *out)
{
    uint64_t whole = 0, frac_ns = 0, scale = 100000000;
    const char *dot = strchr(s, '.');
    size_t wlen = dot ? (size_t)(dot - s) : strlen(s);
    const char *frac = dot ? dot + 1 : "";

    if (wlen == 0 && *frac == '\0')
        return -1;
    for (size_t i = 0; i < wlen; i++) {
        if (s[i] < '0' || s[i] > '9' || whole > (UINT64_MAX - 9) / 10)
            return -1;
        whole = whole * 10 + (uint64_t)(s[i] - '0');
    }
    for (; *frac; frac++, scale /= 10) {
        if (*frac < '0' || *frac > '9')
            return -1;
        frac_ns += (uint64_t)(*frac - '0') * scale; /* digits past 9 add 0 */
    }
    if (whole > UINT64_MAX / 1000000000u)
        return -1;
    *out = whole * 1000000000u + frac_ns;
    return *out < whole ? -1 : 0;
}

/* The control thread of -m spinner: busy in user mode, sharing nothing with
 * the kernel or the workers but the start and stop flags. */
static void *spinner_fn(void *arg)
{
    volatile unsigned long spins = 0;

    (void)arg;
    wait_start();
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        spins++;
    return NULL;
}

static int usage(void)
{
    printf("usage: faultbench [-t threads] [-p pages] [-d seconds] [-m quiet|writer|spinner] [-n] [-v on|off]\n"
           "  -t  worker threads (default 1)\n"
           "  -p  4 KiB pages mapped+touched per iteration (default 2048 = 8 MiB)\n"
           "  -d  duration in seconds (default 5)\n"
           "  -m  quiet: workers only; writer: + one mmap/mprotect/munmap thread;\n"
           "      spinner: + one thread spinning in user mode (the control)\n"
           "  -n  no address hints (let the kernel place every mapping)\n"
           "  -v  per-VMA fault path on or off for this run (not on Linux: refused)\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t nthreads = 1, duration_ns = 5000000000u, v;
    int writer = 0, spinner = 0, opt, want_per_vma = 0;

    while ((opt = getopt(argc, argv, "t:p:d:m:nhv:")) != -1) {
        switch (opt) {
        case 't': nthreads = parse_u64(optarg, &v) ? 0 : v; break;
        case 'p': npages = parse_u64(optarg, &v) ? 0 : v; break;
        case 'd': duration_ns = parse_seconds_ns(optarg, &v) ? 0 : v; break;
        case 'm':
            if (!strcmp(optarg, "quiet")) writer = spinner = 0;
            else if (!strcmp(optarg, "writer")) writer = 1, spinner = 0;
            else if (!strcmp(optarg, "spinner")) spinner = 1, writer = 0;
            else return usage();
            break;
        case 'n': use_hints = 0; break;
        case 'v':
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return usage();
            want_per_vma = 1;
            break;
        default: return usage();
        }
    }
    if (optind != argc || nthreads < 1 || nthreads > 1000 || npages < 1 || duration_ns == 0)
        return usage();
    if (want_per_vma) {
        printf("faultbench: SET_PER_VMA: Linux has no per-VMA switch\n");
        return 1;
    }

    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0); /* best effort */

    int total = (int)nthreads + writer + spinner;
    struct thread *ws = calloc(total, sizeof(*ws));
    if (!ws) {
        printf("thread_spawn: ENOMEM\n");
        return 1;
    }
    for (int i = 0; i < total; i++) {
        ws[i].idx = i;
        int rc = pthread_create(&ws[i].tid, NULL,
                                i < (int)nthreads ? worker_fn
                                : writer          ? writer_fn
                                                  : spinner_fn,
                                &ws[i]);
        if (rc) {
            printf("thread_spawn: %s\n", strerrorname_np(rc));
            return 1;
        }
    }
    while (atomic_load(&ready) < total)
        usleep(1000);

    long flt0 = minflt_now();
    uint64_t t0 = clock_ns();
    /* Release pairs with the acquire in wait_start. */
    atomic_store_explicit(&go, 1, memory_order_release);

    struct timespec d = { (time_t)(duration_ns / 1000000000u),
                          (long)(duration_ns % 1000000000u) };
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
    atomic_store(&stop, 1);

    for (int i = 0; i < total; i++)
        pthread_join(ws[i].tid, NULL);
    uint64_t ns = clock_ns() - t0;
    long flt1 = minflt_now();

    unsigned long faults = 0, wops = 0;
    int err = 0;
    for (int i = 0; i < (int)nthreads; i++) {
        faults += ws[i].faults;
        if (ws[i].err) err = ws[i].err;
    }
    if (writer) {
        wops = ws[nthreads].iters;
        if (ws[nthreads].err) err = ws[nthreads].err;
    }

    uint64_t ms = (ns + 500000) / 1000000; /* seconds to 3 decimals, rounded */
    printf("faultbench mode=%s threads=%lu pages=%lu faults=%lu seconds=%lu.%03lu "
           "faults_per_sec=%lu writer_ops=%lu writer_ops_per_sec=%lu minflt=%ld%s%s\n",
           writer ? "writer" : spinner ? "spinner" : "quiet", (unsigned long)nthreads, npages, faults,
           (unsigned long)(ms / 1000), (unsigned long)(ms % 1000),
           (unsigned long)per_second(faults, ns), wops,
           (unsigned long)per_second(wops, ns),
           (flt0 >= 0 && flt1 >= 0) ? flt1 - flt0 : -1L,
           err ? " error=" : "", err ? strerrorname_np(err) : "");
    fflush(stdout);
    return err ? 1 : 0;
}
