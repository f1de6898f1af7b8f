# run_fuzz_safetensors.cmake: the body of the fuzz_safetensors_bounded test.
#   cmake -DFUZZER=... -DSOURCE_DIR=... -DWORK_DIR=... -DSECONDS=... -P run_fuzz_safetensors.cmake
# Replays the fixed crashes, then fuzzes from the safetensors fixtures; the
# corpus the fuzzer grows is kept in WORK_DIR between runs. A crash, leak,
# sanitizer report or timeout makes libFuzzer exit non-zero: the test fails.
foreach(var FUZZER SOURCE_DIR WORK_DIR SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzz_safetensors.cmake: -D${var}=... is required")
  endif()
endforeach()

set(here ${SOURCE_DIR}/tests/fuzz_runtime)
set(seeds ${WORK_DIR}/seeds)
set(corpus ${WORK_DIR}/corpus)
set(artifacts ${WORK_DIR}/artifacts/)
file(REMOVE_RECURSE ${seeds})
file(MAKE_DIRECTORY ${seeds} ${corpus} ${artifacts})
file(GLOB fixtures ${SOURCE_DIR}/tests/runtime/safetensors/*.safetensors)
file(GLOB regressions ${here}/regressions/*)
file(COPY ${fixtures} ${regressions} DESTINATION ${seeds})
set(common -rss_limit_mb=2048 -timeout=10 -dict=${here}/safetensors.dict -artifact_prefix=${artifacts})

if(regressions)
  execute_process(COMMAND ${FUZZER} ${common} ${regressions} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "fuzz: an input in tests/fuzz_runtime/regressions failed (exit ${rc})")
  endif()
endif()

message(STATUS "fuzz: fuzz_safetensors for ${SECONDS} s")
execute_process(
  COMMAND ${FUZZER} ${common} -max_total_time=${SECONDS} -print_final_stats=1 ${corpus} ${seeds}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz: fuzz_safetensors failed (exit ${rc}); the input is in ${artifacts}")
endif()
