// Splitting `jobctl map --exec 'CMD ARGS'` into words.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

// Splits a command line into words as a shell would, expanding nothing:
// blanks separate words; '...' is literal; "..." is literal but for \" \\ \$
// and \`; a backslash outside quotes keeps the next character as it is.
Result<std::vector<std::string>> SplitWords(std::string_view line);

}  // namespace jobd
