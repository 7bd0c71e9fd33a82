/* Picks the kernel level once per process. A CPU flag alone is not enough: the OS must also save
 * the wider register state on context switches (XCR0), or the first AVX-512 instruction faults
 * (or worse, state is silently lost). LLM8_ISA can only lower the level: asking for more than the
 * machine has would crash, so it falls back and the description says so. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

typedef struct cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni;
    bool os_ymm, os_zmm;
} cpu_features;

static cpu_features g_cpu;
static l8_kernels g_tables[L8_ISA_COUNT];
static bool g_avail[L8_ISA_COUNT];
static l8_kernels g_chosen;
static char g_describe[512];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* xgetbv as inline asm: the intrinsic would need -mxsave on this file. Only valid when CPUID
 * reports OSXSAVE. */
static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static void detect(cpu_features *f) {
    unsigned a, b, c, d;
    __builtin_cpu_init();
    f->avx2 = __builtin_cpu_supports("avx2");
    f->fma = __builtin_cpu_supports("fma");
    f->avx512f = __builtin_cpu_supports("avx512f");
    f->avx512bw = __builtin_cpu_supports("avx512bw");
    f->avx512vl = __builtin_cpu_supports("avx512vl");
    f->avx512vnni = __builtin_cpu_supports("avx512vnni");
    /* f16c, osxsave, avx-vnni and bf16 are not known to every compiler's builtin: CPUID. */
    bool osxsave = false;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        f->f16c = (c >> 29) & 1;
        osxsave = (c >> 27) & 1;
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f->avxvnni = (a >> 4) & 1;
        f->avx512bf16 = (a >> 5) & 1;
    }
    if (osxsave) {
        uint64_t xcr0 = read_xcr0();
        f->os_ymm = (xcr0 & 0x6) == 0x6;   /* SSE (bit 1) + AVX upper halves (bit 2) */
        f->os_zmm = (xcr0 & 0xE6) == 0xE6; /* + opmask (5), ZMM0-15 upper (6), ZMM16-31 (7) */
    }
}
#else
static void detect(cpu_features *f) { memset(f, 0, sizeof *f); }
#endif

static bool level_ok(const cpu_features *f, l8_isa isa) {
    switch (isa) {
    case L8_ISA_SCALAR: return true;
    case L8_ISA_AVX2: return f->avx2 && f->fma && f->f16c && f->os_ymm;
    case L8_ISA_AVX512:
        return level_ok(f, L8_ISA_AVX2) && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni && f->os_zmm;
    default: return false;
    }
}

const char *l8_isa_name(l8_isa isa) {
    switch (isa) {
    case L8_ISA_SCALAR: return "scalar";
    case L8_ISA_AVX2: return "avx2";
    case L8_ISA_AVX512: return "avx512";
    default: return "?";
    }
}

static void append(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    if (len + 1 < cap) snprintf(buf + len, cap - len, "%s", s);
}

static l8_isa best_avail(void) {
    l8_isa best = L8_ISA_SCALAR;
    for (int i = 0; i < L8_ISA_COUNT; i++)
        if (g_avail[i]) best = (l8_isa)i;
    return best;
}

static void init_once(void) {
    detect(&g_cpu);
    l8_kernels_fill_scalar(&g_tables[L8_ISA_SCALAR]);
    g_avail[L8_ISA_SCALAR] = true;
#if defined(__x86_64__)
    if (level_ok(&g_cpu, L8_ISA_AVX2)) {
        l8_kernels_fill_avx2(&g_tables[L8_ISA_AVX2]);
        g_avail[L8_ISA_AVX2] = true;
    }
    if (level_ok(&g_cpu, L8_ISA_AVX512)) {
        l8_kernels_fill_avx512(&g_tables[L8_ISA_AVX512]);
        g_avail[L8_ISA_AVX512] = true;
    }
#else
    (void)level_ok; /* no SIMD level in this build: scalar only */
#endif
    l8_isa best = best_avail(), use = best;

    char note[160] = "";
    const char *env = getenv("LLM8_ISA");
    if (env && *env) {
        int want = -1;
        for (int i = 0; i < L8_ISA_COUNT; i++)
            if (strcmp(env, l8_isa_name((l8_isa)i)) == 0) want = i;
        if (want < 0)
            snprintf(note, sizeof note, "; LLM8_ISA=%.40s unknown (scalar|avx2|avx512), ignored", env);
        else if (!g_avail[want])
            snprintf(note, sizeof note, "; LLM8_ISA=%s not available here, using %s", env, l8_isa_name(best));
        else {
            use = (l8_isa)want;
            snprintf(note, sizeof note, "; LLM8_ISA=%s", env);
        }
    }
    g_chosen = g_tables[use];

    char *d = g_describe;
    size_t cap = sizeof g_describe;
    d[0] = 0;
    append(d, cap, "cpu:");
    const struct {
        bool on;
        const char *name;
    } feats[] = {{g_cpu.avx2, " avx2"},         {g_cpu.fma, " fma"},
                 {g_cpu.f16c, " f16c"},         {g_cpu.avxvnni, " avxvnni"},
                 {g_cpu.avx512f, " avx512f"},   {g_cpu.avx512bw, " avx512bw"},
                 {g_cpu.avx512vl, " avx512vl"}, {g_cpu.avx512vnni, " avx512vnni"},
                 {g_cpu.avx512bf16, " avx512bf16"}};
    bool any = false;
    for (size_t i = 0; i < sizeof feats / sizeof *feats; i++)
        if (feats[i].on) {
            append(d, cap, feats[i].name);
            any = true;
        }
    if (!any) append(d, cap, " (no SIMD level used by llm8)");
    append(d, cap, g_cpu.os_zmm ? "; os: ymm+zmm state" : g_cpu.os_ymm ? "; os: ymm state" : "; os: no avx state");
    append(d, cap, note);
    append(d, cap, "; kernels: ");
    append(d, cap, g_chosen.name);
}

const l8_kernels *l8_kernels_get(void) {
    pthread_once(&g_once, init_once);
    return &g_chosen;
}

const l8_kernels *l8_kernels_for(l8_isa isa) {
    pthread_once(&g_once, init_once);
    if ((int)isa < 0 || isa >= L8_ISA_COUNT || !g_avail[isa]) return NULL;
    return &g_tables[isa];
}

l8_isa l8_kernels_best_isa(void) {
    pthread_once(&g_once, init_once);
    return best_avail();
}

const char *l8_kernels_describe(void) {
    pthread_once(&g_once, init_once);
    return g_describe;
}

void l8_kernels_matmul(float *out, const int8_t *xq, const float *xs, int64_t n, const l8_tensor *w) {
    const l8_kernels *k = l8_kernels_get();
    if (w->dtype == L8_DTYPE_Q8) k->matmul_q8(out, xq, xs, n, w, 0, w->shape[0]);
    else k->matmul_q4(out, xq, xs, n, w, 0, w->shape[0]);
}
