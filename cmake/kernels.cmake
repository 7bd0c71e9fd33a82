# Per-file ISA flags of the SIMD kernels (src/kernels/x86_*.c): only these files may contain
# AVX2/AVX-512 instructions; dispatch.c decides at run time whether they are executed. Both
# files compile to nothing off x86_64 (#if defined(__x86_64__)), so they need no flags there.
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
