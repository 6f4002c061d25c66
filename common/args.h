// Items of starmap: a tuple of byte strings packed into one payload, so that
// they travel (inline or in shared memory) like any other item. Layout, all
// little-endian: u32 count, then per argument u32 length and its bytes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

size_t PackedSize(const std::vector<std::string_view>& args);
// Writes the packed tuple to `out`, which holds PackedSize(args) bytes.
void PackArgs(const std::vector<std::string_view>& args, char* out);
// The arguments of a packed tuple, every length checked against the bytes:
// it came from another process.
Result<std::vector<std::string_view>> UnpackArgs(std::string_view packed);

}  // namespace jobd
