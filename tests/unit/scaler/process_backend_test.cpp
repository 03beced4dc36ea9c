// The process backend against real child processes: start, output, exits, stop, watchdog.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scaler/backends/process_backend.hpp"
#include "tests/support/wait.hpp"

namespace {

using namespace std::chrono_literals;
namespace sc = wakegate::scaler;
namespace cfg = wakegate::config;
using wakegate::test::wait_until;

// Sends fd 2 to an unlinked temp file while alive, so the test can read what was written there.
class stderr_capture {
 public:
  stderr_capture() {
    char path[] = "/tmp/wakegate-stderr-XXXXXX";
    fd_ = ::mkstemp(path);
    ::unlink(path);
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  ~stderr_capture() {
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(fd_);
  }
  stderr_capture(const stderr_capture&) = delete;
  stderr_capture& operator=(const stderr_capture&) = delete;

  std::string text() const {
    struct stat st {};
    ::fstat(fd_, &st);
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    const ssize_t n = ::pread(fd_, out.data(), out.size(), 0);
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
};

// Sets an environment variable for the test's duration.
class env_var {
 public:
  env_var(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~env_var() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  env_var(const env_var&) = delete;
  env_var& operator=(const env_var&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// A fresh directory under /tmp, removed at the end.
class temp_dir {
 public:
  temp_dir() {
    char path[] = "/tmp/wakegate-cwd-XXXXXX";
    path_ = std::filesystem::canonical(::mkdtemp(path)).string();
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct proc_stat {
  char state = 0;  // 0: no such process
  int pgrp = 0;
};

proc_stat read_stat(const std::string& pid) {
  std::ifstream file("/proc/" + pid + "/stat");
  std::string text;
  std::getline(file, text);
  proc_stat result;
  const auto close = text.rfind(')');  // the command name may contain anything
  if (close == std::string::npos || close + 2 >= text.size()) return result;
  char state = 0;
  int ppid = 0;
  int pgrp = 0;
  if (std::sscanf(text.c_str() + close + 2, "%c %d %d", &state, &ppid, &pgrp) != 3) return result;
  result.state = state;
  result.pgrp = pgrp;
  return result;
}

// Gone, or a zombie nobody reaped yet (orphans go to PID 1, which may not reap): not running.
bool gone(int pid) {
  const char state = read_stat(std::to_string(pid)).state;
  return state == 0 || state == 'Z' || state == 'X';
}

// Live (non-zombie) members of a process group.
std::vector<int> group_members(int pgid) {
  std::vector<int> members;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const proc_stat st = read_stat(name);
    if (st.pgrp == pgid && st.state != 0 && st.state != 'Z' && st.state != 'X') {
      members.push_back(std::stoi(name));
    }
  }
  return members;
}

bool all_gone(const std::vector<int>& pids) {
  for (int pid : pids) {
    if (!gone(pid)) return false;
  }
  return true;
}

cfg::process_backend shell(std::string script) {
  cfg::process_backend p;
  p.command = {"/bin/sh", "-c", std::move(script)};
  return p;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A backend on its own control loop, with its stderr captured and its exits recorded.
struct harness {
  harness() {
    backend.on_exit = [this](const std::string& id, const std::string& reason) { exits.emplace_back(id, reason); };
  }

  // Runs the control loop until `cond` holds (true) or `timeout` passes (false).
  bool run_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout = 5s) {
    return wait_until(
        [&] {
          if (cond()) return true;
          if (ctx.stopped()) ctx.restart();
          ctx.run_for(5ms);
          return cond();
        },
        timeout, 1ms);
  }

  sc::start_result start(const std::string& id, cfg::process_backend process, const std::string& app = "app") {
    const cfg::backend config = std::move(process);
    const sc::instance_spec spec{app, id, &config};
    std::optional<sc::start_result> result;
    backend.start(spec, [&](sc::start_result r) { result = std::move(r); });
    REQUIRE_FALSE(result.has_value());  // posted, never inline
    REQUIRE(run_until([&] { return result.has_value(); }));
    return *result;
  }

  sc::start_result start_ok(const std::string& id, cfg::process_backend process, const std::string& app = "app") {
    auto result = start(id, std::move(process), app);
    INFO(result.error);
    REQUIRE(result.ok);
    return result;
  }

  // Stops `id`; true once its done callback ran.
  bool stop(const std::string& id, std::chrono::milliseconds timeout = 5s) {
    bool done = false;
    backend.stop(id, [&] { done = true; });
    return run_until([&] { return done; }, timeout);
  }

  bool output_has(const std::string& part, std::chrono::milliseconds timeout = 5s) {
    if (run_until([&] { return contains(err.text(), part); }, timeout)) return true;
    UNSCOPED_INFO("captured stderr:\n" << err.text());  // shown with the failing check
    return false;
  }

  boost::asio::io_context ctx;
  stderr_capture err;
  sc::process_backend backend{ctx};
  std::vector<std::pair<std::string, std::string>> exits;
};

}  // namespace

TEST_CASE("process backend: starts on a free loopback port and prefixes the output", "[process_backend]") {
  harness h;
  const auto result = h.start_ok("web-1", shell("echo hello-$PORT; exec sleep 30"), "web");
  CHECK(result.host == "127.0.0.1");
  REQUIRE(result.port != 0);
  CHECK(h.backend.running() == 1);
  CHECK(h.backend.pid_of("web-1") > 0);
  CHECK(result.pid == h.backend.pid_of("web-1"));
  CHECK(h.backend.pid_of("web-2") == 0);
  CHECK(h.output_has("[web/web-1] hello-" + std::to_string(result.port) + "\n"));
  REQUIRE(h.stop("web-1"));
  CHECK(h.backend.running() == 0);
  CHECK(h.exits.empty());
}

TEST_CASE("process backend: ${PORT} is expanded in argv and env, env is inherited", "[process_backend]") {
  const env_var inherited("WAKEGATE_TEST_INHERITED", "yes");
  const env_var overridden("WAKEGATE_TEST_OVERRIDE", "old");
  const env_var stale_port("PORT", "1");
  harness h;
  auto process = shell(
      "echo \"arg=$1 env=$X inherited=$WAKEGATE_TEST_INHERITED override=$WAKEGATE_TEST_OVERRIDE port=$PORT\"; "
      "echo \"ports=$(env | grep -c ^PORT=) overrides=$(env | grep -c ^WAKEGATE_TEST_OVERRIDE=)\"");
  process.command.push_back("sh");
  process.command.push_back("p${PORT}x${PORT}");
  process.env = {{"X", "v-${PORT}"}, {"WAKEGATE_TEST_OVERRIDE", "new"}};
  const auto result = h.start_ok("e-1", process);
  const std::string port = std::to_string(result.port);
  CHECK(h.output_has("[app/e-1] arg=p" + port + "x" + port + " env=v-" + port +
                     " inherited=yes override=new port=" + port + "\n"));
  CHECK(h.output_has("[app/e-1] ports=1 overrides=1\n"));
}

TEST_CASE("process backend: cwd is honoured, empty keeps the current directory", "[process_backend]") {
  harness h;
  SECTION("configured") {
    const temp_dir dir;
    auto process = shell("pwd");
    process.cwd = dir.path();
    h.start_ok("d-1", process);
    CHECK(h.output_has("[app/d-1] " + dir.path() + "\n"));
  }
  SECTION("empty") {
    h.start_ok("d-2", shell("pwd"));
    CHECK(h.output_has("[app/d-2] " + std::filesystem::current_path().string() + "\n"));
  }
  // A process that exits by itself is reported, here with status 0.
  CHECK(h.run_until([&] { return h.exits.size() == 1; }));
  CHECK(h.exits.at(0).second == "exited with status 0");
}

TEST_CASE("process backend: a command that cannot start gives a readable error", "[process_backend]") {
  harness h;
  SECTION("missing program") {
    cfg::process_backend process;
    process.command = {"/nope"};
    const auto result = h.start("x-1", process);
    CHECK_FALSE(result.ok);
    CHECK(result.error == "cannot start '/nope': No such file or directory");
  }
  SECTION("not executable") {
    cfg::process_backend process;
    process.command = {"/etc/passwd"};
    const auto result = h.start("x-1", process);
    CHECK_FALSE(result.ok);
    CHECK(result.error == "cannot start '/etc/passwd': Permission denied");
  }
  SECTION("missing directory") {
    auto process = shell("true");
    process.cwd = "/no/such/dir";
    const auto result = h.start("x-1", process);
    CHECK_FALSE(result.ok);
    CHECK(result.error == "cannot start '/bin/sh': cannot change directory to '/no/such/dir': No such file or directory");
  }
  SECTION("empty command") {
    const auto result = h.start("x-1", cfg::process_backend{});
    CHECK_FALSE(result.ok);
    CHECK_FALSE(result.error.empty());
  }
  CHECK(h.backend.running() == 0);
  CHECK(h.backend.pid_of("x-1") == 0);
  CHECK(h.exits.empty());
}

TEST_CASE("process backend: the command is searched in PATH", "[process_backend]") {
  harness h;
  cfg::process_backend process;
  process.command = {"sh", "-c", "echo via-path"};
  h.start_ok("p-1", process);
  CHECK(h.output_has("[app/p-1] via-path\n"));
}

TEST_CASE("process backend: output lines are split, flushed and taken from both streams", "[process_backend]") {
  harness h;
  SECTION("stdout, stderr and a partial last line") {
    h.start_ok("o-1", shell("echo to-err >&2; printf 'line-one\\nto-out'"));
    CHECK(h.output_has("[app/o-1] to-err\n"));
    // stdout and stderr are separate pipes: only the order within one stream is defined.
    CHECK(h.output_has("[app/o-1] line-one\n"));
    CHECK(h.output_has("[app/o-1] to-out\n"));
  }
  SECTION("lines longer than 16 KiB") {
    h.start_ok("o-2", shell("head -c 40000 /dev/zero | tr '\\000' x; echo"));
    const std::string prefix = "[app/o-2] ";
    const std::string expected = prefix + std::string(16384, 'x') + "\n" + prefix + std::string(16384, 'x') + "\n" +
                                 prefix + std::string(40000 - 2 * 16384, 'x') + "\n";
    CHECK(h.output_has(expected));
  }
}

TEST_CASE("process backend: an instance that exits by itself is reported", "[process_backend]") {
  harness h;
  SECTION("exit status") {
    h.start_ok("c-1", shell("exit 3"));
    REQUIRE(h.run_until([&] { return h.exits.size() == 1; }));
    CHECK(h.exits[0].first == "c-1");
    CHECK(h.exits[0].second == "exited with status 3");
  }
  SECTION("signal") {
    h.start_ok("c-1", shell("ulimit -c 0; kill -SEGV $$"));
    REQUIRE(h.run_until([&] { return h.exits.size() == 1; }));
    CHECK(h.exits[0].first == "c-1");
    CHECK(h.exits[0].second == "killed by signal SIGSEGV");
  }
  CHECK(h.backend.running() == 0);
  CHECK(h.backend.pid_of("c-1") == 0);
}

TEST_CASE("process backend: an instance that ended before or during its stop has its exit reported", "[process_backend]") {
  harness h;
  SECTION("dead before the stop (the proxy saw it fail first)") {
    h.start_ok("d-1", shell("exec sleep 30"));
    const int pid = h.backend.pid_of("d-1");
    REQUIRE(::kill(pid, SIGKILL) == 0);
    // A zombie now, not yet reaped: the control loop has not run since.
    REQUIRE(wait_until(
        [&] {
          siginfo_t info{};
          return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
        },
        5s));
    REQUIRE(h.stop("d-1"));
  }
  SECTION("killed by another signal while its stop signal was ignored") {
    h.start_ok("d-1", shell("trap '' TERM; echo ready; while :; do sleep 1; done"));
    REQUIRE(h.output_has("[app/d-1] ready\n"));
    bool done = false;
    h.backend.stop("d-1", [&] { done = true; });
    CHECK_FALSE(h.run_until([&] { return done; }, 100ms));  // the stop signal is ignored
    REQUIRE(::kill(h.backend.pid_of("d-1"), SIGKILL) == 0);
    REQUIRE(h.run_until([&] { return done; }));
  }
  REQUIRE(h.exits.size() == 1);
  CHECK(h.exits[0].first == "d-1");
  CHECK(h.exits[0].second == "killed by signal SIGKILL");
  CHECK(h.backend.running() == 0);
}

TEST_CASE("process backend: stop sends the configured signal", "[process_backend]") {
  harness h;
  SECTION("SIGTERM") {
    h.start_ok("s-1", shell("trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 1; done"));
    REQUIRE(h.output_has("[app/s-1] ready\n"));
    REQUIRE(h.stop("s-1"));
    CHECK(h.output_has("[app/s-1] got-term\n"));
  }
  SECTION("SIGUSR1") {
    auto process = shell("trap 'echo got-usr1; exit 0' USR1; echo ready; while :; do sleep 1; done");
    process.stop_signal = SIGUSR1;
    h.start_ok("s-1", process);
    REQUIRE(h.output_has("[app/s-1] ready\n"));
    REQUIRE(h.stop("s-1"));
    CHECK(h.output_has("[app/s-1] got-usr1\n"));
  }
  CHECK(h.backend.running() == 0);
  CHECK(h.exits.empty());  // a stop is not a crash
}

TEST_CASE("process backend: an instance ignoring its stop signal is killed after stop_timeout", "[process_backend]") {
  harness h;
  auto process = shell("trap '' TERM; echo ready; while :; do sleep 1; done");
  process.stop_timeout = 200ms;
  h.start_ok("k-1", process);
  const int pid = h.backend.pid_of("k-1");
  REQUIRE(h.output_has("[app/k-1] ready\n"));
  const auto members = group_members(pid);
  const auto begin = std::chrono::steady_clock::now();
  REQUIRE(h.stop("k-1"));
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  CHECK(elapsed >= 190ms);
  CHECK(elapsed < 3s);
  CHECK(h.run_until([&] { return all_gone(members); }));
  CHECK(h.exits.empty());
}

TEST_CASE("process backend: stop leaves no grandchild behind", "[process_backend]") {
  harness h;
  SECTION("grandchildren that die with the group") {
    h.start_ok("g-1", shell("sleep 30 & sleep 30 & echo ready; wait"));
  }
  SECTION("grandchildren that ignore the stop signal: killed once the leader is gone") {
    // stop_timeout stays at 10s: the group SIGKILL must follow the leader's exit, not the timer.
    h.start_ok("g-1", shell("trap '' TERM; sleep 30 & sleep 30 & trap - TERM; echo ready; wait"));
  }
  const int pgid = h.backend.pid_of("g-1");
  REQUIRE(h.output_has("[app/g-1] ready\n"));
  REQUIRE(wait_until([&] { return group_members(pgid).size() == 3; }, 5s));
  const auto members = group_members(pgid);
  const auto begin = std::chrono::steady_clock::now();
  REQUIRE(h.stop("g-1"));
  CHECK(std::chrono::steady_clock::now() - begin < 5s);
  CHECK(h.run_until([&] { return all_gone(members); }, 3s));
  CHECK(group_members(pgid).empty());
}

TEST_CASE("process backend: stop of an unknown id completes at once, not inline", "[process_backend]") {
  harness h;
  bool done = false;
  h.backend.stop("nobody-1", [&] { done = true; });
  CHECK_FALSE(done);
  CHECK(h.run_until([&] { return done; }));
}

TEST_CASE("process backend: stop_all stops every instance concurrently", "[process_backend]") {
  harness h;
  int calls = 0;
  SECTION("none") {
    h.backend.stop_all([&] { ++calls; });
    CHECK(calls == 0);
    CHECK(h.run_until([&] { return calls == 1; }));
  }
  SECTION("several") {
    auto stubborn = shell("trap '' TERM; echo ready; while :; do sleep 1; done");
    stubborn.stop_timeout = 300ms;
    h.start_ok("a-1", shell("exec sleep 30"));
    h.start_ok("a-2", stubborn);
    h.start_ok("a-3", shell("sleep 30 & exec sleep 30"));
    REQUIRE(h.output_has("[app/a-2] ready\n"));
    std::vector<int> pids;
    for (const char* id : {"a-1", "a-2", "a-3"}) {
      for (int pid : group_members(h.backend.pid_of(id))) pids.push_back(pid);
    }
    const auto begin = std::chrono::steady_clock::now();
    h.backend.stop_all([&] { ++calls; });
    REQUIRE(h.run_until([&] { return calls == 1; }));
    // Concurrent: the whole thing took about one stop_timeout, not the sum.
    CHECK(std::chrono::steady_clock::now() - begin < 3s);
    CHECK(h.backend.running() == 0);
    CHECK(h.run_until([&] { return all_gone(pids); }));
    CHECK(h.exits.empty());
  }
  CHECK(calls == 1);
}

TEST_CASE("process backend: shutdown and destruction leave no process running", "[process_backend]") {
  std::vector<int> pids;
  SECTION("shutdown completes pending stops") {
    harness h;
    auto stubborn = shell("trap '' TERM; echo ready; while :; do sleep 1; done");
    h.start_ok("z-1", stubborn);  // stop_timeout 10s: only shutdown() ends it quickly
    REQUIRE(h.output_has("[app/z-1] ready\n"));
    pids = group_members(h.backend.pid_of("z-1"));
    bool done = false;
    h.backend.stop("z-1", [&] { done = true; });
    h.backend.shutdown();
    CHECK(h.backend.running() == 0);
    CHECK(h.run_until([&] { return done; }, 1s));
    CHECK(h.exits.empty());
  }
  SECTION("destructor") {
    harness h;
    h.start_ok("z-1", shell("sleep 30 & echo ready; exec sleep 30"));
    REQUIRE(h.output_has("[app/z-1] ready\n"));
    const int pgid = h.backend.pid_of("z-1");
    REQUIRE(wait_until([&] { return group_members(pgid).size() == 2; }, 5s));
    pids = group_members(pgid);
  }
  REQUIRE_FALSE(pids.empty());
  CHECK(wait_until([&] { return all_gone(pids); }, 3s));
}

TEST_CASE("process backend: the watchdog process is named and holds no descriptor of ours", "[process_backend]") {
  harness h;
  const int watchdog = h.backend.watchdog_pid();
  REQUIRE(watchdog > 0);
  const std::string proc = "/proc/" + std::to_string(watchdog);
  auto name = [&] {
    std::ifstream comm(proc + "/comm");
    std::string text;
    std::getline(comm, text);
    return text;
  };
  auto open_fds = [&] {
    std::size_t count = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(proc + "/fd", ec); !ec && it != std::filesystem::directory_iterator();
         it.increment(ec)) {
      ++count;
    }
    return count;
  };
  // The forked watchdog sets itself up asynchronously.
  CHECK(wait_until([&] { return name() == "wakegate-watch"; }, 5s));
  CHECK(wait_until([&] { return read_stat(std::to_string(watchdog)).pgrp == watchdog; }, 5s));  // own group
  CHECK(wait_until([&] { return open_fds() == 1; }, 5s));

  SECTION("a dead watchdog is replaced") {
    ::kill(watchdog, SIGKILL);
    CHECK(h.run_until([&] { return h.backend.watchdog_pid() != watchdog && h.backend.watchdog_pid() > 0; }));
  }
}

TEST_CASE("process backend: no instance process survives a SIGKILL of wakegate", "[process_backend]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t wakegate = ::fork();
  REQUIRE(wakegate >= 0);
  if (wakegate == 0) {
    // Plays wakegate: a backend with one instance, then waits to be killed.
    ::close(fds[0]);
    try {
      boost::asio::io_context ctx;
      sc::process_backend backend(ctx);
      const cfg::backend config = shell("sleep 60 & exec sleep 60");
      backend.start(sc::instance_spec{"w", "w-1", &config}, [](const sc::start_result&) {});
      const int pids[2] = {backend.pid_of("w-1"), backend.watchdog_pid()};
      if (::write(fds[1], pids, sizeof pids) == static_cast<ssize_t>(sizeof pids)) {
        for (;;) ::pause();
      }
    } catch (...) {
    }
    ::_exit(1);
  }
  ::close(fds[1]);
  int pids[2] = {0, 0};
  const ssize_t n = ::read(fds[0], pids, sizeof pids);
  ::close(fds[0]);
  const int pgid = pids[0];
  const int watchdog = pids[1];
  bool ready = n == static_cast<ssize_t>(sizeof pids) && pgid > 0 && watchdog > 0;
  if (ready) ready = wait_until([&] { return group_members(pgid).size() == 2; }, 5s);
  const auto members = group_members(pgid);

  ::kill(wakegate, SIGKILL);
  int status = 0;
  while (::waitpid(wakegate, &status, 0) < 0 && errno == EINTR) {
  }
  REQUIRE(ready);
  CHECK(WIFSIGNALED(status));
  // The direct child dies by PR_SET_PDEATHSIG, the background grandchild by the watchdog, which
  // then exits.
  CHECK(wait_until([&] { return all_gone(members); }, 5s));
  CHECK(group_members(pgid).empty());
  CHECK(wait_until([&] { return gone(watchdog); }, 5s));
}
