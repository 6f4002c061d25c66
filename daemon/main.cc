// jobd: the supervisor daemon. Runs in the foreground, logging to stderr,
// unless --detach.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "common/cluster_file.h"
#include "common/command_line.h"
#include "common/log.h"
#include "common/paths.h"
#include "common/trusted_dir.h"
#include "daemon/config.h"
#include "daemon/supervisor.h"

namespace {

constexpr const char* kSynopsis =
    R"(usage: jobd [--config FILE] [--listen ENDPOINT] [--idle-exit SECONDS]
            [--cluster-file FILE --listen tcp://HOST:PORT]
            [--detach [--pid-file FILE] [--log-file FILE]]
       jobd join --cluster-file FILE [--name NAME] [OPTIONS]
       srun --ntasks-per-node=1 jobd --slurm --cluster-file FILE [OPTIONS]
       jobd --check-config [--config FILE]
       jobd --print-default-config)";

constexpr const char* kAbout =
    R"(jobd keeps one warm worker process per core (per pool) and runs map jobs
submitted with `jobctl map` on them.)";

constexpr const char* kFooter =
    R"(Stop it with `jobctl shutdown`, SIGTERM or Ctrl-C: running jobs finish first
(within the config's drain_timeout). SIGHUP reads the --config file again and
applies it without losing a task; a file with an error changes nothing and
the log says why.
Exit status: 0 after a clean stop, 1 if it could not start, 2 on bad usage.)";

constexpr int kBadUsage = 2;

int Usage(const std::string& problem) {
  std::fprintf(stderr, "jobd: %s\n(see `jobd --help`)\n", problem.c_str());
  return kBadUsage;
}

// Forks into the background. Returns in the child with `ready_fd` to report
// on; the parent waits for that report and exits with it.
void Detach(int* ready_fd) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) {
    std::perror("jobd: pipe");
    std::exit(1);
  }
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("jobd: fork");
    std::exit(1);
  }
  if (pid > 0) {
    close(pipe_fds[1]);
    std::string report;
    char buffer[512];
    ssize_t n;
    while ((n = read(pipe_fds[0], buffer, sizeof buffer)) > 0) report.append(buffer, n);
    if (report.rfind("ok ", 0) == 0) {
      std::printf("jobd started (pid %s)\n", report.substr(3).c_str());
      std::exit(0);
    }
    std::fprintf(stderr, "jobd: %s\n", report.empty() ? "the daemon died while starting" : report.c_str());
    std::exit(1);
  }
  close(pipe_fds[0]);
  setsid();
  *ready_fd = pipe_fds[1];
}

