#include "daemon/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/paths.h"
#include "common/wire.h"

namespace jobd {
namespace {

// Thrown inside this file only; ParseConfig turns it into a Status.
struct ConfigError {
  std::string message;
};

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  // `file` relative to the directory of the configuration file, made absolute.
  std::string Relative(const std::string& file) const {
    return std::filesystem::absolute(std::filesystem::path(source_).parent_path() / file)
        .lexically_normal()
        .string();
  }

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& what) const {
    std::ostringstream out;
    out << source_;
    if (node.Mark().line >= 0) out << ":" << node.Mark().line + 1;
    out << ": " << what;
    throw ConfigError{out.str()};
  }

  void CheckKeys(const YAML::Node& map, const std::string& path,
                 const std::set<std::string>& known) const {
    if (!map.IsMap()) Fail(map, "'" + path + "' must be a mapping of keys to values");
    for (const auto& entry : map) {
      const std::string key = entry.first.as<std::string>();
      if (known.count(key) == 0) {
        std::string list;
        for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
        Fail(entry.first, "unknown key '" + (path.empty() ? key : path + "." + key) +
                              "' (known keys here: " + list + ")");
      }
    }
  }

  // Seconds (fractions allowed) from 0 to `max`, as milliseconds.
  uint32_t Milliseconds(const YAML::Node& node, const std::string& key, uint32_t max,
                        const char* zero_means) const {
    double seconds = -1;
    if (node.IsScalar()) {
      try {
        seconds = std::stod(node.Scalar());
      } catch (const std::exception&) {
      }
    }
    if (!(seconds >= 0 && seconds <= max)) {
      Fail(node, "'" + key + "' must be seconds from 0" + zero_means + " to " + std::to_string(max) +
                     ", not '" + (node.IsScalar() ? node.Scalar() : "a list or mapping") + "'");
    }
    return static_cast<uint32_t>(seconds * 1000);
  }

  std::string String(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) Fail(node, "'" + key + "' must be a string");
    return node.Scalar();
  }

  uint32_t Count(const YAML::Node& node, const std::string& key, uint32_t min, uint32_t max,
                 const char* extra = "") const {
    if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      uint64_t value = 0;
      bool digits = !text.empty() && text.size() < 12;
      for (char c : text) digits = digits && c >= '0' && c <= '9';
      if (digits) value = std::stoull(text);
      if (digits && value >= min && value <= max) return static_cast<uint32_t>(value);
    }
    Fail(node, "'" + key + "' must be a whole number from " + std::to_string(min) + " to " +
                   std::to_string(max) + extra + ", not '" +
                   (node.IsScalar() ? node.Scalar() : std::string("a list or mapping")) + "'");
  }

 private:
  std::string source_;
};

uint32_t OnlineCores() {
  // Under Slurm: the CPUs it gave this step on this node.
  if (const char* slurm = std::getenv("SLURM_CPUS_ON_NODE")) {
    const long cpus = std::strtol(slurm, nullptr, 10);
    if (cpus > 0 && cpus <= 1024) return static_cast<uint32_t>(cpus);
  }
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? static_cast<uint32_t>(cores) : 1;
}

