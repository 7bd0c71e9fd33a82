/* The machine probes return finite positive figures, quickly, with and without a pool. */
#include <assert.h>
#include <math.h>
#include <stdio.h>

#include "runtime/probe.h"

int main(void) {
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

    l8_pool_free(pool);
    printf("ok\n");
    return 0;
}
