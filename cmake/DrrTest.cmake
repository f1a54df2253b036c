include(GoogleTest)

# Every test leaves its files in here (TEST_TMPDIR, ::testing::TempDir()).
set(DRR_TEST_TMPDIR ${PROJECT_BINARY_DIR}/test-tmp)
file(MAKE_DIRECTORY ${DRR_TEST_TMPDIR})

# drr_test(NAME SOURCES ... LIBS ... LABEL label TIMEOUT seconds): one
# GoogleTest binary, discovered into ctest with that label and per-test
# timeout. Tests named Cuda* or instantiated for "cuda" get the label `cuda`
# instead (they skip themselves without a device).
function(drr_test name)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE drr_test_support)
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gmock GTest::gtest_main)
  drr_warnings(${name})
  # (One variable per property: gtest_discover_tests splits lists.)
  set(environment
      ENVIRONMENT "DRR_SHARED_DATA=${PROJECT_SOURCE_DIR}/../shared/data"
      ENVIRONMENT_MODIFICATION "TEST_TMPDIR=set:${DRR_TEST_TMPDIR}")
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_FILTER "-Cuda*:*/cuda"
    PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT} ${environment})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_FILTER "Cuda*:*/cuda"
    PROPERTIES LABELS cuda TIMEOUT 300 ${environment})
endfunction()
