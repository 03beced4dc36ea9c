// Child processes for integration tests: the real wakegate binary, one-shot commands, and /proc
// scans to find (and count) the processes a test started.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <boost/json/object.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace wakegate::test {

using namespace std::chrono_literals;

// ---- one-shot commands -------------------------------------------------------------------------

struct command_result {
  int exit_code = -1;  // the exit status; 128 + signal when killed; -1 when it could not run or timed out
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr (or why it could not run)
};

// Runs argv[0] (a path; no PATH search) with `input` on stdin, collecting stdout and stderr.
// Killed (with its process group) when `timeout` passes.
command_result run_command(const std::vector<std::string>& argv, const std::string& input = {},
                           std::chrono::milliseconds timeout = 30s);

// Starts argv[0] (a path) in a process group of its own, stdout and stderr to `log_file`, with
// `env_add` ("NAME=value") added to the environment; returns its pid at once (for servers a test
// runs beside wakegate: Pebble, a Docker registry). End it with kill_group.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_file,
                   const std::vector<std::string>& env_add = {});
// A free TCP port on 127.0.0.1 (bound, then released).
std::uint16_t free_port();

// A port on 127.0.0.1 that refuses connections for as long as this lives: bound, never
// listening, so no other process can take it (a released free_port() can be, by a test running
// beside this one).
class refused_port {
 public:
  refused_port();
  ~refused_port();
  refused_port(const refused_port&) = delete;
  refused_port& operator=(const refused_port&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

// SIGKILL to the process group of a spawn_logged child, then reaps it. A pid <= 0 is ignored.
void kill_group(pid_t pid);

// Runs WAKEGATE_BINARY with `args` (e.g. {"check", "--config", path}).
command_result run_wakegate(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s);

// The whole file ("" when it cannot be read).
std::string read_file(const std::string& path);

// Splits text into lines (without the '\n'; a last line without '\n' is kept, no empty last line).
std::vector<std::string> split_lines(const std::string& text);

// ---- temporary directory -----------------------------------------------------------------------

// mkdtemp under $TMPDIR (or /tmp); removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name atomically (temp file + rename); returns the full path.
  std::string write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// ---- /proc scans -------------------------------------------------------------------------------

// A marker unique to this test run and call ("wgit-<pid>-<random>-<n>"); put it in an instance's argv
// (`--marker=<marker>`) to find that test's processes later.
std::string unique_marker();

// Live (not zombie) processes whose command line (NUL-separated argv joined by spaces) contains
// `needle`, excluding the calling process.
std::vector<pid_t> find_processes(const std::string& needle);
int count_processes(const std::string& needle);

// True while `pid` exists and is not a zombie.
bool process_alive(pid_t pid);
// Process group of `pid` (from /proc/<pid>/stat), nullopt if it is gone.
std::optional<pid_t> process_group_of(pid_t pid);
// Live processes whose process group is `pgid`.
std::vector<pid_t> processes_in_group(pid_t pgid);
// The command line of `pid`, argv joined by spaces ("" if gone or a zombie).
std::string process_cmdline(pid_t pid);
// VmRSS of `pid` in bytes (nullopt if gone).
std::optional<std::uint64_t> process_rss_bytes(pid_t pid);

// SIGKILLs every live process whose command line contains `needle`, and its process group unless
// that is the caller's own group. For cleanup after failed tests.
void kill_processes(const std::string& needle);

// ---- the wakegate binary -----------------------------------------------------------------------

struct wakegate_options {
  bool wait_ready = true;  // constructor waits for the `ready` log line
  std::chrono::milliseconds ready_timeout = 20s;
  std::vector<std::pair<std::string, std::string>> env;  // added to the test's environment
  // On destruction, also SIGKILL processes whose command line contains one of these (and their
  // groups), so that a failed test leaves no instance behind. Usually the test's markers.
  std::vector<std::string> cleanup_markers;

  // Defaults, plus cleanup of these markers' processes.
  static wakegate_options cleaning(std::vector<std::string> markers) {
    wakegate_options o;
    o.cleanup_markers = std::move(markers);
    return o;
  }
};

// `wakegate run --config <tempdir>/wakegate.yaml`, started with fork/exec in its own process group,
// stdout and stderr captured line by line by a background thread. The constructor throws
// std::runtime_error (with the captured output) when wakegate exits or misses the deadline before
// it logs `ready` (or, with wait_ready = false, never).
// Destruction SIGKILLs wakegate and its process group (and cleanup_markers), reaps it and removes
// the temporary directory; if an assertion failed meanwhile, it prints wakegate's stderr first.
class wakegate_process {
 public:
  explicit wakegate_process(const std::string& config_yaml, wakegate_options options = {});
  ~wakegate_process();
  wakegate_process(const wakegate_process&) = delete;
  wakegate_process& operator=(const wakegate_process&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& dir() const { return dir_.path(); }

  // Ports from the `listening` log lines (0 until seen).
  std::uint16_t http_port() const;
  std::uint16_t admin_port() const;
  std::uint16_t https_port() const;  // 0 without listen.https
  // Waits for the `ready` line; false if wakegate exited or the deadline passed.
  bool wait_ready(std::chrono::milliseconds timeout);

  // Rewrites the config file in place (atomically); follow with signal(SIGHUP) to reload.
  void write_config(const std::string& yaml);

  // Sends `sig` to wakegate (not to its group).
  void signal(int sig);
  // Waits for wakegate to exit: its exit status (128 + signal if killed), nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // True until wakegate has been reaped.
  bool running();

  // Everything wakegate wrote to stderr (all lines, in order) and to stdout.
  std::vector<std::string> stderr_lines() const;
  std::vector<std::string> stdout_lines() const;
  std::string stderr_text() const;  // joined with '\n', for failure messages
  // The last `n` stderr lines joined, for failure messages.
  std::string stderr_tail(std::size_t n = 60) const;
  // Why it exited, when that was not 0: a sanitizer's report, else the last lines of stderr.
  // wait_exit() attaches it to the next check.
  std::string exit_report() const;

  // stderr lines that parse as JSON objects (wakegate's own log lines).
  std::vector<boost::json::object> log_records() const;
  // Log records with `type == "access"`.
  std::vector<boost::json::object> access_records() const;
  // Log records with `msg == msg` (and, if `app` is non-empty, `app == app`).
  std::vector<boost::json::object> records_with_msg(const std::string& msg, const std::string& app = {}) const;
  // Waits until some stderr line satisfies `pred` (called under the buffer's lock: it must not call
  // back into this object).
  bool wait_for_line(const std::function<bool(const std::string&)>& pred, std::chrono::milliseconds timeout) const;
  // Waits until some JSON log record satisfies `pred`.
  bool wait_for_record(const std::function<bool(const boost::json::object&)>& pred,
                       std::chrono::milliseconds timeout) const;
  // The first access record of `path`, waited for (records lag behind answers); empty if none came.
  boost::json::object access_record(const std::string& path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 private:
  void start(const std::vector<std::pair<std::string, std::string>>& env);
  void drain();  // background thread: reads both pipes until EOF or stop_
  void on_line(std::string line, bool is_stderr);
  void kill_all();

  wakegate_options options_;
  int failures_at_start_ = 0;
  temp_dir dir_;
  std::string config_path_;
  pid_t pid_ = -1;
  int exit_status_ = -1;  // once reaped
  bool reaped_ = false;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  std::thread drainer_;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> err_lines_;
  std::vector<std::string> out_lines_;
  std::vector<boost::json::object> records_;  // stderr lines that are JSON objects
  std::uint16_t http_port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::uint16_t https_port_ = 0;
  bool ready_ = false;
  bool eof_ = false;
};

// Parses one log line as a JSON object; nullopt for anything else (e.g. instance output).
std::optional<boost::json::object> parse_log_line(const std::string& line);

// A JSON field as text ("" if absent or not a string), as a number (nullopt if absent or not a
// number), as a bool (nullopt if absent or not a bool).
std::string json_string(const boost::json::object& o, const char* key);
std::optional<double> json_number(const boost::json::object& o, const char* key);
std::optional<bool> json_bool(const boost::json::object& o, const char* key);

}  // namespace wakegate::test
