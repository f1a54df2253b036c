# What `cmake --install build [--prefix P] [--component C]` puts where:
#   runtime  bin/drrserve, bin/drrctl
#   client   the C++ client library: lib/libdrr_*.a, include/{client/cpp,
#            wire,volume,geometry,numeric,defaults,drr/v1}, the CMake package
#            lib/cmake/drrclient (find_package(drrclient); drr::drr_client)
#   python   the Python package drrclient and its drr.v1 stubs, in
#            DRR_INSTALL_PYTHONDIR (put it on PYTHONPATH, or point it at a
#            site-packages directory)
install(TARGETS drrserve drrctl RUNTIME DESTINATION bin COMPONENT runtime)

install(TARGETS drr_client drr_wire drr_volume drr_geometry drr_numeric drr_defaults drr_proto
        EXPORT drrclient ARCHIVE DESTINATION lib COMPONENT client)
foreach(folder client/cpp wire volume geometry numeric defaults)
  drr_install_headers(${folder})
endforeach()
install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/gen/drr DESTINATION include COMPONENT client
        FILES_MATCHING PATTERN "*.h")
install(EXPORT drrclient NAMESPACE drr:: DESTINATION lib/cmake/drrclient
        FILE drrclientTargets.cmake COMPONENT client)
include(CMakePackageConfigHelpers)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/drrclientConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_SOURCE_DIR}/cmake/drrclientConfig.cmake
              ${PROJECT_BINARY_DIR}/drrclientConfigVersion.cmake
        DESTINATION lib/cmake/drrclient COMPONENT client)

if(DRR_PYTHON)
  set(DRR_INSTALL_PYTHONDIR lib/python3/site-packages CACHE PATH
      "Where `cmake --install` puts the Python package (relative to the prefix)")
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/python/drrclient
          DESTINATION ${DRR_INSTALL_PYTHONDIR} COMPONENT python
          PATTERN __pycache__ EXCLUDE)
  install(DIRECTORY ${PROJECT_BINARY_DIR}/python/drr DESTINATION ${DRR_INSTALL_PYTHONDIR}
          COMPONENT python FILES_MATCHING PATTERN "*.py")
endif()
