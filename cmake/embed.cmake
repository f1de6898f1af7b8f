# Turns a text file into a C string constant, so that the programs carry
# the sources they generate code from (kernel preludes, the CUDA emulation
# header) and never read the source tree at run time.
#   cmake -DINPUT=f -DOUTPUT=f.c -DNAME=symbol -P embed.cmake
file(READ ${INPUT} text)
string(REPLACE "\\" "\\\\" text "${text}")
string(REPLACE "\"" "\\\"" text "${text}")
string(REPLACE "\n" "\\n\"\n\"" text "${text}")
file(WRITE ${OUTPUT} "/* generated from ${INPUT} by cmake/embed.cmake */\nconst char ${NAME}[] =\n\"${text}\";\n")
