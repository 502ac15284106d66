# Cross-compiling toolchain for 64-bit Arm Linux with Debian's cross compiler
# (apt-get install g++-aarch64-linux-gnu qemu-user). Binaries run under
#   qemu-aarch64 -L /usr/aarch64-linux-gnu <program>
# which is also set as CMAKE_CROSSCOMPILING_EMULATOR, so ctest runs them the same way.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(KD_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${KD_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${KD_CROSS_TRIPLE}-g++)

set(CMAKE_FIND_ROOT_PATH /usr/${KD_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/${KD_CROSS_TRIPLE})
