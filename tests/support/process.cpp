#include "tests/support/process.hpp"

#include <dirent.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "tests/support/wait.hpp"

extern char** environ;

namespace wakegate::test {

namespace {

// Failed assertions so far (any test); a wakegate_process that sees this grow during its life
// prints wakegate's stderr when it is destroyed, so that failures come with the logs.
std::atomic<int> failed_assertions{0};

struct failure_counter : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void assertionStarting(const Catch::AssertionInfo&) override {}
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (!stats.assertionResult.isOk()) failed_assertions.fetch_add(1);
    return true;
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(failure_counter)

namespace {

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// argv/envp as C arrays, built before fork (only async-signal-safe calls after it).
struct c_strings {
  explicit c_strings(const std::vector<std::string>& v) : store(v) {
    for (auto& s : store) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
  std::vector<std::string> store;
  std::vector<char*> ptrs;
};

std::vector<std::string> environment_with(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    std::string name = entry.substr(0, eq);
    bool overridden = std::any_of(extra.begin(), extra.end(), [&](const auto& kv) { return kv.first == name; });
    if (!overridden) env.push_back(std::move(entry));
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

// In the child between fork and exec: async-signal-safe calls only.
void child_common_setup() {
  ::setpgid(0, 0);
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

void close_fds_from(int first) {
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, 0U) != 0) {
    for (int fd = first; fd < 4096; ++fd) ::close(fd);
  }
}

[[noreturn]] void exec_failed(const char* path) {
  const char* msg = "exec failed: ";
  auto w = [](const char* s) { [[maybe_unused]] auto r = ::write(2, s, std::strlen(s)); };
  w(msg);
  w(path);
  w("\n");
  ::_exit(127);
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  DIR* d = ::opendir("/proc");
  if (!d) return pids;
  while (auto* e = ::readdir(d)) {
    const char* n = e->d_name;
    if (*n < '0' || *n > '9') continue;
    char* end = nullptr;
    long v = std::strtol(n, &end, 10);
    if (end && *end == '\0' && v > 0) pids.push_back(static_cast<pid_t>(v));
  }
  ::closedir(d);
  return pids;
}

// "pid (comm) S ppid pgrp ...": the fields after the last ')'.
std::optional<std::pair<char, pid_t>> stat_state_and_group(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(close + 1));
  char state = 0;
  long ppid = 0, pgrp = 0;
  if (!(rest >> state >> ppid >> pgrp)) return std::nullopt;
  return std::make_pair(state, static_cast<pid_t>(pgrp));
}

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- one-shot commands -------------------------------------------------------------------------

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

command_result run_command(const std::vector<std::string>& argv, const std::string& input,
                           std::chrono::milliseconds timeout) {
  ignore_sigpipe();
  command_result result;
  if (argv.empty()) {
    result.err = "run_command: empty argv";
    return result;
  }
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {in_pipe[0], in_pipe[1]}) ::close(fd);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.err = std::string("pipe: ") + std::strerror(errno);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return result;
  }
  c_strings args(argv);
  pid_t pid = ::fork();
  if (pid < 0) {
    result.err = std::string("fork: ") + std::strerror(errno);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return result;
  }
  if (pid == 0) {
    child_common_setup();
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    close_fds_from(3);
    ::execve(args.ptrs[0], args.ptrs.data(), environ);
    exec_failed(args.ptrs[0]);
  }
  ::setpgid(pid, pid);  // also done by the child; whichever runs first
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  int in_fd = in_pipe[1], out_fd = out_pipe[0], err_fd = err_pipe[0];
  set_nonblocking(in_fd);
  set_nonblocking(out_fd);
  set_nonblocking(err_fd);
  std::size_t written = 0;
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }

  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool exited = false;
  int status = 0;
  std::array<char, 65536> buf{};
  auto read_some = [&](int& fd, std::string& into) {
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n > 0) {
        into.append(buf.data(), static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        ::close(fd);
        fd = -1;
      }
      return;
    }
  };
  while (out_fd >= 0 || err_fd >= 0 || !exited) {
    if (!exited) {
      pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) exited = true;
    }
    if (exited) {
      // Everything the child wrote is in the pipes now; a grandchild may hold them open.
      if (out_fd >= 0) read_some(out_fd, result.out);
      if (err_fd >= 0) read_some(err_fd, result.err);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::vector<pollfd> fds;
    if (in_fd >= 0) fds.push_back({in_fd, POLLOUT, 0});
    if (out_fd >= 0) fds.push_back({out_fd, POLLIN, 0});
    if (err_fd >= 0) fds.push_back({err_fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 20);
    for (auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == in_fd) {
        ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
      } else if (p.fd == out_fd) {
        read_some(out_fd, result.out);
      } else if (p.fd == err_fd) {
        read_some(err_fd, result.err);
      }
    }
  }
  for (int fd : {in_fd, out_fd, err_fd})
    if (fd >= 0) ::close(fd);
  result.exit_code = result.timed_out ? -1 : decode_status(status);
  return result;
}

