/*
 * Machine probes: the two roofs that bound llm8's speed. Decoding streams every weight once per
 * token, so its ceiling is the read bandwidth; prefill is a batch of int8 matmuls, so its
 * ceiling is the int8 dot-product rate. `llm8 bench` prints measured speed against both.
 */
#ifndef L8_PROBE_H
#define L8_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/threadpool.h"

/*
 * Read bandwidth in GB/s (1e9 bytes/s): every thread of pool (NULL: the caller alone) sums a
 * disjoint slice of a bytes-long buffer (0: 1 GiB, meant to be several times the last-level
 * cache) with the widest loads the CPU has; the buffer is written once first so that its pages
 * are real, then read repeats times (<= 0: 5). Returns the median, or 0 when the buffer cannot
 * be allocated.
 */
double l8_probe_read_bandwidth(l8_pool *pool, size_t bytes, int repeats);

/*
 * Peak int8 dot-product rate in GOPS (a multiply-accumulate counts 2): every thread of pool
 * (NULL: the caller alone) runs a loop of independent dot-product instructions that never
 * leave the registers, for about seconds (<= 0: 0.2) after a short warm-up. The instruction is
 * that of the kernel level in use (l8_kernels_get, after LLM8_ISA): AVX-512 VNNI vpdpbusd on zmm
 * (avx512 and amx), AVX-VNNI vpdpbusd on ymm (avxvnni), AVX2 vpmaddubsw + vpmaddwd (avx2); on
 * aarch64 SMMLA (i8mm), SDOT (dotprod), SMULL + SADALP (neon); else C.
 */
double l8_probe_int8_peak(l8_pool *pool, double seconds);

/*
 * Peak of Intel's AMX-INT8 tiles in GOPS (tdpbssd on tiles that never leave the tile registers,
 * as above), or 0 when the CPU or the OS does not offer them (then the kernels do not use them
 * either). The amx kernel level runs prefill on them, so this is that level's roof.
 */
double l8_probe_amx_peak(l8_pool *pool, double seconds);

/* The kernels the probes use on this CPU: "avx512vnni" / "avxvnni" / "avx2" / "i8mm" / "dotprod" / "neon" / "c"
 * and "avx512" / "avx2" / "neon" / "c". */
const char *l8_probe_int8_kernel(void);
const char *l8_probe_read_kernel(void);

/* ---------------------------------------------------------------- CPU topology (big.LITTLE)
 *
 * Which CPUs are fast. On a big.LITTLE part (RK3588: 4 Cortex-A55 at capacity ~414 + 4 A76 at
 * 1024) a thread on a little core makes every parallel region wait for it, so the default is
 * one thread per big core, pinned there (threadpool.c). The kernel's cpu_capacity (arm64,
 * from the device tree) is the measure; without it, cpufreq/cpuinfo_max_freq; without either,
 * all CPUs are taken as alike. "Big" = capacity >= 80% of the highest: both A76 clusters of an
 * RK3588 even when one is clocked lower, but not Intel E-cores (~75% of a P-core's clock). */

enum { L8_MAX_CPUS = 1024 };

typedef struct l8_cpumask {
    uint64_t w[L8_MAX_CPUS / 64]; /* bit i: CPU i */
} l8_cpumask;

void l8_cpumask_set(l8_cpumask *m, int cpu);
bool l8_cpumask_has(const l8_cpumask *m, int cpu);
int l8_cpumask_count(const l8_cpumask *m);
/* "0xF0" (a bit mask, bit i = CPU i, as RKLLM's enabled_cpus_mask) or a list "4-7", "0,2,4-5"
 * (taskset -c). false (and an empty mask) on bad syntax, CPUs >= L8_MAX_CPUS, or no CPU. */
bool l8_cpumask_parse(const char *s, l8_cpumask *out);
/* The mask as a list ("4-7", "0,2,4-7", "none") into buf; returns buf. */
char *l8_cpumask_format(const l8_cpumask *m, char *buf, size_t cap);

typedef struct l8_cpu_topology {
    int n_cpus;             /* online CPUs */
    l8_cpumask online, big; /* big: capacity >= 80% of cap_max */
    bool hetero;            /* some online CPU is below that: big.LITTLE */
    long cap_max, cap_min;  /* highest and lowest capacity (or kHz) among online CPUs */
    const char *source;     /* "cpu_capacity", "cpuinfo_max_freq" or "none" (all alike) */
    int16_t core[L8_MAX_CPUS]; /* per CPU: the first CPU of its core (SMT siblings share it) */
} l8_cpu_topology;

/* Reads the topology under sysfs_root ("/sys" for this machine; the tests build fake trees):
 * devices/system/cpu/online (else present, else CPUs 0..n-1 from sysconf), and per CPU
 * cpuN/cpu_capacity, cpuN/cpufreq/cpuinfo_max_freq, cpuN/topology/thread_siblings_list. */
void l8_cpu_topology_read(const char *sysfs_root, l8_cpu_topology *t);
/* This machine's, read once (thread safe). */
const l8_cpu_topology *l8_cpu_topology_get(void);
/* Physical cores among the CPUs of m (SMT siblings count once). */
int l8_cpu_topology_cores(const l8_cpu_topology *t, const l8_cpumask *m);

/* Where a pool's threads go. */
typedef struct l8_cpu_plan {
    int n_threads;   /* the pool's size: n_threads if given, else the default below */
    int n_default;   /* the big cores, the CPUs of the mask, or the physical cores */
    bool pin;        /* pin the workers (and the calling thread) to cpus */
    l8_cpumask cpus; /* the CPUs used: the mask, the big cores, or all allowed */
    char why[192];   /* one line for `llm8 info` */
} l8_cpu_plan;

/* The plan for a pool of n_threads (<= 0: the default) on topology t, for a process allowed on
 * the CPUs of allowed (its affinity), with mask_env the value of LLM8_CPU_MASK (NULL or "" for
 * none; a bad or useless mask is ignored and said so in why):
 *  - a mask: its allowed CPUs, one thread each by default, pinned there;
 *  - else big.LITTLE: one thread per big core by default, pinned to the big CPUs unless more
 *    threads are asked for than there are big CPUs (then the scheduler places them all);
 *  - else: one thread per physical core, not pinned. */
void l8_cpu_plan_make(const l8_cpu_topology *t, const l8_cpumask *allowed, const char *mask_env, int n_threads,
                      l8_cpu_plan *p);
/* The CPUs this process may run on (its affinity when first asked: taskset, cgroups). */
const l8_cpumask *l8_cpu_allowed(void);
/* The plan on this machine: its topology, the process's affinity, getenv("LLM8_CPU_MASK"). */
void l8_cpu_plan_get(int n_threads, l8_cpu_plan *p);

#endif
