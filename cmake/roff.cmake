# `text` made safe to show verbatim in a man page (between .nf and .fi): a
# backslash becomes \e, and a line that starts with . or ' is no request.
function(roff_escape variable text)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  set(${variable} "${text}" PARENT_SCOPE)
endfunction()