command_result run_wakegate(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{WAKEGATE_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {}, timeout);
}

// ---- temporary directory -----------------------------------------------------------------------

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/wakegate-it-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string temp_dir::write(const std::string& name, const std::string& content) const {
  std::string final_path = path_ + "/" + name;
  std::string tmp = final_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, final_path);
  return final_path;
}

// ---- /proc scans -------------------------------------------------------------------------------

std::string unique_marker() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  std::ostringstream ss;
  ss << "wgit-" << ::getpid() << "-" << std::hex << rd() << "-" << std::dec << counter.fetch_add(1);
  return ss.str();
}

pid_t spawn_logged(const std::vector<std::string>& argv, const std::string& log_file,
                   const std::vector<std::string>& env_add) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setpgid(0, 0);
  int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, 0);
  for (const auto& e : env_add) ::putenv(const_cast<char*>(e.c_str()));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

std::uint16_t free_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor a(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

refused_port::refused_port() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw std::runtime_error("refused_port: socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd_);
    throw std::runtime_error("refused_port: bind failed");
  }
  port_ = ntohs(addr.sin_port);
}

refused_port::~refused_port() { ::close(fd_); }

void kill_group(pid_t pid) {
  if (pid <= 0) return;
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

std::string process_cmdline(pid_t pid) {
  std::string raw = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  std::replace(raw.begin(), raw.end(), '\0', ' ');
  return raw;
}

bool process_alive(pid_t pid) {
  auto s = stat_state_and_group(pid);
  return s && s->first != 'Z' && s->first != 'X' && s->first != 'x';
}

std::optional<pid_t> process_group_of(pid_t pid) {
  auto s = stat_state_and_group(pid);
  if (!s) return std::nullopt;
  return s->second;
}

std::vector<pid_t> processes_in_group(pid_t pgid) {
  std::vector<pid_t> out;
  for (pid_t p : all_pids()) {
    auto s = stat_state_and_group(p);
    if (s && s->second == pgid && s->first != 'Z' && s->first != 'X' && s->first != 'x') out.push_back(p);
  }
  return out;
}

std::vector<pid_t> find_processes(const std::string& needle) {
  std::vector<pid_t> out;
  pid_t self = ::getpid();
  for (pid_t p : all_pids()) {
    if (p == self) continue;
    std::string cmd = process_cmdline(p);
    if (cmd.find(needle) != std::string::npos && process_alive(p)) out.push_back(p);
  }
  return out;
}

int count_processes(const std::string& needle) { return static_cast<int>(find_processes(needle).size()); }

std::optional<std::uint64_t> process_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream ss(line.substr(6));
      std::uint64_t kb = 0;
      if (ss >> kb) return kb * 1024;
    }
  }
  return std::nullopt;
}

