/*
 * Machine probes: the two roofs that bound llm8's speed. Decoding streams every weight once per
 * token, so its ceiling is the read bandwidth; prefill is a batch of int8 matmuls, so its
 * ceiling is the int8 dot-product rate. `llm8 bench` prints measured speed against both.
 */
#ifndef L8_PROBE_H
#define L8_PROBE_H

#include <stddef.h>

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
 * leave the registers, for about seconds (<= 0: 0.2) after a short warm-up. The kernel is the
 * best the CPU has: AVX-512 VNNI vpdpbusd on zmm, else AVX2 vpmaddubsw + vpmaddwd, else C.
 */
double l8_probe_int8_peak(l8_pool *pool, double seconds);

/* The kernels the probes use on this CPU: "avx512vnni" / "avx2" / "c" and "avx512" / "avx2" / "c". */
const char *l8_probe_int8_kernel(void);
const char *l8_probe_read_kernel(void);

#endif
