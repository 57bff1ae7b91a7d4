# Windows cross build (MinGW-w64, run under Wine): issue 14, docs/windows.md.
# The top-level CMakeLists.txt includes this INSTEAD of the Linux targets when
# CMAKE_SYSTEM_NAME is Windows. The agent is not ported yet, so this builds
# only the Wine smoke test of the dependency stack and, on request, the
# libraries being ported (to see what still breaks). .ci/run builds and
# runs the smoke test whenever the dependency cache exists on the machine.
#
#   cmake -S . -B build-win -G Ninja -DCMAKE_BUILD_TYPE=Release \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
#     -DRAMPART_MINGW_PREFIX="$(scripts/build-mingw-deps.sh --print-prefix)"
#   cmake --build build-win --target rampart_wine_smoke
#   ctest --test-dir build-win -R wine_smoke      # runs it under wine64

if(NOT RAMPART_MINGW_PREFIX)
  message(FATAL_ERROR "Windows build: set RAMPART_MINGW_PREFIX to the prefix "
    "from scripts/build-mingw-deps.sh (--print-prefix)")
endif()

option(RAMPART_WINE_SMOKE "Build the Wine smoke test of the gRPC stack" ON)
option(RAMPART_WINDOWS_PORTING
  "Also build the libraries being ported (common, pki, domino, spool, tail); they do not all compile yet (docs/windows.md)"
  OFF)

# The Windows 10 / Server 2016 API level the dependency prefix is built for.
add_compile_definitions(_WIN32_WINNT=0x0A00)
# Static everything: the .exe runs under Wine or on Windows without DLLs.
add_link_options(-static -static-libgcc -static-libstdc++)

find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)

enable_testing()

if(RAMPART_WINDOWS_PORTING)
  add_subdirectory(common)
  add_subdirectory(common/pki)
  add_subdirectory(agent/domino)
  add_subdirectory(agent/spool)
  add_subdirectory(agent/tail)
endif()

if(NOT RAMPART_WINE_SMOKE)
  return()
endif()

find_package(Protobuf CONFIG REQUIRED)
find_package(gRPC CONFIG REQUIRED)

# Code generation runs on the host: Debian's protoc and grpc_cpp_plugin are
# the versions the prefix was built from (the prefix's protoc.exe is a
# Windows program).
find_program(RAMPART_HOST_PROTOC protoc REQUIRED)
find_program(RAMPART_HOST_GRPC_PLUGIN grpc_cpp_plugin REQUIRED)

set(_smoke_gen ${CMAKE_BINARY_DIR}/wine_smoke_gen)
file(MAKE_DIRECTORY ${_smoke_gen})
set(_smoke_proto ${PROJECT_SOURCE_DIR}/tests/windows/wine_smoke.proto)
set(_smoke_srcs
  ${_smoke_gen}/wine_smoke.pb.cc ${_smoke_gen}/wine_smoke.pb.h
  ${_smoke_gen}/wine_smoke.grpc.pb.cc ${_smoke_gen}/wine_smoke.grpc.pb.h)
add_custom_command(
  OUTPUT ${_smoke_srcs}
  COMMAND ${RAMPART_HOST_PROTOC}
    --proto_path=${PROJECT_SOURCE_DIR}/tests/windows
    --cpp_out=${_smoke_gen} --grpc_out=${_smoke_gen}
    --plugin=protoc-gen-grpc=${RAMPART_HOST_GRPC_PLUGIN}
    ${_smoke_proto}
  DEPENDS ${_smoke_proto}
  COMMENT "wine smoke: generating gRPC code with the host protoc")

add_executable(rampart_wine_smoke tests/windows/wine_smoke.cc ${_smoke_srcs})
target_include_directories(rampart_wine_smoke SYSTEM PRIVATE ${_smoke_gen})
target_link_libraries(rampart_wine_smoke PRIVATE
  gRPC::grpc++ protobuf::libprotobuf OpenSSL::Crypto)
# Our warnings only for our file, not for the generated code.
set_source_files_properties(tests/windows/wine_smoke.cc PROPERTIES
  COMPILE_OPTIONS "-Wall;-Wextra;-Werror")
add_test(NAME wine_smoke COMMAND rampart_wine_smoke)
set_tests_properties(wine_smoke PROPERTIES
  ENVIRONMENT "WINEDEBUG=-all" TIMEOUT 300
  PASS_REGULAR_EXPRESSION "wine smoke: ok")