void kill_processes(const std::string& needle) {
  if (needle.empty()) return;
  pid_t own_group = ::getpgrp();
  for (pid_t p : find_processes(needle)) {
    auto g = process_group_of(p);
    if (g && *g > 1 && *g != own_group) ::kill(-*g, SIGKILL);
    ::kill(p, SIGKILL);
  }
}

// ---- JSON helpers ------------------------------------------------------------------------------

std::optional<boost::json::object> parse_log_line(const std::string& line) {
  if (line.empty() || line.front() != '{') return std::nullopt;
  boost::system::error_code ec;
  auto v = boost::json::parse(line, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return v.as_object();
}

std::string json_string(const boost::json::object& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().as_string());
}

std::optional<double> json_number(const boost::json::object& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  const auto& v = it->value();
  if (v.is_double()) return v.as_double();
  if (v.is_int64()) return static_cast<double>(v.as_int64());
  if (v.is_uint64()) return static_cast<double>(v.as_uint64());
  return std::nullopt;
}

std::optional<bool> json_bool(const boost::json::object& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_bool()) return std::nullopt;
  return it->value().as_bool();
}

// ---- the wakegate binary -----------------------------------------------------------------------

wakegate_process::wakegate_process(const std::string& config_yaml, wakegate_options options)
    : options_(std::move(options)), failures_at_start_(failed_assertions.load()) {
  ignore_sigpipe();
  config_path_ = dir_.write("wakegate.yaml", config_yaml);
  try {
    start(options_.env);
    if (options_.wait_ready && !wait_ready(options_.ready_timeout)) {
      bool alive = running();
      throw std::runtime_error(std::string("wakegate ") + (alive ? "did not log `ready` in time" : "exited") +
                               (alive ? "" : " with status " + std::to_string(exit_status_)) + "; its stderr:\n" +
                               stderr_tail());
    }
  } catch (...) {
    kill_all();
    throw;
  }
}

wakegate_process::~wakegate_process() {
  // End it the way users do (SIGTERM, then a second one to stop waiting for connections), so the
  // shutdown path runs in every test and coverage data gets written; SIGKILL only as a last resort.
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGTERM);
    if (!wait_exit(std::chrono::milliseconds(1000))) {
      ::kill(pid_, SIGTERM);
      wait_exit(std::chrono::milliseconds(3000));
    }
  }
  kill_all();
  if (failed_assertions.load() != failures_at_start_) {
    std::string dump = "---- wakegate stderr (" + config_path_ + ") ----\n" + stderr_tail(300) + "---- end ----\n";
    std::fwrite(dump.data(), 1, dump.size(), stderr);
  }
}

void wakegate_process::start(const std::vector<std::pair<std::string, std::string>>& env) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("pipe failed");
  }
  c_strings args(std::vector<std::string>{WAKEGATE_BINARY, "run", "--config", config_path_});
  c_strings envp(environment_with(env));
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], null_fd}) ::close(fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    child_common_setup();
    // Dies with the test binary (if the test binary itself crashes, nothing is left running).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    close_fds_from(3);
    ::execve(args.ptrs[0], args.ptrs.data(), envp.ptrs.data());
    exec_failed(args.ptrs[0]);
  }
  ::setpgid(pid, pid);
  pid_ = pid;
  if (null_fd >= 0) ::close(null_fd);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  stdout_fd_ = out_pipe[0];
  stderr_fd_ = err_pipe[0];
  set_nonblocking(stdout_fd_);
  set_nonblocking(stderr_fd_);
  drainer_ = std::thread([this] { drain(); });
}

