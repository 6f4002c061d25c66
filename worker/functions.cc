#include "worker/functions.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <thread>

namespace jobd {

void FunctionRegistry::Add(Function function) {
  std::string name = function.name;
  functions_.insert_or_assign(std::move(name), std::move(function));
}

const Function* FunctionRegistry::Find(std::string_view name) const {
  auto found = functions_.find(name);
  return found == functions_.end() ? nullptr : &found->second;
}

std::vector<const Function*> FunctionRegistry::List() const {
  std::vector<const Function*> list;
  for (const auto& [name, function] : functions_) list.push_back(&function);
  return list;
}

namespace {

// The item as a whole number no larger than `max`, or an error naming the function.
Result<uint64_t> ParseCount(std::string_view function, std::string_view item, uint64_t max) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
  if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
    std::string shown(item.substr(0, 40));
    if (item.size() > 40) shown += "...";
    return Status::Error(std::string(function) + ": expected a whole number, got '" + shown + "'");
  }
  if (value > max) {
    return Status::Error(std::string(function) + ": " + std::to_string(value) +
                         " is larger than the limit of " + std::to_string(max));
  }
  return value;
}

Result<std::string> Sha256(std::string_view item) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(item.data(), item.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return Status::Error("sha256: OpenSSL failed to compute the digest");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * length, '\0');
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 15];
  }
  return hex;
}

// Counts primes <= n with a sieve over odd numbers.
uint64_t CountPrimes(uint64_t n) {
  if (n < 2) return 0;
  std::vector<bool> composite((n - 1) / 2, false);  // entry i stands for 2i + 3
  uint64_t count = 1;                               // the prime 2
  for (uint64_t i = 0; i < composite.size(); ++i) {
    if (composite[i]) continue;
    ++count;
    const uint64_t p = 2 * i + 3;
    for (uint64_t multiple = p * p; multiple <= n; multiple += 2 * p) {
      composite[(multiple - 3) / 2] = true;
    }
  }
  return count;
}

}  // namespace

FunctionRegistry BuiltinFunctions() {
  FunctionRegistry registry;
  registry.Add({"sha256", "SHA-256 of the item, as 64 hex digits (same as sha256sum)", Sha256});
  registry.Add({"identity", "the item itself",
                [](std::string_view item) -> Result<std::string> { return std::string(item); }});
  registry.Add({"len", "the item's length in bytes",
                [](std::string_view item) -> Result<std::string> {
                  return std::to_string(item.size());
                }});
  registry.Add({"primes", "how many primes are <= N (CPU-heavy; N up to 10^9)",
                [](std::string_view item) -> Result<std::string> {
                  Result<uint64_t> n = ParseCount("primes", item, 1'000'000'000);
                  if (!n.ok()) return n.status();
                  return std::to_string(CountPrimes(*n));
                }});
  registry.Add({"sleep", "sleeps N milliseconds, then returns N (stands in for I/O)",
                [](std::string_view item) -> Result<std::string> {
                  Result<uint64_t> ms = ParseCount("sleep", item, 3'600'000);
                  if (!ms.ok()) return ms.status();
                  std::this_thread::sleep_for(std::chrono::milliseconds(*ms));
                  return std::string(item);
                }});
  registry.Add({"fail", "always fails (for testing error paths)",
                [](std::string_view item) -> Result<std::string> {
                  return Status::Error("fail: this function always fails (the item had " +
                                       std::to_string(item.size()) + " bytes)");
                }});
  registry.Add({"crash",
                "aborts the worker process (for testing crash recovery); items starting "
                "with 'ok' are echoed instead, to mix healthy items in",
                [](std::string_view item) -> Result<std::string> {
                  if (item.substr(0, 2) == "ok") return std::string(item);
                  std::abort();
                }});
  return registry;
}

}  // namespace jobd
