#include "common/args.h"

#include <cstdint>
#include <cstring>

namespace jobd {
namespace {

void PutU32(char* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint32_t GetU32(const char* in) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

}  // namespace

size_t PackedSize(const std::vector<std::string_view>& args) {
  size_t size = 4;
  for (std::string_view arg : args) size += 4 + arg.size();
  return size;
}

void PackArgs(const std::vector<std::string_view>& args, char* out) {
  PutU32(out, static_cast<uint32_t>(args.size()));
  out += 4;
  for (std::string_view arg : args) {
    PutU32(out, static_cast<uint32_t>(arg.size()));
    if (!arg.empty()) std::memcpy(out + 4, arg.data(), arg.size());
    out += 4 + arg.size();
  }
}

Result<std::vector<std::string_view>> UnpackArgs(std::string_view packed) {
  if (packed.size() < 4) return Status::Error("malformed argument tuple: no count");
  const uint32_t count = GetU32(packed.data());
  packed.remove_prefix(4);
  // Each argument needs at least its length: a count beyond that is a lie.
  if (count > packed.size() / 4) return Status::Error("malformed argument tuple: bad count");
  std::vector<std::string_view> args;
  args.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (packed.size() < 4) return Status::Error("malformed argument tuple: truncated");
    const uint32_t length = GetU32(packed.data());
    packed.remove_prefix(4);
    if (length > packed.size()) return Status::Error("malformed argument tuple: truncated");
    args.push_back(packed.substr(0, length));
    packed.remove_prefix(length);
  }
  if (!packed.empty()) return Status::Error("malformed argument tuple: trailing bytes");
  return args;
}

}  // namespace jobd
