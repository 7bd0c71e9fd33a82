# Cross-compiling llm8 for 64-bit ARM Linux (RK3588 boards and friends) with Debian's cross
# compiler, from an x86-64 Debian 12 host:
#
#   apt-get install gcc-aarch64-linux-gnu qemu-user          # scripts/deps.sh does this
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install libpcre2-dev:arm64 libjansson-dev:arm64   # the arm64 builds of the two libraries
#   cmake -B build-arm -S . -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-arm -j2
#   qemu-aarch64 build-arm/llm8 info          # or copy build-arm/llm8 to the board (see below on -L)
#
# The target's libraries come from Debian multiarch (/usr/lib/aarch64-linux-gnu, headers in
# /usr/include), found through pkg-config restricted to the arm64 .pc files, so that the host's
# x86 libraries are never picked up. The kernels are built for the ARMv8.0 baseline with the
# dotprod and i8mm files compiled for their own levels (cmake/kernels.cmake) and chosen at run
# time, so one binary runs on any aarch64 Linux machine.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(LLM8_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${LLM8_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${LLM8_CROSS_TRIPLE}-g++)

# Libraries and headers of the target only (Debian's cross gcc already searches the multiarch
# directories /usr/lib/aarch64-linux-gnu and /usr/include/aarch64-linux-gnu); programs (the
# compiler, pkg-config, python) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${LLM8_CROSS_TRIPLE} /usr/lib/${LLM8_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_LIBRARY_ARCHITECTURE ${LLM8_CROSS_TRIPLE})

# pkg-config: only the arm64 .pc files (PKG_CONFIG_LIBDIR replaces the default search path, so
# the x86 libpcre2-8.pc and jansson.pc in /usr/lib/x86_64-linux-gnu/pkgconfig are not seen).
# No sysroot prefixing: multiarch paths are real paths on this host.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${LLM8_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Programs built here run under qemu-user when CMake or ctest needs to execute them. No
# `-L /usr/aarch64-linux-gnu`: the multiarch -dev packages above pull in libc6:arm64, whose
# libc.so.6 in /lib/aarch64-linux-gnu the cross package's ld.so would then load (qemu falls back
# to host paths), a mismatched loader and libc in which pthread_create never returns. Without a
# prefix the binary's /lib/ld-linux-aarch64.so.1 is libc6:arm64's own, consistent with its libc.
find_program(LLM8_QEMU_AARCH64 qemu-aarch64)
if(LLM8_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LLM8_QEMU_AARCH64})
endif()
