// Unpredictable text for names and secrets, from the kernel's CSPRNG.
#pragma once

#include <sys/random.h>

#include <cstdint>
#include <string>

namespace jobd {

// 2 * `bytes` lowercase hex digits.
inline std::string RandomHex(size_t bytes) {
  std::string random(bytes, '\0');
  for (size_t filled = 0; filled < bytes;) {
    const ssize_t n = getrandom(random.data() + filled, bytes - filled, 0);
    if (n > 0) filled += static_cast<size_t>(n);
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes);
  for (unsigned char c : random) {
    hex += kDigits[c >> 4];
    hex += kDigits[c & 15];
  }
  return hex;
}

}  // namespace jobd
