# install(EXPORT) so a consumer can find_package(flowork CONFIG).
include(CMakePackageConfigHelpers)

install(TARGETS flowork_proto flowork_core flowork_core_grpc flowork_router flowork_router_grpc
                flowork_agent flowork_agent_grpc
        EXPORT floworkTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# Private helpers our static libraries reference at link time.
install(TARGETS flowork_internal flowork_warnings EXPORT floworkTargets)

install(EXPORT floworkTargets NAMESPACE flowork::
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flowork)
configure_package_config_file(cmake/floworkConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/floworkConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flowork)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/floworkConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/floworkConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/floworkConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flowork)
