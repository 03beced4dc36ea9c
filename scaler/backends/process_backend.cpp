#include "scaler/backends/process_backend.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <csignal>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace wakegate::scaler {

namespace asio = boost::asio;

namespace {

constexpr std::size_t max_line = 16 * 1024;  // longer lines are split
constexpr int unknown_status = -1;           // the leader was reaped by someone else

std::string errno_text(int err) { return std::generic_category().message(err); }

std::string expand_port(std::string text, const std::string& port) {
  static constexpr std::string_view token = "${PORT}";
  for (auto at = text.find(token); at != std::string::npos; at = text.find(token, at + port.size())) {
    text.replace(at, token.size(), port);
  }
  return text;
}

struct port_result {
  std::uint16_t port = 0;
  std::string error;
};

// Binds 127.0.0.1:0 to let the kernel choose a free port, then releases it for the instance.
port_result pick_port() {
  port_result result;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    result.error = "cannot pick a port: " + errno_text(errno);
    return result;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    result.error = "cannot pick a port: " + errno_text(errno);
  } else {
    result.port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return result;
}

// wakegate's environment, then PORT, then the configured variables; a later name replaces an
// earlier one (no duplicates, since getenv would see only the first).
std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra,
                                   const std::string& port) {
  auto configured_from = [&](std::string_view name, std::size_t first) {
    for (std::size_t i = first; i < extra.size(); ++i) {
      if (extra[i].first == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string_view name = text.substr(0, text.find('='));
    if (name != "PORT" && !configured_from(name, 0)) env.emplace_back(text);
  }
  if (!configured_from("PORT", 0)) env.push_back("PORT=" + port);
  for (std::size_t i = 0; i < extra.size(); ++i) {
    if (!configured_from(extra[i].first, i + 1)) {
      env.push_back(extra[i].first + "=" + expand_port(extra[i].second, port));
    }
  }
  return env;
}

std::vector<char*> null_terminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

std::string exit_reason(int status) {
  if (status == unknown_status) return "exited (status unknown)";
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return "killed by signal " + (abbrev != nullptr ? "SIG" + std::string(abbrev) : std::to_string(sig));
  }
  return "exited (status " + std::to_string(status) + ")";
}

class unique_fd {
 public:
  unique_fd() = default;
  ~unique_fd() { reset(); }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct pipe_fds {
  unique_fd read;
  unique_fd write;
};

// A close-on-exec pipe whose ends are >= 3, so the child's dup2 onto 0-2 never clobbers one.
bool open_pipe(pipe_fds& p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  p.read.reset(fds[0]);
  p.write.reset(fds[1]);
  for (unique_fd* end : {&p.read, &p.write}) {
    if (end->get() >= 3) continue;
    const int moved = ::fcntl(end->get(), F_DUPFD_CLOEXEC, 3);
    if (moved < 0) return false;
    end->reset(moved);
  }
  return true;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// --- the child, between fork and exec: async-signal-safe calls only ---

enum child_stage : int { stage_setup = 1, stage_chdir = 2, stage_exec = 3 };

struct child_report {
  int stage = 0;
  int err = 0;
};

struct child_plan {
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // nullptr: keep wakegate's
  int out_w = -1;
  int err_w = -1;
  int go_r = -1;
  int status_w = -1;  // close-on-exec: EOF in the parent means exec succeeded
  pid_t parent = 0;
  long max_fd = 0;
};

[[noreturn]] void report_and_exit(int fd, int stage, int err) noexcept {
  const child_report report{stage, err};
  while (::write(fd, &report, sizeof report) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

[[noreturn]] void child_main(const child_plan& plan) noexcept {
  // Signals stay blocked (the parent blocked them around fork) until just before exec.
  detail::reset_signal_dispositions();
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != plan.parent) ::_exit(127);  // wakegate died before prctl took effect

  // Wait until the parent has registered our group with the watchdog.
  char go = 0;
  ssize_t n = 0;
  do {
    n = ::read(plan.go_r, &go, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);

  const int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd < 0) report_and_exit(plan.status_w, stage_setup, errno);
  if (null_fd != 0) {
    if (::dup2(null_fd, 0) < 0) report_and_exit(plan.status_w, stage_setup, errno);
    ::close(null_fd);
  }
  if (::dup2(plan.out_w, 1) < 0 || ::dup2(plan.err_w, 2) < 0) {
    report_and_exit(plan.status_w, stage_setup, errno);
  }
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) report_and_exit(plan.status_w, stage_chdir, errno);
  detail::close_fds_from(3, plan.status_w, plan.max_fd);

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  environ = const_cast<char**>(plan.envp);  // execvp then also searches the instance's PATH
  ::execvp(plan.argv[0], plan.argv);
  report_and_exit(plan.status_w, stage_exec, errno);
}

// Copies one instance stream to wakegate's stderr, line by line. Keeps itself alive through
// its pending read and ends at EOF; it never touches the backend.
class output_reader : public std::enable_shared_from_this<output_reader> {
 public:
  output_reader(asio::io_context& ctx, std::string prefix) : stream_(ctx), prefix_(std::move(prefix)) {}

  // Takes ownership of `fd`.
  void start(int fd) {
    boost::system::error_code ec;
    stream_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    read_more();
  }

 private:
  void read_more() {
    stream_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (n > 0) {
      pending_.append(buf_.data(), n);
      emit_complete_lines();
    }
    if (ec) {  // EOF (or a read error): flush the partial last line
      if (!pending_.empty()) write_line(pending_);
      pending_.clear();
      return;
    }
    read_more();
  }

  void emit_complete_lines() {
    std::size_t begin = 0;
    for (;;) {
      const auto newline = pending_.find('\n', begin);
      const std::size_t length = (newline == std::string::npos ? pending_.size() : newline) - begin;
      if (newline != std::string::npos && length <= max_line) {
        write_line(std::string_view(pending_).substr(begin, length));
        begin = newline + 1;
      } else if (length > max_line) {
        write_line(std::string_view(pending_).substr(begin, max_line));
        begin += max_line;
      } else {
        break;
      }
    }
    pending_.erase(0, begin);
  }

  // One write(2) per line, so lines of different instances do not interleave.
  void write_line(std::string_view text) {
    line_.assign(prefix_);
    line_.append(text);
    line_.push_back('\n');
    write_all(2, line_.data(), line_.size());
  }

  asio::posix::stream_descriptor stream_;
  std::string prefix_;
  std::array<char, 8192> buf_{};
  std::string pending_;
  std::string line_;
};

}  // namespace

struct process_backend::instance {
  explicit instance(asio::io_context& ctx) : stop_timer(ctx) {}

  std::string id;
  pid_t pid = 0;  // also the pgid
  int stop_signal = SIGTERM;
  config::duration stop_timeout{};
  bool stopping = false;
  bool reaped = false;
  bool killed = false;       // the stop timer sent SIGKILL
  bool ended_first = false;  // already exited when the stop came (a crash the proxy saw first)
  asio::steady_timer stop_timer;
  std::vector<std::function<void()>> stop_waiters;
};

process_backend::process_backend(asio::io_context& ctx) : ctx_(ctx), sigchld_(ctx, SIGCHLD) {
  wait_sigchld();
}

process_backend::~process_backend() { kill_all(false); }

void process_backend::start(const instance_spec& spec, std::function<void(start_result)> done) {
  auto fail = [&](std::string error) {
    start_result result;
    result.error = std::move(error);
    asio::post(ctx_, [done, result] { done(result); });
  };
  const auto* cfg = spec.backend != nullptr ? std::get_if<config::process_backend>(spec.backend) : nullptr;
  if (cfg == nullptr) return fail("instance '" + spec.id + "': not a process backend");
  if (cfg->command.empty()) return fail("instance '" + spec.id + "': empty command");
  if (instances_.count(spec.id) != 0) return fail("instance '" + spec.id + "' already exists");

  const port_result port = pick_port();
  if (!port.error.empty()) return fail(port.error);
  const std::string port_text = std::to_string(port.port);

  // Everything the child needs is prepared before fork: the child must not allocate.
  std::vector<std::string> args;
  args.reserve(cfg->command.size());
  for (const auto& arg : cfg->command) args.push_back(expand_port(arg, port_text));
  std::vector<std::string> env = build_env(cfg->env, port_text);
  const std::vector<char*> argv = null_terminated(args);
  const std::vector<char*> envp = null_terminated(env);
  auto cannot = [&](const std::string& why) { return "cannot start '" + args[0] + "': " + why; };

  pipe_fds out;
  pipe_fds err;
  pipe_fds go;
  pipe_fds status;
  if (!open_pipe(out) || !open_pipe(err) || !open_pipe(go) || !open_pipe(status)) {
    return fail(cannot("cannot create a pipe: " + errno_text(errno)));
  }

  child_plan plan;
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.cwd = cfg->cwd.empty() ? nullptr : cfg->cwd.c_str();
  plan.out_w = out.write.get();
  plan.err_w = err.write.get();
  plan.go_r = go.read.get();
  plan.status_w = status.write.get();
  plan.parent = ::getpid();
  plan.max_fd = ::sysconf(_SC_OPEN_MAX);

  sigset_t all;
  sigset_t old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of ours may run in the child
  const pid_t pid = ::fork();
  if (pid == 0) child_main(plan);
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return fail(cannot(errno_text(fork_errno)));
  out.write.reset();
  err.write.reset();
  go.read.reset();
  status.write.reset();

  ::setpgid(pid, pid);  // the child does it too: whichever runs first, kill(-pid) works from now
  watchdog_.add(pid);
  const char go_byte = 1;
  write_all(go.write.get(), &go_byte, 1);
  go.write.reset();

  // Blocks only until the child execs (or fails to): it does nothing slow before that.
  child_report report;
  std::size_t got = 0;
  while (got < sizeof report) {
    const ssize_t n = ::read(status.read.get(), reinterpret_cast<char*>(&report) + got, sizeof report - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == sizeof report) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    watchdog_.remove(pid);
    std::string why = errno_text(report.err);
    if (report.stage == stage_chdir) {
      why = "cannot change directory to '" + cfg->cwd + "': " + why;
    } else if (report.stage == stage_setup) {
      why = "cannot set up the process: " + why;
    }
    return fail(cannot(why));
  }

  auto inst = std::make_shared<instance>(ctx_);
  inst->id = spec.id;
  inst->pid = pid;
  inst->stop_signal = cfg->stop_signal;
  inst->stop_timeout = cfg->stop_timeout;
  instances_.emplace(spec.id, inst);

  const std::string prefix = "[" + spec.app + "/" + spec.id + "] ";
  std::make_shared<output_reader>(ctx_, prefix)->start(out.read.release());
  std::make_shared<output_reader>(ctx_, prefix)->start(err.read.release());

  start_result result;
  result.ok = true;
  result.host = "127.0.0.1";
  result.port = port.port;
  result.pid = pid;
  asio::post(ctx_, [done = std::move(done), result] { done(result); });
}

void process_backend::stop(const std::string& id, std::function<void()> done) {
  auto it = instances_.find(id);
  if (it == instances_.end()) {
    if (done) asio::post(ctx_, std::move(done));
    return;
  }
  const auto inst = it->second;
  if (done) inst->stop_waiters.push_back(std::move(done));
  if (inst->stopping) return;
  inst->stopping = true;
  // A stop that comes after the proxy saw the instance fail (connect refused) often finds it
  // already dead: its exit, not the stop, then says why it failed (finish reports it).
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(inst->pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == inst->pid)
    inst->ended_first = true;
  ::kill(-inst->pid, inst->stop_signal);
  inst->stop_timer.expires_after(inst->stop_timeout);
  inst->stop_timer.async_wait([weak = std::weak_ptr<instance>(inst)](const boost::system::error_code& ec) {
    const auto strong = weak.lock();
    if (ec || !strong || strong->reaped) return;
    strong->killed = true;
    ::kill(-strong->pid, SIGKILL);  // unreaped leader: the pgid is still this instance's
  });
}

void process_backend::stop_all(std::function<void()> done) {
  if (instances_.empty()) {
    if (done) asio::post(ctx_, std::move(done));
    return;
  }
  auto left = std::make_shared<std::size_t>(instances_.size());
  auto all_done = std::make_shared<std::function<void()>>(std::move(done));
  std::vector<std::string> ids;
  for (const auto& entry : instances_) ids.push_back(entry.first);
  for (const auto& id : ids) {
    stop(id, [left, all_done] {
      if (--*left == 0 && *all_done) (*all_done)();
    });
  }
}

void process_backend::shutdown() { kill_all(true); }

int process_backend::pid_of(const std::string& id) const {
  const auto it = instances_.find(id);
  return it == instances_.end() ? 0 : it->second->pid;
}

std::size_t process_backend::running() const { return instances_.size(); }

void process_backend::wait_sigchld() {
  sigchld_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec, int) {
    if (alive.expired() || ec == asio::error::operation_aborted) return;
    wait_sigchld();  // re-armed first: the callbacks below may even destroy the backend
    reap_exited();
  });
}