// Removes `name` from `dir` if it is still the file `fd` has open.
void RemoveIfSame(const jobd::TrustedDir& dir, const std::string& name, int fd) {
  struct stat named{}, opened{};
  if (fstatat(dir.fd.get(), name.c_str(), &named, AT_SYMLINK_NOFOLLOW) == 0 &&
      fstat(fd, &opened) == 0 && named.st_dev == opened.st_dev && named.st_ino == opened.st_ino) {
    unlinkat(dir.fd.get(), name.c_str(), 0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, pid_file, log_file, listen, cluster_file, cluster_listen;
  std::optional<double> idle_exit;      // --idle-exit
  std::optional<jobd::LogLevel> log_level;  // --log-level
  std::string node_name;
  std::vector<std::string> listens;  // --listen, each
  bool detach = false, check_only = false, slurm = false;
  CLI::App app(kAbout, "jobd");
  std::shared_ptr<jobd::HelpFormatter> help = jobd::SetUpHelp(app, kSynopsis, kFooter, JOBD_VERSION);
  bool print_default = false;
  app.add_flag("--print-default-config", print_default, "print the embedded default configuration");
  app.add_option("--config", config_path,
                 "pools and settings (YAML); without it, the embedded default (print it with "
                 "--print-default-config)")->type_name("FILE");
  app.add_option("--listen", listens,
      "where clients connect (ipc://ABSOLUTE-PATH), instead of the config's `listen:`; or, with "
      "--cluster-file, tcp://HOST:PORT where clients on other hosts connect (as well as on the "
      "local socket; port 0: any free one); both may be given")
      ->type_name("ENDPOINT")->allow_extra_args(false);
  app.add_option_function<std::string>("--cluster-file", [&](const std::string& file) {
        cluster_file = std::filesystem::absolute(file).string();  // --detach leaves the directory
      },
      "write FILE (mode 0600; on a shared file system for other hosts) with the endpoint and the "
      "CurveZMQ keys that clients need: `jobctl --cluster-file FILE ...`. Every TCP connection is "
      "encrypted and authenticated; a peer without the file's key is refused")->type_name("FILE");
  CLI::App* join = app.add_subcommand("join",
      "run as a node of the head that wrote --cluster-file FILE: its workers take the head's "
      "tasks (and serve this host's own clients on ipc://$XDG_RUNTIME_DIR/jobd/node-NAME.sock); "
      "it waits up to 60 s for FILE and its head, and stops when the head is gone");
  join->fallthrough()->group("Commands");
  join->set_help_flag("-h,--help", "this text");
  help->Describe(join, "usage: jobd join --cluster-file FILE [--name NAME] [OPTIONS]\n"
                      "(OPTIONS: those of `jobd --help`)");
  app.add_option("--name", node_name, "the node's name among the head's (default: the host's)")
      ->type_name("NAME");
  app.add_flag("--slurm", slurm,
      "under srun: rank 0 ($SLURM_PROCID) is the head (it listens on TCP, port from --listen "
      "tcp://HOST:PORT or any free one, and writes FILE), every other rank a node named "
      "$SLURMD_NODENAME; `workers: auto` is the CPUs Slurm gave the step on each node");
  app.add_option_function<double>("--idle-exit", [&](const double& seconds) { idle_exit = seconds; },
      "stop after SECONDS without a job (0: never), instead of the config's `idle_exit:` "
      "(jobd.Pool starts jobd with --idle-exit 600 when none is running)")
      ->type_name("SECONDS")->check(jobd::Seconds(30 * 86400, /*from_zero=*/true));
  app.add_flag("--detach", detach, "run in the background; returns once jobd is serving");
  app.add_option("--pid-file", pid_file, "with --detach: write the daemon's pid here")
      ->type_name("FILE");
  app.add_option("--log-file", log_file,
                 "with --detach: append the log here (default: none); reopened on SIGHUP, so that "
                 "logrotate can move it")->type_name("FILE");
  app.add_option_function<std::string>("--log-level", [&](const std::string& text) {
        if (!jobd::ParseLogLevel(text, &log_level.emplace())) {
          throw CLI::ValidationError("--log-level", "takes debug, info, warn or error, not '" + text + "'");
        }
      },
      "debug, info, warn or error, instead of the config's `log_level:` (also after a reload)")
      ->type_name("LEVEL");
  app.add_flag("--check-config", check_only, "validate the configuration and exit");
  if (std::optional<int> exit = jobd::ParseCommandLine(app, argc, argv, kBadUsage)) return *exit;
  if (print_default) {
    std::fwrite(jobd::DefaultConfigText().data(), 1, jobd::DefaultConfigText().size(), stdout);
    return 0;
  }
  bool joining = join->parsed();
  for (const std::string& endpoint : listens) {
    if (jobd::IsTcpEndpoint(endpoint)) {
      cluster_listen = endpoint;
    } else if (jobd::Result<std::string> path = jobd::IpcPath(endpoint); !path.ok()) {
      return Usage("--listen " + endpoint + ": " + path.message());
    } else {
      listen = endpoint;
    }
  }

  if (slurm) {
    const char* rank = std::getenv("SLURM_PROCID");
    if (rank == nullptr) return Usage("--slurm runs under srun (SLURM_PROCID is not set)");
    if (cluster_file.empty()) return Usage("--slurm needs --cluster-file FILE (on a shared file system)");
    if (std::string(rank) == "0") {
      if (cluster_listen.empty()) {
        char host[256] = {};
        gethostname(host, sizeof host - 1);
        cluster_listen = "tcp://" + std::string(host) + ":0";
      }
    } else {
      joining = true;
      cluster_listen.clear();  // the head's (every rank gets the same command line)
      if (const char* name = std::getenv("SLURMD_NODENAME"); name != nullptr && node_name.empty()) {
        node_name = name;
      }
    }
  }
  if (joining) {
    if (cluster_file.empty()) return Usage("join needs --cluster-file FILE: the head's");
    if (!cluster_listen.empty()) return Usage("a node listens on no TCP endpoint: its head does");
    if (node_name.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      node_name = host;
    }
    if (listen.empty()) {  // beside a head's, or other nodes', on the same host
      listen = jobd::DefaultEndpoint();
      listen = listen.substr(0, listen.rfind('/') + 1) + "node-" + node_name + ".sock";
    }
  } else if (cluster_listen.empty() != cluster_file.empty()) {
    return Usage(cluster_file.empty()
                     ? "--listen " + cluster_listen + " needs --cluster-file FILE: the keys "
                       "clients on other hosts need go there (no plaintext TCP exists)"
                     : "--cluster-file needs --listen tcp://HOST:PORT: where clients on "
                       "other hosts connect");
  }
  jobd::Result<jobd::Config> config = config_path.empty()
                                          ? jobd::ParseConfig(jobd::DefaultConfigText(), "<default config>")
                                          : jobd::LoadConfigFile(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "jobd: %s\n", config.message().c_str());
    return 1;
  }
  std::optional<uint32_t> idle_exit_ms;
  if (idle_exit) idle_exit_ms = static_cast<uint32_t>(*idle_exit * 1000);
  // The command line wins over every configuration read, also on SIGHUP.
  // This jobd's name (commands see it as $JOBD_NODE): a node's, else Slurm's
  // name for this node, else the host's.
  if (node_name.empty()) {
    const char* slurm_node = std::getenv("SLURMD_NODENAME");
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    node_name = slurm_node != nullptr ? slurm_node : host;
  }
  auto overrides = [=](jobd::Config& config) {
    if (!listen.empty()) config.listen = listen;
    config.cluster_listen = joining ? "" : cluster_listen;
    config.cluster_file = joining ? "" : cluster_file;
    config.join_cluster_file = joining ? cluster_file : "";
    config.node_name = node_name;
    config.join_wait = std::chrono::seconds(joining ? 60 : 0);
    if (idle_exit_ms) config.idle_exit_ms = *idle_exit_ms;
    if (log_level) config.log_level = *log_level;
    if (!log_file.empty()) config.log_file = std::filesystem::absolute(log_file).string();
  };
  overrides(*config);
  if (check_only) {
    std::printf("%s: ok (%zu pools, listening on %s)\n",
                config_path.empty() ? "<default config>" : config_path.c_str(),
                config->pools.size(), config->listen.c_str());
    return 0;
  }
  jobd::SetLogLevel(config->log_level);

  int ready_fd = -1;
  // The pid and log files may be in a directory others share (/tmp): they
  // are opened without following a symlink, and only if they are our own.
  std::optional<jobd::TrustedDir> pid_dir;
  jobd::UniqueFd pid_fd;
  if (detach) {
    Detach(&ready_fd);
    auto fail = [&](const std::string& why) {
      (void)!write(ready_fd, why.data(), why.size());
      return 1;
    };
    const int null_fd = open("/dev/null", O_RDWR);
    int log_fd = null_fd;
    if (!log_file.empty()) {
      jobd::Result<jobd::UniqueFd> log = jobd::OpenOwnFile(log_file, O_WRONLY | O_APPEND);
      if (!log.ok()) return fail("cannot open the log file: " + log.message());
      log_fd = log->release();
    }
    if (!pid_file.empty()) {
      const std::filesystem::path path = std::filesystem::absolute(pid_file);
      jobd::Result<jobd::TrustedDir> dir =
          jobd::OpenTrustedDir(path.parent_path().string(), jobd::DirUse::kAny, /*create=*/false);
      if (!dir.ok()) return fail("cannot write the pid file " + pid_file + ": " + dir.message());
      pid_file = path.filename().string();
      jobd::Result<jobd::UniqueFd> opened = jobd::OpenOwnFile(*dir, pid_file, O_WRONLY);
      if (!opened.ok()) return fail("cannot write the pid file: " + opened.message());
      pid_dir = std::move(dir).value();
      pid_fd = std::move(opened).value();
    }
    dup2(null_fd, 0);
    dup2(null_fd, 1);
    dup2(log_fd, 2);
  }

  // Read again on SIGHUP, whatever the directory is by then.
  if (!config_path.empty()) config_path = std::filesystem::absolute(config_path).string();
  auto supervisor = jobd::Supervisor::Start(std::move(config).value(), config_path,
                                            jobd::ExecutableDir() + "/jobd-worker", overrides);
  if (!supervisor.ok()) {
    if (ready_fd >= 0) {
      (void)!write(ready_fd, supervisor.message().data(), supervisor.message().size());
    }
    JOBD_LOG(kError) << supervisor.message();
    if (pid_dir) RemoveIfSame(*pid_dir, pid_file, pid_fd.get());  // never written
    return 1;
  }
  if (ready_fd >= 0) {
    if (pid_fd.get() >= 0) {
      const std::string pid = std::to_string(getpid()) + "\n";
      (void)!ftruncate(pid_fd.get(), 0);
      (void)!pwrite(pid_fd.get(), pid.data(), pid.size(), 0);
    }
    const std::string ok = "ok " + std::to_string(getpid()) + ", serving " + (*supervisor)->endpoint();
    (void)!write(ready_fd, ok.data(), ok.size());
    close(ready_fd);
  }
  const int status = (*supervisor)->Run();
  if (pid_dir) RemoveIfSame(*pid_dir, pid_file, pid_fd.get());
  return status;
}
