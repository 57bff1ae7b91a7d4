# Link-level dependency rules (docs/architecture.md, "Dependency rules"),
# checked at configure time once every target exists: a library that must
# not see generated protobuf/gRPC code, libpqxx or SQLite does not link it,
# directly or through any project library it links. The include-level half
# is cmake/RampartCheckDependencies.cmake (ctest `dependency_rules`).

# Appends to `out` every link item reachable from `target` through project
# (non-imported) targets' LINK_LIBRARIES.
function(_rampart_link_closure target out)
  set(seen "")
  set(queue ${target})
  while(queue)
    list(POP_FRONT queue t)
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" t "${t}")
    if(t IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${t})
    if(TARGET ${t})
      get_target_property(imported ${t} IMPORTED)
      if(NOT imported)
        get_target_property(deps ${t} LINK_LIBRARIES)
        if(deps)
          list(APPEND queue ${deps})
        endif()
      endif()
    endif()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# rampart_forbid_links(FORBID <regex> TARGETS <target>...)
function(rampart_forbid_links)
  cmake_parse_arguments(R "" "FORBID;WHY" "TARGETS" ${ARGN})
  foreach(t ${R_TARGETS})
    if(NOT TARGET ${t})
      message(FATAL_ERROR "rampart_forbid_links: no target ${t}")
    endif()
    _rampart_link_closure(${t} closure)
    foreach(item ${closure})
      if(item MATCHES "${R_FORBID}")
        message(FATAL_ERROR
          "${t} links ${item}: ${R_WHY} (docs/architecture.md, \"Dependency rules\")")
      endif()
    endforeach()
  endforeach()
endfunction()

set(_rampart_proto_like "^(rampart_proto|gRPC::.*|protobuf::.*)$")
set(_rampart_domain_libraries
  rampart_common rampart_pki rampart_domino rampart_tail rampart_spool
  rampart_firewall rampart_sim rampart_core rampart_store rampart_sqlite_store
  rampart_pg_store rampart_server_config rampart_enrollment
  rampart_http)
rampart_forbid_links(TARGETS ${_rampart_domain_libraries}
  FORBID "${_rampart_proto_like}"
  WHY "domain code never sees generated protobuf or gRPC code; only the edges (server/grpc, agent/daemon, ctl) link rampart_proto")
rampart_forbid_links(
  TARGETS rampart_common rampart_core rampart_store rampart_sqlite_store
          rampart_server_config rampart_enrollment
  FORBID "^PkgConfig::PQXX$"
  WHY "libpqxx is private to rampart_pg_store")
rampart_forbid_links(
  TARGETS rampart_common rampart_core rampart_store rampart_pg_store
          rampart_server_config rampart_enrollment
  FORBID "^SQLite::SQLite3$"
  WHY "SQLite is private to rampart_sqlite_store")
rampart_forbid_links(
  TARGETS rampart_common rampart_core
  FORBID "^(rampart_store|rampart_sqlite_store|rampart_pg_store)$"
  WHY "the core defines the Store port and never depends on a store")
