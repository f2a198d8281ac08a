# flowork_generate_proto(OUT_SRCS OUT_HDRS [GRPC] PROTOS a.proto ...)
# Runs protoc (and the gRPC plugin with GRPC) on files under proto/, writing
# into ${CMAKE_BINARY_DIR}/gen with the same relative paths.
set(FLOWORK_PROTO_ROOT "${CMAKE_SOURCE_DIR}/proto")
set(FLOWORK_GEN_DIR "${CMAKE_BINARY_DIR}/gen")
file(MAKE_DIRECTORY "${FLOWORK_GEN_DIR}")
get_target_property(FLOWORK_GRPC_CPP_PLUGIN gRPC::grpc_cpp_plugin LOCATION)

function(flowork_generate_proto out_srcs out_hdrs)
  cmake_parse_arguments(ARG "GRPC" "" "PROTOS" ${ARGN})
  set(srcs)
  set(hdrs)
  foreach(proto IN LISTS ARG_PROTOS)
    get_filename_component(dir "${proto}" DIRECTORY)
    get_filename_component(stem "${proto}" NAME_WE)
    set(base "${FLOWORK_GEN_DIR}/${dir}/${stem}")
    if(ARG_GRPC)
      set(outputs "${base}.grpc.pb.cc" "${base}.grpc.pb.h")
      set(args --grpc_out=${FLOWORK_GEN_DIR}
               --plugin=protoc-gen-grpc=${FLOWORK_GRPC_CPP_PLUGIN})
      list(APPEND srcs "${base}.grpc.pb.cc")
      list(APPEND hdrs "${base}.grpc.pb.h")
    else()
      set(outputs "${base}.pb.cc" "${base}.pb.h")
      set(args --cpp_out=${FLOWORK_GEN_DIR})
      list(APPEND srcs "${base}.pb.cc")
      list(APPEND hdrs "${base}.pb.h")
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND protobuf::protoc -I ${FLOWORK_PROTO_ROOT} ${args}
              "${FLOWORK_PROTO_ROOT}/${proto}"
      DEPENDS "${FLOWORK_PROTO_ROOT}/${proto}" protobuf::protoc
      COMMENT "protoc ${proto}${ARG_GRPC}"
      VERBATIM)
  endforeach()
  set(${out_srcs} ${srcs} PARENT_SCOPE)
  set(${out_hdrs} ${hdrs} PARENT_SCOPE)
endfunction()
