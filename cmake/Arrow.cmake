# Apache Arrow C++ and Parquet C++ from the pinned pyarrow wheel (issue 17;
# deploy/local/install-arrow.sh unpacks it, install-deps.sh runs that).
# Debian 12 has no Arrow package; the wheel ships Arrow's C++ headers and
# shared libraries for exactly this use. Defines the imported targets
#   telemetry::arrow     libarrow (core, IPC, local filesystem)
#   telemetry::parquet   libparquet
#   telemetry::arrow_s3  libarrow_s3 (the S3 filesystem)
# linked by full path with their soname, so the build tree's binaries find
# them through their RPATH; a deployment puts the three libraries where the
# binaries' INSTALL_RPATH or the loader looks (deploy/docker/Dockerfile).
#
# Arrow 26's headers need C++20 (std::span): a target that includes them
# gets cxx_std_20 from these targets. Keep Arrow out of public headers, so
# the rest of the tree stays C++17. The libraries export only their own
# symbols (their bundled protobuf, Abseil, AWS SDK, zstd ... are hidden):
# tests/unit/arrow_link_test.cc proves one process holds them and Debian's
# gRPC / protobuf / Abseil.
set(TELEMETRY_ARROW_VERSION 26.0.1)
set(TELEMETRY_ARROW_SO_VERSION 2600)

if(DEFINED ENV{TELEMETRY_CACHE_DIR} AND NOT "$ENV{TELEMETRY_CACHE_DIR}" STREQUAL "")
  set(_arrow_cache "$ENV{TELEMETRY_CACHE_DIR}")
elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_arrow_cache "$ENV{XDG_CACHE_HOME}/telemetry")
else()
  set(_arrow_cache "$ENV{HOME}/.cache/telemetry")
endif()
set(_arrow_default "${_arrow_cache}/arrow-${TELEMETRY_ARROW_VERSION}")
if(DEFINED ENV{TELEMETRY_ARROW_ROOT} AND NOT "$ENV{TELEMETRY_ARROW_ROOT}" STREQUAL "")
  set(_arrow_default "$ENV{TELEMETRY_ARROW_ROOT}")
endif()
set(TELEMETRY_ARROW_ROOT "${_arrow_default}" CACHE PATH
  "Apache Arrow C++ ${TELEMETRY_ARROW_VERSION} unpacked by deploy/local/install-arrow.sh")

if(NOT EXISTS "${TELEMETRY_ARROW_ROOT}/.complete")
  message(FATAL_ERROR "Apache Arrow C++ ${TELEMETRY_ARROW_VERSION} not found in "
    "${TELEMETRY_ARROW_ROOT}: run deploy/local/install-arrow.sh (deploy/local/install-deps.sh "
    "runs it), or point -DTELEMETRY_ARROW_ROOT at its output")
endif()
file(STRINGS "${TELEMETRY_ARROW_ROOT}/VERSION" _arrow_found LIMIT_COUNT 1)
if(NOT _arrow_found STREQUAL TELEMETRY_ARROW_VERSION)
  message(FATAL_ERROR "${TELEMETRY_ARROW_ROOT} holds Arrow ${_arrow_found}, this tree pins "
    "${TELEMETRY_ARROW_VERSION}: run deploy/local/install-arrow.sh")
endif()

foreach(_lib arrow parquet arrow_s3)
  add_library(telemetry::${_lib} SHARED IMPORTED)
  set_target_properties(telemetry::${_lib} PROPERTIES
    IMPORTED_LOCATION "${TELEMETRY_ARROW_ROOT}/lib/lib${_lib}.so.${TELEMETRY_ARROW_SO_VERSION}"
    IMPORTED_SONAME "lib${_lib}.so.${TELEMETRY_ARROW_SO_VERSION}"
    INTERFACE_INCLUDE_DIRECTORIES "${TELEMETRY_ARROW_ROOT}/include"
    INTERFACE_COMPILE_FEATURES cxx_std_20)
endforeach()
set_target_properties(telemetry::parquet telemetry::arrow_s3 PROPERTIES
  INTERFACE_LINK_LIBRARIES telemetry::arrow)
message(STATUS "Apache Arrow C++ ${TELEMETRY_ARROW_VERSION}: ${TELEMETRY_ARROW_ROOT}")