void process_backend::reap_exited() {
  watchdog_.check();
  std::vector<std::pair<std::shared_ptr<instance>, int>> exited;
  for (const auto& [id, inst] : instances_) {
    siginfo_t info{};
    int r = 0;
    // Peek without reaping: while the zombie leader exists its pgid cannot be reused, so the
    // group kill below cannot hit anyone else.
    do {
      r = ::waitid(P_PID, static_cast<id_t>(inst->pid), &info, WEXITED | WNOHANG | WNOWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
      exited.emplace_back(inst, unknown_status);  // ECHILD: someone else reaped it
      continue;
    }
    if (info.si_pid != inst->pid) continue;  // still running
    ::kill(-inst->pid, SIGKILL);  // the leader is gone; nothing else in its group may survive it
    int status = 0;
    while (::waitpid(inst->pid, &status, 0) < 0) {
      if (errno != EINTR) {
        status = unknown_status;
        break;
      }
    }
    exited.emplace_back(inst, status);
  }
  const std::weak_ptr<int> alive = alive_;
  for (const auto& [inst, status] : exited) {
    if (alive.expired()) return;
    finish(inst, status);
  }
}

void process_backend::finish(const std::shared_ptr<instance>& inst, int status) {
  const auto it = instances_.find(inst->id);
  if (it == instances_.end() || it->second != inst) return;  // a callback already shut it down
  instances_.erase(it);
  inst->reaped = true;
  inst->stop_timer.cancel();
  watchdog_.remove(inst->pid);
  if (inst->stopping) {
    // Ended on its own although a stop was under way: dead before the stop came, or killed by a
    // signal that is neither the stop signal nor the stop timer's SIGKILL (a kill -9 racing the
    // stop). Reported, as the cause of the failure that asked for the stop.
    const bool foreign_signal = status != unknown_status && WIFSIGNALED(status) && WTERMSIG(status) != inst->stop_signal &&
                                !(WTERMSIG(status) == SIGKILL && inst->killed);
    if ((inst->ended_first || foreign_signal) && on_exit) {
      const std::weak_ptr<int> alive = alive_;
      const auto callback = on_exit;  // the callback may destroy the backend
      callback(inst->id, exit_reason(status));
      if (alive.expired()) return;
    }
    for (auto& waiter : inst->stop_waiters) waiter();
  } else if (on_exit) {
    const auto callback = on_exit;  // the callback may destroy the backend
    callback(inst->id, exit_reason(status));
  }
}

void process_backend::kill_all(bool complete_stops) {
  for (const auto& entry : instances_) ::kill(-entry.second->pid, SIGKILL);
  std::vector<std::function<void()>> waiters;
  for (const auto& [id, inst] : instances_) {
    while (::waitpid(inst->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    inst->reaped = true;
    inst->stop_timer.cancel();
    watchdog_.remove(inst->pid);
    if (complete_stops) {
      for (auto& waiter : inst->stop_waiters) waiters.push_back(std::move(waiter));
    }
  }
  instances_.clear();
  for (auto& waiter : waiters) asio::post(ctx_, std::move(waiter));
}

}  // namespace wakegate::scaler
