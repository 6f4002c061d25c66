// Commands per item (jobctl map --exec): the xargs / GNU parallel model,
// without a shell unless asked, so an item's text is never parsed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "jobd.pb.h"
#include "jobd/status.h"

namespace jobd {

// Runs `exec` for one item: item number `number` (from 1) on worker slot
// `slot` (from 1). The result is the command's stdout without one trailing
// newline; a non-zero exit or a signal is an error carrying the tail of its
// stderr.
Result<std::string> RunCommand(const wire::Exec& exec, std::string_view item, uint64_t number,
                               uint32_t slot);

// `word` with its replacement strings ({} {.} {/} {//} {/.} {#} {%}) filled
// in; `quote` shell-quotes what comes from the item. Sets *uses_item if the
// word refers to the item.
std::string ExpandWord(std::string_view word, std::string_view item, uint64_t number,
                       uint32_t slot, bool quote, bool* uses_item);
// `text` as one word for /bin/sh.
std::string ShellQuote(std::string_view text);

}  // namespace jobd
