# The drrserve C++ client library, installed by `cmake --install`:
#   find_package(drrclient REQUIRED)
#   target_link_libraries(app PRIVATE drr::drr_client)
include(CMakeFindDependencyMacro)
find_dependency(OpenSSL)
find_dependency(Protobuf)
find_dependency(absl CONFIG)
find_dependency(gRPC CONFIG)
include(${CMAKE_CURRENT_LIST_DIR}/drrclientTargets.cmake)
