# Eigen 3.4: a system/conda install first, then the cmeel-eigen wheel, whose config lives
# under <site-packages>/cmeel.prefix, where CMake does not look on its own.
find_package(Eigen3 3.4 CONFIG QUIET)
if(NOT Eigen3_FOUND)
  set(_adapprox_eigen_hints "")
  foreach(_p IN LISTS CMAKE_PREFIX_PATH)
    list(APPEND _adapprox_eigen_hints "${_p}/cmeel.prefix" "${_p}/../cmeel.prefix")
  endforeach()
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    execute_process(
      COMMAND "${Python3_EXECUTABLE}" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"
      OUTPUT_VARIABLE _adapprox_purelib OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(_adapprox_purelib)
      list(APPEND _adapprox_eigen_hints "${_adapprox_purelib}/cmeel.prefix")
    endif()
  endif()
  find_package(Eigen3 3.4 CONFIG REQUIRED PATHS ${_adapprox_eigen_hints})
endif()
message(STATUS "adapprox: Eigen ${Eigen3_VERSION} from ${Eigen3_DIR}")
