/* The machine probes return finite positive figures, quickly, with and without a pool; the CPU
 * topology reader and the thread placement, on fake sysfs trees (an RK3588, its variants, an
 * SMT x86, broken trees) and on this machine. */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "runtime/probe.h"

/* ---------------------------------------------------------------- fake sysfs trees */

static char g_root[256];

/* Writes text to g_root/rel, creating the folders on the way. */
static void put(const char *rel, const char *fmt, ...) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_root, rel);
    for (char *p = path + strlen(g_root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            assert(mkdir(path, 0755) == 0 || errno == EEXIST);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void put_cpu(int cpu, const char *what, const char *fmt, ...) {
    char rel[128], text[128];
    snprintf(rel, sizeof rel, "devices/system/cpu/cpu%d/%s", cpu, what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    put(rel, "%s\n", text);
}

static void new_tree(const char *name) {
    snprintf(g_root, sizeof g_root, "%s/llm8-sysfs-%d-%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(),
             name);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    assert(system(cmd) == 0);
    assert(mkdir(g_root, 0755) == 0);
}

static void drop_tree(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_root);
    assert(system(cmd) == 0);
}

static const char *fmt(const l8_cpumask *m) {
    static char buf[128];
    return l8_cpumask_format(m, buf, sizeof buf);
}

static l8_cpumask list(const char *s) {
    l8_cpumask m;
    assert(l8_cpumask_parse(s, &m));
    return m;
}

/* An RK3588: cpu0-3 Cortex-A55, cpu4-5 and cpu6-7 two A76 clusters; core_id repeats per cluster
 * (0-3, 0-1, 0-1), which must not merge cores. caps: the A76 clusters' capacities. */
static void rk3588(long cap45, long cap67, bool with_capacity) {
    put("devices/system/cpu/online", "0-7\n");
    for (int c = 0; c < 8; c++) {
        long cap = c < 4 ? 414 : c < 6 ? cap45 : cap67;
        long khz = c < 4 ? 1800000 : 2400000;
        if (with_capacity) put_cpu(c, "cpu_capacity", "%ld", cap);
        put_cpu(c, "cpufreq/cpuinfo_max_freq", "%ld", khz);
        put_cpu(c, "topology/core_id", "%d", c < 4 ? c : (c - 4) % 2);
        put_cpu(c, "topology/thread_siblings_list", "%d", c);
    }
}

static void test_masks(void) {
    l8_cpumask m;
    assert(l8_cpumask_parse("0xF0", &m) && !strcmp(fmt(&m), "4-7"));
    assert(l8_cpumask_parse("0x0f", &m) && !strcmp(fmt(&m), "0-3"));
    assert(l8_cpumask_parse("0x5", &m) && !strcmp(fmt(&m), "0,2"));
    assert(l8_cpumask_parse("4-7", &m) && l8_cpumask_count(&m) == 4 && l8_cpumask_has(&m, 7));
    assert(l8_cpumask_parse("0,2,4-5\n", &m) && !strcmp(fmt(&m), "0,2,4-5"));
    assert(l8_cpumask_parse("0x100000000", &m) && !strcmp(fmt(&m), "32"));
    assert(!l8_cpumask_parse("0x0", &m) && l8_cpumask_count(&m) == 0); /* no CPU */
    assert(!l8_cpumask_parse("", &m) && !l8_cpumask_parse("zz", &m) && !l8_cpumask_parse("0x", &m));
    assert(!l8_cpumask_parse("3-1", &m) && !l8_cpumask_parse("1-", &m) && !l8_cpumask_parse("4;5", &m));
    assert(!l8_cpumask_parse("5000", &m) && !l8_cpumask_parse(NULL, &m));
    memset(&m, 0, sizeof m);
    assert(!strcmp(fmt(&m), "none"));
}

static void test_topology(void) {
    l8_cpu_topology *t = malloc(sizeof *t);
    l8_cpu_plan p;
    l8_cpumask all = list("0-1023");
    assert(t);

    /* RK3588 by cpu_capacity: 4 big cores, 4 threads pinned to them by default */
    new_tree("rk3588");
    rk3588(1024, 1024, true);
    l8_cpu_topology_read(g_root, t);
    assert(t->n_cpus == 8 && t->hetero && !strcmp(t->source, "cpu_capacity"));
    assert(t->cap_max == 1024 && t->cap_min == 414 && !strcmp(fmt(&t->big), "4-7"));
    assert(l8_cpu_topology_cores(t, &t->online) == 8); /* core_id repeats, siblings do not */
    l8_cpu_plan_make(t, &all, NULL, 0, &p);
    assert(p.n_threads == 4 && p.n_default == 4 && p.pin && !strcmp(fmt(&p.cpus), "4-7"));
    printf("rk3588: %s\n", p.why);
    l8_cpu_plan_make(t, &all, NULL, 2, &p); /* -t 2: still the big cores */
    assert(p.n_threads == 2 && p.pin && !strcmp(fmt(&p.cpus), "4-7"));
    l8_cpu_plan_make(t, &all, NULL, 8, &p); /* -t 8: all cores, the scheduler places them */
    assert(p.n_threads == 8 && !p.pin);
    /* the core mask (RKLLM's enabled_cpus_mask): its CPUs, pinned, one thread each */
    l8_cpu_plan_make(t, &all, "0x0f", 0, &p);
    assert(p.n_threads == 4 && p.pin && !strcmp(fmt(&p.cpus), "0-3"));
    l8_cpu_plan_make(t, &all, "6-7", 0, &p);
    assert(p.n_threads == 2 && p.pin && !strcmp(fmt(&p.cpus), "6-7"));
    l8_cpu_plan_make(t, &all, "6-7", 3, &p); /* -t beats the mask's count; still pinned to it */
    assert(p.n_threads == 3 && p.pin && !strcmp(fmt(&p.cpus), "6-7"));
    l8_cpu_plan_make(t, &all, "0x300", 0, &p); /* CPUs 8-9 do not exist: ignored, big cores */
    assert(p.n_threads == 4 && !strcmp(fmt(&p.cpus), "4-7") && strstr(p.why, "ignored"));
    l8_cpu_plan_make(t, &all, "bogus", 0, &p);
    assert(p.n_threads == 4 && strstr(p.why, "not understood"));
    /* a process confined to the little cores (taskset -c 0-3) stays there, unpinned */
    l8_cpumask little = list("0-3"), mixed = list("2-5");
    l8_cpu_plan_make(t, &little, NULL, 0, &p);
    assert(p.n_threads == 4 && !p.pin && !strcmp(fmt(&p.cpus), "0-3"));
    l8_cpu_plan_make(t, &mixed, NULL, 0, &p); /* two big cores allowed: those */
    assert(p.n_threads == 2 && p.pin && !strcmp(fmt(&p.cpus), "4-5"));
    l8_cpu_plan_make(t, &mixed, "0-1", 0, &p); /* the mask outside the affinity: ignored */
    assert(p.n_threads == 2 && !strcmp(fmt(&p.cpus), "4-5") && strstr(p.why, "ignored"));
    drop_tree();

    /* one A76 cluster clocked lower (963 = 2.256 / 2.4 GHz): still big; 80% is the line */
    new_tree("rk3588s");
    rk3588(1024, 963, true);
    l8_cpu_topology_read(g_root, t);
    assert(t->hetero && !strcmp(fmt(&t->big), "4-7"));
    drop_tree();
    new_tree("line");
    rk3588(1024, 819, true); /* 819 < 0.8 * 1024 = 819.2 */
    l8_cpu_topology_read(g_root, t);
    assert(!strcmp(fmt(&t->big), "4-5"));
    drop_tree();

    /* older kernels without cpu_capacity: the maximum frequency decides */
    new_tree("freq");
    rk3588(1024, 1024, false);
    l8_cpu_topology_read(g_root, t);
    assert(t->hetero && !strcmp(t->source, "cpuinfo_max_freq") && t->cap_max == 2400000);
    assert(!strcmp(fmt(&t->big), "4-7"));
    /* cpu_capacity on some CPUs only: not mixed with frequencies of others, frequencies used */
    put_cpu(0, "cpu_capacity", "414");
    l8_cpu_topology_read(g_root, t);
    assert(!strcmp(t->source, "cpuinfo_max_freq") && !strcmp(fmt(&t->big), "4-7"));
    drop_tree();

    /* an x86 with SMT (siblings 0,2 and 1,3), all CPUs alike: 2 threads, nothing pinned */
    new_tree("smt");
    put("devices/system/cpu/online", "0-3\n");
    for (int c = 0; c < 4; c++) {
        put_cpu(c, "cpu_capacity", "1024");
        put_cpu(c, "topology/thread_siblings_list", c % 2 ? "1,3" : "0,2");
    }
    l8_cpu_topology_read(g_root, t);
    assert(t->n_cpus == 4 && !t->hetero && l8_cpumask_count(&t->big) == 4);
    assert(l8_cpu_topology_cores(t, &t->online) == 2);
    l8_cpu_plan_make(t, &all, NULL, 0, &p);
    assert(p.n_threads == 2 && !p.pin);
    l8_cpu_plan_make(t, &all, "0x3", 0, &p); /* a mask counts CPUs, not cores */
    assert(p.n_threads == 2 && p.pin && !strcmp(fmt(&p.cpus), "0-1"));
    drop_tree();

    /* offline CPUs: only the online ones count */
    new_tree("offline");
    rk3588(1024, 1024, true);
    put("devices/system/cpu/online", "0-5\n");
    l8_cpu_topology_read(g_root, t);
    assert(t->n_cpus == 6 && !strcmp(fmt(&t->big), "4-5"));
    l8_cpu_plan_make(t, &all, NULL, 0, &p);
    assert(p.n_threads == 2 && !strcmp(fmt(&p.cpus), "4-5"));
    drop_tree();

    /* an empty online list: present is used */
    new_tree("empty");
    rk3588(1024, 1024, true);
    put("devices/system/cpu/online", "\n");
    put("devices/system/cpu/present", "0-7\n");
    l8_cpu_topology_read(g_root, t);
    assert(t->n_cpus == 8 && !strcmp(fmt(&t->big), "4-7"));
    drop_tree();

    /* no sysfs at all: sysconf's CPUs, all alike */
    snprintf(g_root, sizeof g_root, "/nonexistent-llm8-sysfs");
    l8_cpu_topology_read(g_root, t);
    assert(t->n_cpus >= 1 && !t->hetero && !strcmp(t->source, "none"));
    l8_cpu_plan_make(t, &all, NULL, 0, &p);
    assert(p.n_threads == t->n_cpus && !p.pin);

    /* this machine */
    const l8_cpu_topology *m = l8_cpu_topology_get();
    l8_cpu_plan_get(0, &p);
    printf("this machine: %d CPUs, %s, %s; default: %s\n", m->n_cpus, m->hetero ? "big.LITTLE" : "all alike",
           m->source, p.why);
    assert(p.n_threads >= 1 && p.n_threads == l8_default_threads());
    free(t);
}

int main(void) {
    test_masks();
    test_topology();
    l8_pool *pool = l8_pool_create(2);
    assert(pool);
    printf("kernels: read %s, int8 %s\n", l8_probe_read_kernel(), l8_probe_int8_kernel());

    double bw1 = l8_probe_read_bandwidth(NULL, 8u << 20, 3);
    double bw2 = l8_probe_read_bandwidth(pool, 8u << 20, 3);
    printf("read bandwidth (8 MiB, cache-resident): 1 thread %.1f GB/s, 2 threads %.1f GB/s\n", bw1, bw2);
    assert(isfinite(bw1) && bw1 > 0 && isfinite(bw2) && bw2 > 0);
    /* odd sizes are rounded down to whole pages per thread; below a page there is nothing to read */
    assert(l8_probe_read_bandwidth(pool, 3 * 4096 + 17, 1) > 0);
    assert(l8_probe_read_bandwidth(pool, 100, 1) == 0);

    double p1 = l8_probe_int8_peak(NULL, 0.02);
    double p2 = l8_probe_int8_peak(pool, 0.02);
    printf("int8 peak: 1 thread %.0f GOPS, 2 threads %.0f GOPS\n", p1, p2);
    assert(isfinite(p1) && p1 > 0 && isfinite(p2) && p2 > 0);
    /* AMX: measured exactly when the amx kernel level exists; one tdpbssd does 256 times the
     * work of a vpdpbusd, so even at a fraction of its rate it is far above the vector peak */
    double a1 = l8_probe_amx_peak(NULL, 0.02), a2 = l8_probe_amx_peak(pool, 0.02);
    printf("AMX peak: 1 thread %.0f GOPS, 2 threads %.0f GOPS\n", a1, a2);
    if (l8_kernels_for(L8_ISA_AMX)) assert(isfinite(a1) && a1 > 2 * p1 && isfinite(a2) && a2 > 0);
    else assert(a1 == 0 && a2 == 0);

    l8_pool_free(pool);
    printf("ok\n");
    return 0;
}
