#include "worker/plugins.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include "jobd/plugin.h"
#include "worker/output.h"

namespace jobd {
namespace {

// A jobd_result whose calls land in a TaskOutput.
struct ResultAdapter : jobd_result {
  explicit ResultAdapter(TaskOutput& output) : jobd_result{&Reserve, &Commit, &Fail}, out(output) {}
  static char* Reserve(jobd_result* self, size_t capacity) {
    return static_cast<ResultAdapter*>(self)->out.Reserve(capacity);
  }
  static void Commit(jobd_result* self, size_t size) {
    static_cast<ResultAdapter*>(self)->out.Commit(size);
  }
  static void Fail(jobd_result* self, const char* message) {
    static_cast<ResultAdapter*>(self)->out.Fail(message != nullptr ? message : "failed");
  }
  TaskOutput& out;
};

}  // namespace

struct Plugins::Loaded {
  void* handle = nullptr;
  const jobd_plugin* plugin = nullptr;
  void* state = nullptr;
  ~Loaded() {
    if (plugin != nullptr && plugin->fini != nullptr) plugin->fini(state);
    if (handle != nullptr) dlclose(handle);
  }
};

Plugins::Plugins() = default;
Plugins::~Plugins() = default;

// The file as it is now: a plugin rebuilt in place is a new plugin.
std::string Plugins::Identity(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return path;
  return path + "@" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
}

Result<Plugins::Loaded*> Plugins::Open(const std::string& path) {
  const std::string identity = Identity(path);
  if (auto found = loaded_.find(identity); found != loaded_.end()) return found->second.get();
  // Failures are not remembered: the next task tries again (a fixed plugin).
  auto fail = [&](const std::string& why) -> Status {
    return Status::Error("plugin " + path + ": " + why);
  };
  auto loaded = std::make_unique<Loaded>();
  loaded->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (loaded->handle == nullptr) return fail(std::string("cannot load it: ") + dlerror());
  using Entry = const jobd_plugin* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(loaded->handle, "jobd_plugin_v1"));
  if (entry == nullptr) {
    return fail("not a jobd plugin: it exports no jobd_plugin_v1 (see include/jobd/plugin.h)");
  }
  const jobd_plugin* plugin = entry();
  if (plugin == nullptr || plugin->abi_version != JOBD_PLUGIN_ABI_VERSION) {
    return fail("built for plugin ABI version " +
                std::to_string(plugin ? plugin->abi_version : 0) + ", but this jobd speaks " +
                std::to_string(JOBD_PLUGIN_ABI_VERSION) + "; rebuild it against this jobd's plugin.h");
  }
  // Version 1 as first published: every field up to fini. Later minor
  // additions are appended and read only when plugin_size covers them.
  if (plugin->plugin_size < sizeof(jobd_plugin) || plugin->function_size < sizeof(jobd_function)) {
    return fail("its jobd_plugin or jobd_function is smaller than this jobd's plugin.h says; "
                "set plugin_size and function_size with sizeof");
  }
  if (plugin->init != nullptr) {
    char error[512] = {};
    if (plugin->init(&loaded->state, error, sizeof error) != 0) {
      error[sizeof error - 1] = '\0';
      return fail(std::string("init failed: ") + (error[0] ? error : "no reason given"));
    }
  }
  loaded->plugin = plugin;
  return (loaded_[identity] = std::move(loaded)).get();
}

Status Plugins::Load(const std::string& path, FunctionRegistry& registry) {
  Result<Loaded*> loaded = Open(path);
  if (!loaded.ok()) return loaded.status();
  const jobd_plugin* plugin = (*loaded)->plugin;
  void* state = (*loaded)->state;
  for (size_t i = 0; i < plugin->function_count; ++i) {
    const jobd_function& f = *reinterpret_cast<const jobd_function*>(
        reinterpret_cast<const char*>(plugin->functions) + i * plugin->function_size);
    if (f.name == nullptr || f.call == nullptr) {
      return Status::Error("plugin " + path + ": function " + std::to_string(i) +
                           " has no name or no call");
    }
    if (registry.Find(f.name) != nullptr) {
      return Status::Error("plugin " + path + ": function '" + f.name + "' is already defined");
    }
    Function function;
    function.name = f.name;
    function.summary = f.summary != nullptr ? f.summary : "";
    function.write = [call = f.call, state](const std::vector<std::string_view>& args,
                                            TaskOutput& out) {
      ResultAdapter result(out);
      std::vector<jobd_bytes> bytes;
      bytes.reserve(args.size());
      for (std::string_view arg : args) bytes.push_back({arg.data(), arg.size()});
      call(state, bytes.data(), bytes.size(), &result);
    };
    registry.Add(std::move(function));
  }
  return {};
}

Result<const FunctionRegistry*> Plugins::ForJob(const std::string& path) {
  const std::string identity = Identity(path);
  if (auto found = job_registries_.find(identity); found != job_registries_.end()) {
    return &found->second;
  }
  FunctionRegistry registry;
  if (Status s = Load(path, registry); !s.ok()) return s;
  return &(job_registries_[identity] = std::move(registry));
}

}  // namespace jobd
