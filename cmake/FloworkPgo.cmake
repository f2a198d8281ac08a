# Profile-guided optimisation (GCC), in two passes over one build directory:
# FLOWORK_PGO=generate instruments the code, and each run of its binaries adds
# to the profile in FLOWORK_PGO_DIR; FLOWORK_PGO=use compiles it again with
# that profile. scripts/build-pgo does the whole round in build/release-pgo
# (the release-pgo preset), with a training run between the passes.
#
# Both passes must build in the same directory: the profile is found by the
# object files' paths, and generated sources (gen/) carry the directory in
# their own. -fprofile-partial-training compiles the functions the training
# never ran as if there were no profile, not for size; branches never taken
# inside functions it did run are still laid out as cold. The binary is
# larger than a release build's.
#
# A profile is for the sources it was recorded on. After a change, a
# FLOWORK_PGO=use build still compiles (coverage-mismatch is a warning here,
# and a changed function is compiled without its profile), but only a new
# training run (scripts/build-pgo) brings the whole gain back.
set(FLOWORK_PGO "" CACHE STRING "Profile-guided optimisation: empty, generate or use")
set_property(CACHE FLOWORK_PGO PROPERTY STRINGS "" generate use)
set(FLOWORK_PGO_DIR "${CMAKE_BINARY_DIR}/pgo-profile" CACHE PATH
    "Where FLOWORK_PGO=generate writes the profile and FLOWORK_PGO=use reads it")

if(FLOWORK_PGO)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    message(FATAL_ERROR "FLOWORK_PGO needs GCC (found ${CMAKE_CXX_COMPILER_ID})")
  endif()
  if(FLOWORK_SANITIZE)
    message(FATAL_ERROR "FLOWORK_PGO and FLOWORK_SANITIZE do not go together")
  endif()
  if(FLOWORK_PGO STREQUAL "generate")
    # prefer-atomic: the router's threads update the counters together.
    add_compile_options(-fprofile-generate=${FLOWORK_PGO_DIR} -fprofile-update=prefer-atomic)
    add_link_options(-fprofile-generate=${FLOWORK_PGO_DIR})
  elseif(FLOWORK_PGO STREQUAL "use")
    file(GLOB_RECURSE _pgo_profiles "${FLOWORK_PGO_DIR}/*.gcda")
    if(NOT _pgo_profiles)
      message(FATAL_ERROR "FLOWORK_PGO=use: no profile in ${FLOWORK_PGO_DIR} "
                          "(scripts/build-pgo trains one first)")
    endif()
    # -fprofile-correction: counters updated by several threads may disagree
    # slightly. Files with no profile (code the training never loaded) are
    # compiled as usual, without a warning each.
    add_compile_options(-fprofile-use=${FLOWORK_PGO_DIR} -fprofile-partial-training
                        -fprofile-correction -Wno-missing-profile -Wno-error=coverage-mismatch)
  else()
    message(FATAL_ERROR "FLOWORK_PGO must be empty, generate or use (got '${FLOWORK_PGO}')")
  endif()
endif()