void wakegate_process::drain() {
  std::string partial_out, partial_err;
  std::array<char, 65536> buf{};
  bool out_open = true, err_open = true;
  auto consume = [&](int fd, std::string& partial, bool& open, bool is_stderr) {
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n > 0) {
        partial.append(buf.data(), static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = partial.find('\n')) != std::string::npos) {
          on_line(partial.substr(0, nl), is_stderr);
          partial.erase(0, nl + 1);
        }
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        open = false;
        if (!partial.empty()) on_line(std::exchange(partial, {}), is_stderr);
      }
      return;
    }
  };
  while ((out_open || err_open) && !stop_.load()) {
    std::vector<pollfd> fds;
    if (out_open) fds.push_back({stdout_fd_, POLLIN, 0});
    if (err_open) fds.push_back({stderr_fd_, POLLIN, 0});
    int r = ::poll(fds.data(), fds.size(), 50);  // bounded so that stop_ is seen
    if (r <= 0) continue;
    for (auto& p : fds) {
      if (p.revents == 0) continue;
      if (p.fd == stdout_fd_) consume(stdout_fd_, partial_out, out_open, false);
      if (p.fd == stderr_fd_) consume(stderr_fd_, partial_err, err_open, true);
    }
  }
  {
    std::lock_guard lk(mu_);
    eof_ = true;
  }
  cv_.notify_all();
}

void wakegate_process::on_line(std::string line, bool is_stderr) {
  std::optional<boost::json::object> rec;
  if (is_stderr) rec = parse_log_line(line);
  {
    std::lock_guard lk(mu_);
    if (!is_stderr) {
      out_lines_.push_back(std::move(line));
    } else {
      if (rec) {
        std::string msg = json_string(*rec, "msg");
        if (msg == "listening") {
          std::string listener = json_string(*rec, "listener");
          std::string address = json_string(*rec, "address");
          auto colon = address.rfind(':');
          if (colon != std::string::npos) {
            int port = std::atoi(address.c_str() + colon + 1);
            if (listener == "http") http_port_ = static_cast<std::uint16_t>(port);
            if (listener == "admin") admin_port_ = static_cast<std::uint16_t>(port);
            if (listener == "https") https_port_ = static_cast<std::uint16_t>(port);
          }
        } else if (msg == "ready") {
          ready_ = true;
        }
        records_.push_back(std::move(*rec));
      }
      err_lines_.push_back(std::move(line));
    }
  }
  cv_.notify_all();
}

std::uint16_t wakegate_process::http_port() const {
  std::lock_guard lk(mu_);
  return http_port_;
}

std::uint16_t wakegate_process::https_port() const {
  std::lock_guard lk(mu_);
  return https_port_;
}

std::uint16_t wakegate_process::admin_port() const {
  std::lock_guard lk(mu_);
  return admin_port_;
}

bool wakegate_process::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      if (ready_) return true;
      cv_.wait_for(lk, 25ms, [&] { return ready_; });
      if (ready_) return true;
    }
    if (!running()) {
      // Lines written just before exiting may still be in the pipe.
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, 500ms, [&] { return ready_ || eof_; });
      return ready_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

void wakegate_process::write_config(const std::string& yaml) { dir_.write("wakegate.yaml", yaml); }

void wakegate_process::signal(int sig) {
  if (!reaped_ && pid_ > 0) ::kill(pid_, sig);
}

bool wakegate_process::running() {
  if (reaped_ || pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    exit_status_ = decode_status(status);
    return false;
  }
  return true;
}

std::optional<int> wakegate_process::wait_exit(std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return !running(); }, timeout, 5ms)) return std::nullopt;
  if (exit_status_ != 0) {
    // Why, next to the check that fails on it (found in CI: a sanitizer report at exit was in
    // the stderr dump at the end of the test, which the CI excerpt cut).
    {
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, 1s, [&] { return eof_; });  // its last lines
    }
    UNSCOPED_INFO("wakegate exited with status " << exit_status_ << "; why:\n" << exit_report());
  }
  return exit_status_;
}

