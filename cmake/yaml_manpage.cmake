# Writes jobd.yaml(5) from etc/jobd.yaml, the documented default
# configuration (one source of truth): its comments explain each key.
#   cmake -DYAML=etc/jobd.yaml -DOUT=jobd.yaml.5 -DVERSION=x.y.z -P yaml_manpage.cmake
include(${CMAKE_CURRENT_LIST_DIR}/roff.cmake)
file(READ ${YAML} text)
roff_escape(text "${text}")
file(WRITE ${OUT} ".TH JOBD.YAML 5 \"\" \"jobd ${VERSION}\" \"File formats\"
.SH NAME
jobd.yaml \\- configuration of jobd, its pools and settings
.SH SYNOPSIS
.B jobd \\-\\-config
.I FILE
.SH DESCRIPTION
jobd reads its configuration from the YAML file given with \\fB\\-\\-config\\fR, or uses
the embedded default below (\\fBjobd \\-\\-print\\-default\\-config\\fR prints it).
Every key is optional. An unknown key, or a value of the wrong type, is an error that
names the key and the line; \\fBjobd \\-\\-check\\-config\\fR checks a file without
starting. SIGHUP (\\fBsystemctl reload\\fR) reads the file again.
.SH THE DEFAULT CONFIGURATION, EXPLAINED
.nf
${text}.fi
.SH SEE ALSO
.BR jobd (1),
.BR jobctl (1)
")
