# CMake toolchain file: cross-compile for 64-bit Windows with Debian's MinGW-w64
# (package g++-mingw-w64-x86-64-posix; the posix thread model, which
# std::thread and gRPC need).
#
# Use:
#   cmake -S . -B build-win -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
#     -DRAMPART_MINGW_PREFIX="$(scripts/build-mingw-deps.sh --print-prefix)"
#
# RAMPART_MINGW_PREFIX (cache variable or environment variable) is the
# dependency prefix built by scripts/build-mingw-deps.sh (OpenSSL, Abseil,
# Protobuf, RE2, c-ares, gRPC); it is added to the find roots. Programs
# (protoc, grpc_cpp_plugin) are taken from the host; libraries, headers and
# CMake packages only from the MinGW sysroot and the prefix.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_rampart_mingw x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${_rampart_mingw}-gcc-posix)
set(CMAKE_CXX_COMPILER ${_rampart_mingw}-g++-posix)
set(CMAKE_RC_COMPILER ${_rampart_mingw}-windres)
set(CMAKE_AR ${_rampart_mingw}-gcc-ar-posix CACHE FILEPATH "ar")
set(CMAKE_RANLIB ${_rampart_mingw}-gcc-ranlib-posix CACHE FILEPATH "ranlib")

# try_compile() re-reads this file in a fresh project: pass the prefix on.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES RAMPART_MINGW_PREFIX)
if(NOT RAMPART_MINGW_PREFIX AND DEFINED ENV{RAMPART_MINGW_PREFIX})
  set(RAMPART_MINGW_PREFIX "$ENV{RAMPART_MINGW_PREFIX}")
endif()

set(CMAKE_FIND_ROOT_PATH /usr/${_rampart_mingw})
if(RAMPART_MINGW_PREFIX)
  list(APPEND CMAKE_FIND_ROOT_PATH "${RAMPART_MINGW_PREFIX}")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static OpenSSL and c-ares objects reference these: they must come after
# every other library on the link line.
set(CMAKE_C_STANDARD_LIBRARIES
    "-lws2_32 -lcrypt32 -lbcrypt -liphlpapi -ladvapi32 -luser32 -lgdi32 -ldbghelp"
    CACHE STRING "Windows system libraries, linked last")
set(CMAKE_CXX_STANDARD_LIBRARIES "${CMAKE_C_STANDARD_LIBRARIES}"
    CACHE STRING "Windows system libraries, linked last")

# Cross-compiled executables run under Wine (tests, try_run).
find_program(RAMPART_WINE NAMES wine64 wine PATHS /usr/bin /usr/lib/wine)
if(RAMPART_WINE AND NOT CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${RAMPART_WINE}")
endif()