// A sanitizer's report from its first line (at most 30 lines), else the last 15 lines of stderr.
std::string wakegate_process::exit_report() const {
  std::lock_guard lk(mu_);
  std::size_t first = err_lines_.size() > 15 ? err_lines_.size() - 15 : 0, count = 15;
  for (std::size_t i = 0; i < err_lines_.size(); ++i)
    if (err_lines_[i].find("Sanitizer") != std::string::npos || err_lines_[i].find("runtime error") != std::string::npos) {
      first = i;
      count = 30;
      break;
    }
  std::string out;
  for (std::size_t i = first; i < err_lines_.size() && i < first + count; ++i) out += err_lines_[i] + "\n";
  return out;
}

void wakegate_process::kill_all() {
  if (pid_ > 0) {
    if (!reaped_) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) exit_status_ = decode_status(status);
      reaped_ = true;
    } else {
      ::kill(-pid_, SIGKILL);  // leftovers in its group; a reaped pid is not reused while its group lives
    }
  }
  for (const auto& m : options_.cleanup_markers) kill_processes(m);
  stop_ = true;
  if (drainer_.joinable()) drainer_.join();
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
  stdout_fd_ = stderr_fd_ = -1;
}

std::vector<std::string> wakegate_process::stderr_lines() const {
  std::lock_guard lk(mu_);
  return err_lines_;
}

std::vector<std::string> wakegate_process::stdout_lines() const {
  std::lock_guard lk(mu_);
  return out_lines_;
}

std::string wakegate_process::stderr_text() const {
  std::lock_guard lk(mu_);
  std::string out;
  for (const auto& l : err_lines_) out += l + "\n";
  return out;
}

std::string wakegate_process::stderr_tail(std::size_t n) const {
  std::lock_guard lk(mu_);
  std::string out;
  std::size_t first = err_lines_.size() > n ? err_lines_.size() - n : 0;
  if (first > 0) out += "... (" + std::to_string(first) + " earlier lines)\n";
  for (std::size_t i = first; i < err_lines_.size(); ++i) out += err_lines_[i] + "\n";
  return out;
}

std::vector<boost::json::object> wakegate_process::log_records() const {
  std::lock_guard lk(mu_);
  return records_;
}

std::vector<boost::json::object> wakegate_process::access_records() const {
  std::vector<boost::json::object> out;
  std::lock_guard lk(mu_);
  for (const auto& r : records_)
    if (json_string(r, "type") == "access") out.push_back(r);
  return out;
}

std::vector<boost::json::object> wakegate_process::records_with_msg(const std::string& msg,
                                                                    const std::string& app) const {
  std::vector<boost::json::object> out;
  std::lock_guard lk(mu_);
  for (const auto& r : records_)
    if (json_string(r, "msg") == msg && (app.empty() || json_string(r, "app") == app)) out.push_back(r);
  return out;
}

bool wakegate_process::wait_for_line(const std::function<bool(const std::string&)>& pred,
                                     std::chrono::milliseconds timeout) const {
  std::size_t checked = 0;
  return wait_until(
      [&] {
        std::lock_guard lk(mu_);
        for (; checked < err_lines_.size(); ++checked)
          if (pred(err_lines_[checked])) return true;
        return false;
      },
      timeout);
}

bool wakegate_process::wait_for_record(const std::function<bool(const boost::json::object&)>& pred,
                                       std::chrono::milliseconds timeout) const {
  std::size_t checked = 0;
  return wait_until(
      [&] {
        std::lock_guard lk(mu_);
        for (; checked < records_.size(); ++checked)
          if (pred(records_[checked])) return true;
        return false;
      },
      timeout);
}

boost::json::object wakegate_process::access_record(const std::string& path, std::chrono::milliseconds timeout) const {
  boost::json::object found;
  wait_for_record(
      [&](const boost::json::object& x) {
        if (json_string(x, "type") != "access" || json_string(x, "path") != path) return false;
        found = x;
        return true;
      },
      timeout);
  return found;
}

}  // namespace wakegate::test
