# Warnings are errors for Rampart's own code (never for generated code).
function(rampart_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Werror
    -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough
    # C++20 designated initializers omit fields on purpose (CONVENTIONS 7).
    -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety -Werror=thread-safety)
  endif()
endfunction()

# Under RAMPART_SANITIZE=thread every executable links the TSan annotations
# for Debian's uninstrumented absl::Mutex (sanitizers/absl_sync_tsan.cc).
function(rampart_sanitizer_runtime target)
  if(TARGET rampart_absl_tsan)
    target_link_libraries(${target} PRIVATE rampart_absl_tsan)
  endif()
endfunction()

# rampart_library(name SOURCES ... DEPS ...): a module library with our warnings.
function(rampart_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  rampart_warnings(${name})
endfunction()

# rampart_binary(name SOURCES ... DEPS ...): an executable written to build/bin.
function(rampart_binary name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  rampart_warnings(${name})
  rampart_sanitizer_runtime(${name})
endfunction()
