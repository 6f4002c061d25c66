# A help2man --include file with one more section: what `PROGRAM help
# COMMAND` prints (jobctl's map and starmap options, which --help only
# points to), verbatim.
#   cmake -DPROGRAM=jobctl -DCOMMAND=map -DOUT=FILE -P usage_section.cmake
include(${CMAKE_CURRENT_LIST_DIR}/roff.cmake)
execute_process(COMMAND ${PROGRAM} help ${COMMAND} OUTPUT_VARIABLE text COMMAND_ERROR_IS_FATAL ANY)
roff_escape(text "${text}")
file(WRITE ${OUT} "[jobctl ${COMMAND}]\n.nf\n${text}.fi\n")
