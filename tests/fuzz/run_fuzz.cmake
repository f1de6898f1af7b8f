# run_fuzz.cmake: the body of the fuzz_compile_bounded test.
#   cmake -DFUZZER=... -DSOURCE_DIR=... -DWORK_DIR=... -DSECONDS=... -P run_fuzz.cmake
# Seeds are copied afresh from whatever .irg files exist now; the corpus the
# fuzzer grows is kept in WORK_DIR between runs. Any crash, leak, sanitizer
# report or timeout makes libFuzzer exit non-zero, which fails the test.
foreach(var FUZZER SOURCE_DIR WORK_DIR SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${var}=... is required")
  endif()
endforeach()

set(seeds ${WORK_DIR}/seeds)
set(corpus ${WORK_DIR}/corpus)
set(artifacts ${WORK_DIR}/artifacts/)
set(scratch ${WORK_DIR}/scratch)
file(REMOVE_RECURSE ${seeds} ${scratch})
file(MAKE_DIRECTORY ${seeds} ${corpus} ${artifacts} ${scratch})
file(GLOB seed_files
  ${SOURCE_DIR}/models/*.irg
  ${SOURCE_DIR}/tests/bad/*.irg
  ${SOURCE_DIR}/tests/golden/*.irg
  ${SOURCE_DIR}/tests/fuzz/regressions/*)
foreach(f IN LISTS seed_files)
  get_filename_component(dir ${f} DIRECTORY)
  get_filename_component(dirname ${dir} NAME)
  get_filename_component(name ${f} NAME)
  # Two suites may use one file name: keep both.
  configure_file(${f} ${seeds}/${dirname}_${name} COPYONLY)
endforeach()
list(LENGTH seed_files nseeds)
message(STATUS "fuzz: ${nseeds} seed files, ${SECONDS} s")

# First replay the fixed crashes, once each (no fuzzing).
file(GLOB regressions ${SOURCE_DIR}/tests/fuzz/regressions/*)
if(regressions)
  execute_process(
    COMMAND ${FUZZER} -rss_limit_mb=2048 -timeout=10 ${regressions}
    WORKING_DIRECTORY ${scratch}
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzz: a regression input in tests/fuzz/regressions failed (exit ${rc})")
  endif()
endif()

# Relative imports resolve against the working directory: an empty one.
set(common -rss_limit_mb=2048 -timeout=10
    -dict=${SOURCE_DIR}/tests/fuzz/irg.dict -artifact_prefix=${artifacts})
execute_process(
  COMMAND ${FUZZER} ${common} -max_total_time=${SECONDS} -print_final_stats=1
          ${corpus} ${seeds}
  WORKING_DIRECTORY ${scratch}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz: fuzz_compile failed (exit ${rc}); "
                      "the input that failed is in ${artifacts}")
endif()
