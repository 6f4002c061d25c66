// The functions a worker can apply to an item, by name.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "jobd/status.h"

namespace jobd {

class TaskOutput;

// Maps one item to its result, or to an error message for that item alone.
using FunctionBody = std::function<Result<std::string>(std::string_view item)>;
// Writes one item's result (or error) into `out` itself: plugins, whose large
// results go straight to shared memory. `args` is the item (one argument), or
// a starmap item's arguments.
using FunctionWriter =
    std::function<void(const std::vector<std::string_view>& args, TaskOutput& out)>;

struct Function {
  std::string name;
  std::string summary;  // one line for `jobctl functions`
  FunctionBody body;    // one of body and write is set
  FunctionWriter write = nullptr;
};

class FunctionRegistry {
 public:
  void Add(Function function);
  // Null if there is no function of that name.
  const Function* Find(std::string_view name) const;
  // Every function, sorted by name.
  std::vector<const Function*> List() const;

 private:
  std::map<std::string, Function, std::less<>> functions_;
};

// sha256, identity, len, primes, sleep, fail, crash.
FunctionRegistry BuiltinFunctions();

}  // namespace jobd
