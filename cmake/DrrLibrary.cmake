# Per-target include roots: the layering of design.md §2, enforced by the
# compiler. Every library sees only the headers of the libraries it links:
# `drr_include_root(drr_engine server/engine)` makes
# build/include/drr_engine/server/engine a link to the source folder and
# puts build/include/drr_engine on drr_engine's include path (and on the
# path of everything that links drr_engine). The repository root is on no
# include path, so a header of a library a target does not link does not
# resolve: the engine cannot include generated gRPC code, the kernels cannot
# include the server.

# drr_include_root(TARGET FOLDER): TARGET's headers are FOLDER/*.h, included
# as "FOLDER/name.h".
function(drr_include_root target folder)
  set(root ${PROJECT_BINARY_DIR}/include/${target})
  get_filename_component(parent ${root}/${folder} DIRECTORY)
  file(MAKE_DIRECTORY ${parent})
  if(NOT EXISTS ${root}/${folder})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${folder} ${root}/${folder} SYMBOLIC)
  endif()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE $<BUILD_INTERFACE:${root}>
                               $<INSTALL_INTERFACE:include>)
  else()
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${root}>
                               $<INSTALL_INTERFACE:include>)
  endif()
endfunction()

# drr_install_headers(FOLDER): installs FOLDER/*.h as include/FOLDER/*.h, the
# paths the installed targets' users include them by.
function(drr_install_headers folder)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${folder}/ DESTINATION include/${folder}
          COMPONENT client FILES_MATCHING PATTERN "*.h" PATTERN "cuda" EXCLUDE)
endfunction()
