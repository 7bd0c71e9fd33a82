# Per-file ISA flags of the SIMD kernels (src/kernels/x86_*.c, src/kernels/arm_*.c): only these
# files may contain AVX2/AVX-512 (or SDOT/SMMLA) instructions; dispatch.c decides at run time
# whether they are executed. Each file compiles to nothing on the other architecture (#if
# defined(__x86_64__) / __aarch64__), so it gets flags only on its own.
# -ffp-contract=off: the matmul rescale must round exactly like the scalar reference (no FMA
# fusion of its multiply and add), and the float helpers of every level follow one canonical
# evaluation order (src/kernels/kernels.h) whose only fused operations are explicit fma calls:
# ref.c (the scalar level, every architecture) gets the flag too, since some compilers (clang,
# GCC in gnu modes) contract a * b + c by default. Source properties are read at generate time, so this file
# may be included before or after add_library, in the top-level directory.
# LLM8_SOURCE_ROOT: the repository root (the fuzz build includes this file from tests/fuzz).
if(NOT LLM8_SOURCE_ROOT)
  set(LLM8_SOURCE_ROOT ${CMAKE_SOURCE_DIR})
endif()
set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/ref.c PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/x86_avx2.c
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-ffp-contract=off")
  set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/x86_avx512.c
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni;-ffp-contract=off")
endif()
# aarch64: one -march per level file (src/kernels/arm_*.c, empty elsewhere), so that a build for
# the ARMv8.0 baseline still carries the SDOT and SMMLA kernels and dispatch.c picks them from
# HWCAP at run time: neon = ARMv8.0 Advanced SIMD (every aarch64 core), dotprod = + SDOT/UDOT
# (ARMv8.2+dotprod: Cortex-A55/A76, the RK3588), i8mm = + SMMLA (the 8.6 extension, given to
# 8.2 so that nothing else of 8.6 can appear in that file).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/arm_neon.c
    PROPERTIES COMPILE_OPTIONS "-march=armv8-a;-ffp-contract=off")
  set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/arm_dotprod.c
    PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod;-ffp-contract=off")
  set_source_files_properties(${LLM8_SOURCE_ROOT}/src/kernels/arm_i8mm.c
    PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod+i8mm;-ffp-contract=off")
endif()