PoolConfig ParsePool(const Reader& reader, const std::string& name, const YAML::Node& node) {
  const std::string path = "pools." + name;
  PoolConfig pool;
  pool.name = name;
  pool.workers = OnlineCores();
  if (node.IsNull()) return pool;  // "cpu:" with nothing under it takes the defaults
  reader.CheckKeys(node, path, {"workers", "retries", "task_timeout", "max_tasks_per_worker",
                                "plugins", "kinds", "max_restarts", "restart_window",
                                "memory_limit", "retry_backoff", "credit_window"});
  if (const YAML::Node limit = node["memory_limit"]) {
    // A number of bytes with an optional K, M or G (powers of 1024).
    const std::string text = limit.IsScalar() ? limit.Scalar() : "";
    size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
    const std::string unit = text.substr(digits);
    const int shift = unit.empty() ? 0 : unit == "K" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : -1;
    const uint64_t value = digits > 0 && digits < 12 ? std::stoull(text.substr(0, digits)) : 0;
    if (shift < 0 || value == 0 || (value << shift) < (uint64_t{256} << 20)) {
      reader.Fail(limit, "'" + path + ".memory_limit' must be a size such as 512M or 2G, at "
                         "least 256M (a worker needs about 100M to start), not '" + text + "'");
    }
    pool.memory_limit = value << shift;
  }
  if (const YAML::Node restarts = node["max_restarts"]) {
    pool.max_restarts = reader.Count(restarts, path + ".max_restarts", 1, 1'000'000);
  }
  if (const YAML::Node window = node["restart_window"]) {
    pool.restart_window_s = reader.Count(window, path + ".restart_window", 1, 3600);
  }
  if (const YAML::Node timeout = node["task_timeout"]) {
    pool.task_timeout_ms = reader.Milliseconds(timeout, path + ".task_timeout", 86400, " (none)");
  }
  if (const YAML::Node window = node["credit_window"]) {
    pool.credit_window_ms = reader.Milliseconds(window, path + ".credit_window", 10, " (one task at a time)");
  }
  if (const YAML::Node backoff = node["retry_backoff"]) {
    pool.retry_backoff_ms = reader.Milliseconds(backoff, path + ".retry_backoff", 60, " (none)");
  }
  if (const YAML::Node kinds = node["kinds"]) {
    if (!kinds.IsSequence()) reader.Fail(kinds, "'" + path + ".kinds' must be a list");
    const std::vector<std::string> all = pool.kinds;
    pool.kinds.clear();
    for (const YAML::Node& kind : kinds) {
      const std::string name = reader.String(kind, path + ".kinds");
      if (std::find(all.begin(), all.end(), name) == all.end()) {
        reader.Fail(kind, "'" + path + ".kinds' has '" + name +
                              "'; the kinds are function, plugin, exec, stream and python");
      }
      pool.kinds.push_back(name);
    }
  }
  if (const YAML::Node workers = node["workers"]) {
    if (!(workers.IsScalar() && workers.Scalar() == "auto")) {
      pool.workers = reader.Count(workers, path + ".workers", 1, 1024, " or 'auto'");
    }
  }
  if (const YAML::Node retries = node["retries"]) {
    pool.retries = reader.Count(retries, path + ".retries", 0, 100);
  }
  if (const YAML::Node plugins = node["plugins"]) {
    if (!plugins.IsSequence()) reader.Fail(plugins, "'" + path + ".plugins' must be a list of .so files");
    for (const YAML::Node& plugin : plugins) {
      std::string file = ExpandEnv(reader.String(plugin, path + ".plugins"));
      // Relative to the configuration file, like every path in it.
      if (!file.empty() && file[0] != '/') file = reader.Relative(file);
      if (access(file.c_str(), R_OK) != 0) {
        reader.Fail(plugin, "plugin " + file + " of pool '" + name + "': " + std::strerror(errno));
      }
      pool.plugins.push_back(file);
    }
  }
  if (const YAML::Node recycle = node["max_tasks_per_worker"]) {
    pool.max_tasks_per_worker =
        reader.Count(recycle, path + ".max_tasks_per_worker", 0, 1'000'000'000);
  }
  return pool;
}

}  // namespace

