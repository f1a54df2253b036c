include(GoogleTest)

# drr_test(NAME SOURCES ... LIBS ...): one GoogleTest binary, discovered into ctest.
function(drr_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE drr_test_support)
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest_main)
  drr_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES ENVIRONMENT "DRR_SHARED_DATA=${PROJECT_SOURCE_DIR}/../shared/data")
endfunction()
