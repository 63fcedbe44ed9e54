# CMake toolchain file: cross-compile for 64-bit ARM Linux (aarch64) with
# Debian's cross compilers (apt-get install g++-aarch64-linux-gnu).
#
# Used for both the ncnn library (tools/setup_arm64_emulation.sh) and the
# C++ example in this directory. The binaries run on an arm64 board, or on
# x86 under qemu-aarch64-static (statically linked ones need no arm64 root).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CROSS_PREFIX aarch64-linux-gnu- CACHE STRING "prefix of the cross tools")
set(CMAKE_C_COMPILER ${CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${CROSS_PREFIX}g++)

# Search headers and libraries in the aarch64 locations only; programs
# (code generators run during the build) on the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