bool PoolConfig::Accepts(const std::string& kind) const {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

const PoolConfig* Config::FindPool(std::string_view name) const {
  for (const PoolConfig& pool : pools) {
    if (pool.name == name) return &pool;
  }
  return nullptr;
}

Result<Config> ParseConfig(std::string_view yaml, const std::string& source) {
  Reader reader(source);
  Config config;
  config.listen = DefaultEndpoint();
  config.default_pool = "cpu";
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (root.IsNull()) {
      config.pools.push_back(ParsePool(reader, "cpu", YAML::Node()));
      return config;
    }
    reader.CheckKeys(root, "", {"listen", "log_level", "default_pool", "drain_timeout", "idle_exit",
                                "job_history", "job_history_file", "metrics_listen",
                                "stop_deadline", "reap_interval",
                                "pools"});
    if (const YAML::Node listen = root["listen"]) {
      config.listen = ExpandEnv(reader.String(listen, "listen"));
      if (Result<std::string> path = IpcPath(config.listen); !path.ok()) {
        reader.Fail(listen, "'listen': " + path.message());
      }
    }
    if (const YAML::Node level = root["log_level"]) {
      if (!ParseLogLevel(reader.String(level, "log_level"), &config.log_level)) {
        reader.Fail(level, "'log_level' must be debug, info, warn or error, not '" +
                               level.Scalar() + "'");
      }
    }
    if (const YAML::Node drain = root["drain_timeout"]) {
      config.drain_timeout_ms = reader.Milliseconds(drain, "drain_timeout", 86400, "");
    }
    if (const YAML::Node stop = root["stop_deadline"]) {
      config.stop_deadline_ms = reader.Milliseconds(stop, "stop_deadline", 3600, " (kill at once)");
    }
    if (const YAML::Node reap = root["reap_interval"]) {
      config.reap_interval_ms = reader.Milliseconds(reap, "reap_interval", 86400, " (only at start)");
    }
    if (const YAML::Node idle = root["idle_exit"]) {
      config.idle_exit_ms = reader.Milliseconds(idle, "idle_exit", 30 * 86400, "");
    }
    if (const YAML::Node metrics = root["metrics_listen"]) {
      config.metrics_listen = reader.String(metrics, "metrics_listen");
      // A port alone: loopback, so that nothing is exposed unless asked for.
      if (config.metrics_listen.find(':') == std::string::npos) {
        config.metrics_listen = "127.0.0.1:" + config.metrics_listen;
      }
    }
    if (const YAML::Node file = root["job_history_file"]) {
      config.job_history_file = ExpandEnv(reader.String(file, "job_history_file"));
    }
    if (const YAML::Node history = root["job_history"]) {
      config.job_history = reader.Count(history, "job_history", 0, 100'000);
    }
    if (const YAML::Node pool = root["default_pool"]) {
      config.default_pool = reader.String(pool, "default_pool");
    }
    if (const YAML::Node pools = root["pools"]) {
      if (!pools.IsMap() || pools.size() == 0) {
        reader.Fail(pools, "'pools' must map pool names to their settings");
      }
      for (const auto& entry : pools) {
        const std::string name = entry.first.as<std::string>();
        if (!IsValidName(name)) {
          reader.Fail(entry.first, "pool name '" + name +
                                       "' is invalid (use 1-64 letters, digits, '_', '-', '.')");
        }
        if (config.FindPool(name) != nullptr) {
          reader.Fail(entry.first, "pool '" + name + "' is defined twice");
        }
        config.pools.push_back(ParsePool(reader, name, entry.second));
      }
    } else {
      config.pools.push_back(ParsePool(reader, "cpu", YAML::Node()));
    }
    if (config.FindPool(config.default_pool) == nullptr) {
      std::string names;
      for (const PoolConfig& pool : config.pools) names += (names.empty() ? "" : ", ") + pool.name;
      const YAML::Node at = root["default_pool"] ? root["default_pool"] : root;
      reader.Fail(at, "default_pool '" + config.default_pool + "' is not one of the pools (" +
                          names + "); set default_pool to one of them");
    }
  } catch (const ConfigError& error) {
    return Status::Error(error.message);
  } catch (const YAML::Exception& error) {
    std::string where = source;
    if (error.mark.line >= 0) where += ":" + std::to_string(error.mark.line + 1);
    return Status::Error(where + ": not valid YAML: " + error.msg);
  }
  return config;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::Error("cannot read config file " + path + ": " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

}  // namespace jobd
