# Every dependency is a Debian 12 package found locally; nothing is downloaded.
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Protobuf MODULE REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(Boost 1.81 CONFIG REQUIRED COMPONENTS json)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)

# The server binaries allocate with mimalloc: on the router's request path
# it cut CPU per proxied request by about 10% against glibc's malloc, with
# 0.5 MB more resident at idle (docs/benchmarks.md). Not with sanitizers,
# which bring their own allocator. The libraries never depend on it.
option(FLOWORK_MIMALLOC "Link flowork-router and flowork-agent with mimalloc" ON)
if(FLOWORK_MIMALLOC AND NOT FLOWORK_SANITIZE)
  find_package(mimalloc CONFIG REQUIRED)
endif()
if(FLOWORK_BUILD_TESTS)
  find_package(GTest CONFIG REQUIRED)
endif()
if(FLOWORK_BUILD_BENCHMARKS)
  find_package(benchmark CONFIG REQUIRED)
endif()
