# The dependency rules of docs/architecture.md ("Dependency rules"), checked
# on the sources' #include lines. Run by ctest (test `dependency_rules`):
#   cmake -DROOT=<source dir> -P cmake/RampartCheckDependencies.cmake
# Fails (listing every offending line) if a file includes what its module
# must not see. The link-level half (which libraries may link rampart_proto,
# gRPC, libpqxx or SQLite) is checked at configure time by
# cmake/RampartLinkRules.cmake.
#
# A rule: rampart_rule(<name> FILES <globs relative to ROOT>
#   [EXCEPT_FILES <regex on the relative path>]
#   FORBID <regex on the include line> [ALLOW <regex on the include line>])

if(NOT ROOT)
  message(FATAL_ERROR "usage: cmake -DROOT=<source dir> -P ${CMAKE_CURRENT_LIST_FILE}")
endif()

set(RAMPART_VIOLATIONS "")
set(RAMPART_FILES_CHECKED 0)

function(rampart_rule name)
  cmake_parse_arguments(R "" "EXCEPT_FILES;FORBID;ALLOW" "FILES" ${ARGN})
  set(globs "")
  foreach(g ${R_FILES})
    list(APPEND globs "${ROOT}/${g}")
  endforeach()
  file(GLOB_RECURSE files RELATIVE "${ROOT}" ${globs})
  list(LENGTH files n)
  if(n EQUAL 0)
    message(FATAL_ERROR "rule '${name}' matches no file: ${R_FILES}")
  endif()
  math(EXPR checked "${RAMPART_FILES_CHECKED} + ${n}")
  set(RAMPART_FILES_CHECKED ${checked} PARENT_SCOPE)
  set(violations ${RAMPART_VIOLATIONS})
  foreach(f ${files})
    if(R_EXCEPT_FILES AND f MATCHES "${R_EXCEPT_FILES}")
      continue()
    endif()
    file(STRINGS "${ROOT}/${f}" lines REGEX "^[ \t]*#[ \t]*include")
    foreach(line ${lines})
      if(line MATCHES "${R_FORBID}")
        if(R_ALLOW AND line MATCHES "${R_ALLOW}")
          continue()
        endif()
        list(APPEND violations "${f}: ${line}   [${name}]")
      endif()
    endforeach()
  endforeach()
  set(RAMPART_VIOLATIONS ${violations} PARENT_SCOPE)
endfunction()

set(SRC "*.h" "*.cc")
macro(rampart_dirs out)
  set(${out} "")
  foreach(d ${ARGN})
    foreach(e ${SRC})
      list(APPEND ${out} "${d}/${e}")
    endforeach()
  endforeach()
endmacro()

# Domain code: no generated protobuf/gRPC types (CONVENTIONS 3).
rampart_dirs(domain common agent/domino agent/tail agent/spool agent/firewall
             sim server/core server/store server/config server/enroll)
rampart_rule(no-proto-in-domain FILES ${domain}
  FORBID "\\.pb\\.h|[<\"]grpcpp?/|[<\"]google/protobuf/")

# libpqxx only inside the PostgreSQL store (CONVENTIONS 5).
rampart_dirs(product common agent ctl sim server)
rampart_rule(pqxx-only-in-pg-store FILES ${product}
  EXCEPT_FILES "^server/store/pg_(store\\.cc|status\\.h|status\\.cc)$"
  FORBID "[<\"]pqxx/")

# SQLite only inside the SQLite store; sqlite_store.h itself stays free of it
# (the SQLite header is private, like the PostgreSQL one).
rampart_rule(sqlite-only-in-sqlite-store FILES ${product}
  EXCEPT_FILES "^server/store/sqlite_(store\\.cc|statement\\.h|statement\\.cc)$"
  FORBID "sqlite3\\.h|server/store/sqlite_statement\\.h")

# The core is pure: it sees no store implementation, edge, config or
# process wiring, and no OS header (CONVENTIONS 16). Store, the port it
# persists through, is declared in server/core/store.h.
rampart_dirs(core server/core)
rampart_rule(core-sees-no-outer-module FILES ${core}
  FORBID "\"server/(store|grpc|app|config|enroll|http)/")
rampart_rule(core-has-no-os-header FILES ${core}
  FORBID "<(unistd\\.h|fcntl\\.h|windows\\.h|sys/|netinet/|arpa/|pthread\\.h)")

# Store depends on core, only on its value types and the Store port, never
# on the Correlator, Detector or admin code.
rampart_dirs(store server/store)
rampart_rule(store-sees-core-values-only FILES ${store}
  FORBID "\"server/core/"
  ALLOW "\"server/core/(auth_event|ban|records|durable_state|store|enrollment_store)\\.h\"")
rampart_rule(store-sees-no-outer-module FILES ${store}
  FORBID "\"server/(grpc|app|config|enroll|http)/")

# common/ is the bottom layer; the three programs do not include each
# other, and the simulator stands beside the agent.
rampart_dirs(common_files common)
rampart_rule(common-is-the-bottom FILES ${common_files}
  FORBID "\"(agent|server|ctl|sim)/")
rampart_dirs(agent_files agent)
rampart_rule(agent-sees-no-server-or-ctl FILES ${agent_files}
  FORBID "\"(server|ctl)/")
rampart_dirs(ctl_files ctl)
rampart_rule(ctl-sees-no-server-or-agent FILES ${ctl_files}
  FORBID "\"(server|agent)/")
rampart_dirs(sim_files sim)
rampart_rule(sim-sees-no-program FILES ${sim_files}
  FORBID "\"(server|agent|ctl)/")

if(RAMPART_VIOLATIONS)
  list(JOIN RAMPART_VIOLATIONS "\n  " text)
  message(FATAL_ERROR
    "dependency rules violated (docs/architecture.md, \"Dependency rules\"):\n  ${text}")
endif()
message(STATUS "dependency rules hold (${RAMPART_FILES_CHECKED} file checks)")
