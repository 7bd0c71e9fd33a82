/* Picks the kernel level once per process. A CPU flag alone is not enough: the OS must also save
 * the wider register state on context switches (XCR0), or the first AVX-512 instruction faults
 * (or worse, state is silently lost). On aarch64 the kernel's HWCAP bits (getauxval) say both at
 * once: it sets a feature bit only when it supports the feature (and every core has it).
 * LLM8_ISA can only lower the level: asking for more than the machine has would crash, so it
 * falls back and the description says so. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
/* The bits of the kernel ABI (arch/arm64/include/uapi/asm/hwcap.h), for C libraries that do not
 * name them all yet. */
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_FPHP
#define HWCAP_FPHP (1UL << 9)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#ifndef HWCAP2_BF16
#define HWCAP2_BF16 (1UL << 14)
#endif
#endif

typedef struct cpu_features {
    bool avx2, fma, f16c, avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16, avxvnni;
    bool os_ymm, os_zmm;
    bool amx_tile, amx_int8, os_amx; /* AMX: CPUID 7.0 EDX 24/25; XCR0 bits 17/18 (tile config/data) */
    /* aarch64 (HWCAP bits): Advanced SIMD, f16 arithmetic (scalar / vector), SDOT/UDOT, SMMLA,
     * BF16, SVE. Linux always saves the NEON state, so there is no OS bit to check. */
    bool asimd, fphp, asimdhp, asimddp, i8mm, bf16, sve;
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
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->amx_tile = (d >> 24) & 1;
        f->amx_int8 = (d >> 25) & 1;
    }
    if (osxsave) {
        uint64_t xcr0 = read_xcr0();
        f->os_ymm = (xcr0 & 0x6) == 0x6;   /* SSE (bit 1) + AVX upper halves (bit 2) */
        f->os_zmm = (xcr0 & 0xE6) == 0xE6; /* + opmask (5), ZMM0-15 upper (6), ZMM16-31 (7) */
        f->os_amx = (xcr0 & 0x60000) == 0x60000; /* XTILECFG (17), XTILEDATA (18) */
    }
}
#elif defined(__aarch64__)
/* HWCAP is what the kernel found on every core (it lists only features all cores share, so a
 * big.LITTLE part reports the common subset: on the RK3588 the A55 and A76 both have dotprod). */
static void detect(cpu_features *f) {
    memset(f, 0, sizeof *f);
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->asimd = hw & HWCAP_ASIMD;
    f->fphp = hw & HWCAP_FPHP;
    f->asimdhp = hw & HWCAP_ASIMDHP;
    f->asimddp = hw & HWCAP_ASIMDDP;
    f->sve = hw & HWCAP_SVE;
    f->i8mm = hw2 & HWCAP2_I8MM;
    f->bf16 = hw2 & HWCAP2_BF16;
}
#else
static void detect(cpu_features *f) { memset(f, 0, sizeof *f); }
#endif

static bool level_ok(const cpu_features *f, l8_isa isa) {
    switch (isa) {
    case L8_ISA_SCALAR: return true;
    case L8_ISA_AVX2: return f->avx2 && f->fma && f->f16c && f->os_ymm;
    case L8_ISA_AVXVNNI: return level_ok(f, L8_ISA_AVX2) && f->avxvnni;
    case L8_ISA_AVX512:
        return level_ok(f, L8_ISA_AVX2) && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni && f->os_zmm;
    case L8_ISA_AMX: return level_ok(f, L8_ISA_AVX512) && f->amx_tile && f->amx_int8 && f->os_amx;
    case L8_ISA_NEON: return f->asimd;
    case L8_ISA_DOTPROD: return f->asimd && f->asimddp;
    case L8_ISA_I8MM: return f->asimd && f->asimddp && f->i8mm; /* its decode path is dotprod's */
    default: return false;
    }
}

const char *l8_isa_name(l8_isa isa) {
    switch (isa) {
    case L8_ISA_SCALAR: return "scalar";
    case L8_ISA_AVX2: return "avx2";
    case L8_ISA_AVXVNNI: return "avxvnni";
    case L8_ISA_AVX512: return "avx512";
    case L8_ISA_NEON: return "neon";
    case L8_ISA_DOTPROD: return "dotprod";
    case L8_ISA_I8MM: return "i8mm";
    case L8_ISA_AMX: return "amx";
    default: return "?";
    }
}

static void append(char *buf, size_t cap, const char *s) {
    size_t len = strlen(buf);
    if (len + 1 < cap) snprintf(buf + len, cap - len, "%s", s);
}

/* The names LLM8_ISA takes in this build. */
#if defined(__aarch64__)
#define LEVEL_NAMES "scalar|neon|dotprod|i8mm"
#elif defined(__x86_64__)
#define LEVEL_NAMES "scalar|avx2|avxvnni|avx512|amx"
#else
#define LEVEL_NAMES "scalar"
#endif

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
    if (level_ok(&g_cpu, L8_ISA_AVXVNNI)) {
        l8_kernels_fill_avxvnni(&g_tables[L8_ISA_AVXVNNI]);
        g_avail[L8_ISA_AVXVNNI] = true;
    }
    if (level_ok(&g_cpu, L8_ISA_AVX512)) {
        l8_kernels_fill_avx512(&g_tables[L8_ISA_AVX512]);
        g_avail[L8_ISA_AVX512] = true;
    }
    if (level_ok(&g_cpu, L8_ISA_AMX) && l8_kernels_amx_permit()) { /* the OS must grant the tile state */
        l8_kernels_fill_amx(&g_tables[L8_ISA_AMX]);
        g_avail[L8_ISA_AMX] = true;
    }
#elif defined(__aarch64__)
    static void (*const fill[])(l8_kernels *) = {l8_kernels_fill_neon, l8_kernels_fill_dotprod, l8_kernels_fill_i8mm};
    for (int i = L8_ISA_NEON; i <= L8_ISA_I8MM; i++)
        if (level_ok(&g_cpu, (l8_isa)i)) {
            fill[i - L8_ISA_NEON](&g_tables[i]);
            g_avail[i] = true;
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
            snprintf(note, sizeof note, "; LLM8_ISA=%.40s unknown (%s), ignored", env, LEVEL_NAMES);
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
                 {g_cpu.avx512bf16, " avx512bf16"}, {g_cpu.amx_int8 && g_cpu.amx_tile, " amx-int8"},
                 {g_cpu.asimd, " asimd"},
                 {g_cpu.fphp, " fphp"},         {g_cpu.asimdhp, " asimdhp"},
                 {g_cpu.asimddp, " asimddp"},   {g_cpu.i8mm, " i8mm"},
                 {g_cpu.bf16, " bf16"},         {g_cpu.sve, " sve"}};
    bool any = false;
    for (size_t i = 0; i < sizeof feats / sizeof *feats; i++)
        if (feats[i].on) {
            append(d, cap, feats[i].name);
            any = true;
        }
    if (!any) append(d, cap, " (no SIMD level used by llm8)");
#if defined(__x86_64__)
    append(d, cap, g_cpu.os_zmm ? "; os: ymm+zmm state" : g_cpu.os_ymm ? "; os: ymm state" : "; os: no avx state");
#endif
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
