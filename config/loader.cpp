// YAML -> config. Walks yaml-cpp's node tree once, fills the model and collects every problem with
// its position; diagnostics are sorted into file order at the end.
#include "config/loader.hpp"

#include "config/certificate.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <span>
#include <sstream>
#include <system_error>
#include <utility>

#include "common/time_zone.hpp"

namespace wakegate::config {

std::string diagnostic::str() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

namespace fs = std::filesystem;

constexpr std::string_view duration_expected = "expected a duration like 250ms, 30s or 5m";

constexpr std::array<std::string_view, 10> top_keys{
    "listen", "shutdown_timeout", "scale_interval", "workers", "access_log", "limits", "admin", "defaults", "apps", "tls"};
constexpr std::array<std::string_view, 11> limits_keys{
    "max_header_bytes",        "max_headers",           "max_connections",           "max_pipelined",
    "header_timeout",          "idle_timeout",          "io_timeout",                "upstream_connect_timeout",
    "response_header_timeout", "upstream_idle_timeout", "upstream_idle_per_instance"};
constexpr std::array<std::string_view, 1> admin_keys{"token"};
constexpr std::string_view size_expected = "expected a size like 65536, 64KiB or 10MiB";
constexpr std::array<std::string_view, 3> listen_keys{"http", "admin", "https"};
constexpr std::array<std::string_view, 23> settings_keys{
    "min_instances",       "max_instances",    "target_concurrency", "max_concurrency",
    "scale_to_zero_after", "scale_down_delay", "stable_window",      "queue_size",
    "queue_timeout",       "startup_timeout",  "readiness",          "max_body",
    "request_timeout",
    // Knative-class policy
    "metric", "target_rps", "panic_window", "panic_threshold", "target_utilization",
    "max_scale_up_rate", "max_scale_down_rate", "initial_instances", "keep_warm", "schedule"};
constexpr std::array<std::string_view, 27> app_keys{"name",
                                                    "hosts",
                                                    "backend",
                                                    "min_instances",
                                                    "max_instances",
                                                    "target_concurrency",
                                                    "max_concurrency",
                                                    "scale_to_zero_after",
                                                    "scale_down_delay",
                                                    "stable_window",
                                                    "queue_size",
                                                    "queue_timeout",
                                                    "startup_timeout",
                                                    "readiness",
                                                    "max_body",
                                                    "request_timeout",
                                                    "metric",
                                                    "target_rps",
                                                    "panic_window",
                                                    "panic_threshold",
                                                    "target_utilization",
                                                    "max_scale_up_rate",
                                                    "max_scale_down_rate",
                                                    "initial_instances",
                                                    "keep_warm",
                                                    "schedule",
                                                    "hsts"};  // last: a tie suggests an older key
constexpr std::array<std::string_view, 3> readiness_keys{"path", "interval", "timeout"};
constexpr std::array<std::string_view, 2> schedule_keys{"time_zone", "ranges"};
constexpr std::array<std::string_view, 4> range_keys{"days", "from", "to", "min_instances"};
constexpr std::array<std::string_view, 7> day_names{"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr std::array<std::string_view, 5> process_keys{"command", "cwd", "env", "stop_signal",
                                                       "stop_timeout"};
constexpr std::array<std::string_view, 10> docker_keys{
    "image", "port", "command", "env", "labels", "network", "memory", "cpus", "pull", "stop_timeout"};

constexpr std::array<std::string_view, 5> tls_keys{"certificates", "default_certificate", "redirect_http",
                                                   "ticket_key_rotation", "acme"};
constexpr std::array<std::string_view, 2> certificate_keys{"cert", "key"};
constexpr std::array<std::string_view, 6> acme_keys{"directory", "email", "storage", "ca_bundle", "renew_before",
                                                    "retry_after"};

struct signal_name {
  std::string_view name;  // without "SIG"
  int number;
};
constexpr std::array<signal_name, 7> signals{{{"TERM", SIGTERM},
                                              {"INT", SIGINT},
                                              {"QUIT", SIGQUIT},
                                              {"HUP", SIGHUP},
                                              {"KILL", SIGKILL},
                                              {"USR1", SIGUSR1},
                                              {"USR2", SIGUSR2}}};

position position_of(const YAML::Mark& mark) {
  // yaml-cpp marks are 0-based and -1 when unknown; diagnostics are 1-based and never 0.
  return {std::max(mark.line, 0) + 1, std::max(mark.column, 0) + 1};
}

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || is_digit(c); }

// Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean 'x'?)" for the closest known key within distance 2, else "".
std::string suggestion(std::string_view key, std::span<const std::string_view> known) {
  const std::string key_lower = lower(key);
  std::size_t best = 3;
  std::string_view best_key;
  for (std::string_view candidate : known) {
    const std::size_t distance = edit_distance(key_lower, candidate);
    if (distance < best) {
      best = distance;
      best_key = candidate;
    }
  }
  // A short key that differs everywhere from a known one is not a typo of it.
  if (best_key.empty() || best >= key.size()) return "";
  return " (did you mean " + in_quotes(best_key) + "?)";
}

bool valid_app_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!is_lower_alnum(name.front()) || !is_lower_alnum(name.back())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '-'; });
}

// Why `host` (lower-cased already) is not a valid host name; empty when it is one.
std::string_view host_problem(std::string_view host) {
  constexpr std::string_view expected = "expected a name like app.example.com or *.example.com";
  if (host.starts_with("*.")) host.remove_prefix(2);
  if (host.empty() || host.size() > 253) return expected;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = host.find('.', start);
    const std::string_view label =
        host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return expected;
    if (!std::all_of(label.begin(), label.end(),
                     [](char c) { return is_lower_alnum(c) || c == '-'; }))
      return expected;
    if (label.front() == '-' || label.back() == '-') return "a label must not start or end with '-'";  // RFC 1123
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

bool valid_env_name(std::string_view name) {
  if (name.empty() || is_digit(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return c == '_' || is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  });
}

bool is_executable_file(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// How exec would find argv[0]: a bare name on wakegate's PATH (execvp ignores the child's env for
// this), a path relative to the instance's working directory.
bool command_exists(const std::string& command, const fs::path& cwd) {
  if (command.empty()) return false;
  if (command.find('/') != std::string::npos) {
    const fs::path path(command);
    return is_executable_file(path.is_absolute() ? path : cwd / path);
  }
  const char* env_path = std::getenv("PATH");
  const std::string_view search = env_path != nullptr ? env_path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= search.size()) {
    std::size_t colon = search.find(':', start);
    if (colon == std::string_view::npos) colon = search.size();
    const std::string_view dir = search.substr(start, colon - start);
    if (!dir.empty() && is_executable_file(fs::path(dir) / command)) return true;
    start = colon + 1;
  }
  return false;
}

// Listeners that cannot both be bound: same port and the same or a wildcard address.
// Why `dir` cannot be a directory wakegate creates (if missing) and writes in; "" if it can. Looks
// only: the deepest part of the path that exists must be a directory we may write in.
std::string storage_problem(const fs::path& dir) {
  std::error_code ec;
  fs::path p = dir;
  while (!fs::exists(p, ec) && p.has_relative_path()) p = p.parent_path();
  if (!fs::is_directory(p, ec)) return p.string() + " is not a directory";
  if (::access(p.c_str(), W_OK | X_OK) != 0) return "cannot write in " + p.string() + ": " + std::strerror(errno);
  return {};
}

// One spelling per address: "localhost" and an IPv4-mapped IPv6 address ("::ffff:127.0.0.1") as
// the IPv4 address, IPv6 in its shortest form. A host that is no address is left as it is.
std::string canonical_host(const std::string& host) {
  if (host == "localhost") return "127.0.0.1";
  unsigned char v6[16];
  if (::inet_pton(AF_INET6, host.c_str(), v6) != 1) return host;
  char text[INET6_ADDRSTRLEN];
  static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(mapped, mapped + 12, v6)) return ::inet_ntop(AF_INET, v6 + 12, text, sizeof text);
  return ::inet_ntop(AF_INET6, v6, text, sizeof text);
}

bool listeners_overlap(const endpoint& a, const endpoint& b) {
  if (a.port == 0 || a.port != b.port) return false;
  const std::string x = canonical_host(a.host), y = canonical_host(b.host);
  auto wildcard = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
  return x == y || wildcard(x) || wildcard(y);
}

// One key of a mapping, after duplicates were dropped.
struct entry {
  std::string key;
  YAML::Node value;
  position key_pos;
  position value_pos;  // the key's for null values: yaml-cpp marks an empty value at the next token
};

struct list_item {
  std::string text;
  position pos;
};

// Where the keys checked against each other were set in one settings layer (`defaults:` or an
// app): min_instances <= max_instances, panic_window <= stable_window, and target_concurrency
// against max_concurrency.
struct layer_keys {
  std::optional<position> min_pos;
  std::optional<position> max_pos;
  bool minmax_invalid = false;  // one of them is set but was rejected: no cross check
  bool minmax_set() const { return min_pos || max_pos; }
  std::optional<position> stable_pos;
  std::optional<position> panic_pos;
  bool windows_invalid = false;
  std::optional<position> target_pos;           // target_concurrency
  std::optional<position> concurrency_max_pos;  // max_concurrency
};

// "6s", "500ms": a duration as the config spells it.
std::string duration_text(duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

class loader {
 public:
  loader(std::string file, fs::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {
    cfg_.file = file_;
  }

  load_result run(std::string_view yaml) {
    yaml_ = yaml;
    // YAML allows no control characters but TAB, LF and CR: refused before yaml-cpp sees them.
    // So is a line that starts with ',': yaml-cpp 0.7 never returns on ",a" (found by fuzzing).
    int line = 1, column = 1;
    bool line_start = true;  // only blanks so far on this line
    for (unsigned char c : yaml) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "%02X", c);
        error({line, column}, std::string("control character U+00") + hex + " is not allowed in YAML");
        return finish();
      }
      if (c == ',' && line_start) {
        error({line, column}, "a line may not start with ',' (put it at the end of the previous line)");
        return finish();
      }
      if (c != ' ' && c != '\t') line_start = false;
      if (c == '\n') {
        ++line;
        column = 1;
        line_start = true;
      } else {
        ++column;  // columns count bytes, as yaml-cpp's marks do
      }
    }
    try {
      const std::string text(yaml);
      if (!check_documents(text)) return finish();
      YAML::Node root = YAML::Load(text);  // the first document only
      if (root.IsNull()) {
        error({1, 1}, "configuration is empty");
      } else {
        parse_root(root);
      }
    } catch (const YAML::Exception& e) {
      std::string message = "invalid YAML: " + e.msg;
      if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
        message = "invalid YAML: nested too deeply (yaml-cpp's limit is 2000 levels)";  // its own message says "bad file"
      } else if (e.msg == YAML::ErrorMsg::UNKNOWN_ANCHOR) {
        message += " (values starting with '*' must be quoted, e.g. \"*.example.com\")";
      }
      error(position_of(e.mark), std::move(message));
    } catch (const std::exception& e) {
      error({1, 1}, std::string("internal error: ") + e.what());
    }
    return finish();
  }

 private:
  // Walks the documents with yaml-cpp's event parser: a document after the first may only be
  // empty. yaml-cpp 0.7's own LoadAll never returns when a top-level value is followed by a ','
  // (`!tag,`, `"x" ,`, `[a] ,`, found by fuzzing): its parser reports an empty document there
  // without consuming the ',', again and again. This walk stops at the first document that
  // starts where the one before it did. False after reporting.
  bool check_documents(const std::string& text) {
    struct walker : YAML::EventHandler {
      YAML::Mark start, first;
      bool content = false;
      void OnDocumentStart(const YAML::Mark& m) override {
        start = m;
        content = false;
      }
      void OnDocumentEnd() override {}
      void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
      void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { seen(m); }
      void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t, const std::string&) override { seen(m); }
      void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        seen(m);
      }
      void OnSequenceEnd() override {}
      void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
        seen(m);
      }
      void OnMapEnd() override {}
      void seen(const YAML::Mark& m) {
        if (!content) first = m;
        content = true;
      }
    } w;
    std::istringstream in(text);
    YAML::Parser parser(in);
    int previous_pos = -1;
    for (int index = 0; parser.HandleNextDocument(w); ++index) {
      if (index > 0 && w.start.pos == previous_pos) {
        const auto at = static_cast<std::size_t>(w.start.pos);
        const char c = at < text.size() ? text[at] : ' ';
        error(position_of(w.start), c == ','
                                        ? std::string("unexpected ',' after the top-level value")
                                        : std::string("invalid YAML: cannot parse past here"));
        return false;
      }
      previous_pos = w.start.pos;
      if (index > 0 && w.content) {
        error(position_of(w.first), "only one YAML document is allowed");
        return false;
      }
    }
    return true;
  }

  void error(position pos, std::string message) {
    errors_.push_back({file_, pos.line, pos.column, std::move(message)});
  }
  void warn(position pos, std::string message) {
    warnings_.push_back({file_, pos.line, pos.column, std::move(message)});
  }

  load_result finish() {
    auto by_position = [](const diagnostic& a, const diagnostic& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    };
    std::stable_sort(errors_.begin(), errors_.end(), by_position);
    std::stable_sort(warnings_.begin(), warnings_.end(), by_position);
    load_result result;
    if (errors_.empty()) result.cfg = std::move(cfg_);
    result.errors = std::move(errors_);
    result.warnings = std::move(warnings_);
    return result;
  }

  // Where a list item is. yaml-cpp marks a `~` or `null` item at that value, but an empty one (a
  // `-` and nothing else) at the token after it: the next item, the next key or the end of the
  // file. Such an item is reported at its `-`: the last character before that token, blanks and
  // comments aside, when it is on an earlier line (on the same line, the mark is the item's own).
  position item_position(const YAML::Node& item) const {
    const YAML::Mark mark = item.Mark();
    if (!item.IsNull() || mark.pos < 0 || static_cast<std::size_t>(mark.pos) > yaml_.size())
      return position_of(mark);
    std::size_t end = static_cast<std::size_t>(mark.pos);  // the text before it on its line, then whole lines
    for (int line = mark.line; line >= 0; --line) {
      const std::size_t start = end == 0 ? 0 : yaml_.rfind('\n', end - 1) + 1;  // npos + 1 == 0
      std::string_view text = yaml_.substr(start, end - start);
      for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t')) {
          text = text.substr(0, i);
          break;
        }
      }
      while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
        text.remove_suffix(1);
      if (!text.empty()) {
        if (text.back() == '-' && line < mark.line) return {line + 1, static_cast<int>(text.size())};
        break;
      }
      if (start == 0) break;
      end = start - 1;
    }
    return position_of(mark);
  }

  // The keys of a mapping (null counts as empty); nullopt after reporting when it is no mapping.
  std::optional<std::vector<entry>> entries_of(const YAML::Node& node, position pos) {
    if (node.IsNull()) return std::vector<entry>{};
    if (!node.IsMap()) {
      error(pos, "expected a mapping");
      return std::nullopt;
    }
    std::vector<entry> entries;
    std::map<std::string, int> first_line;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const position key_pos = position_of(it->first.Mark());
      if (!it->first.IsScalar()) {
        error(key_pos, "expected a key name");
        continue;
      }
      const std::string& key = it->first.Scalar();
      const auto [first, inserted] = first_line.emplace(key, key_pos.line);
      if (!inserted) {
        error(key_pos, "duplicate key " + in_quotes(key) + " (first at line " +
                           std::to_string(first->second) + ")");
        continue;
      }
      const YAML::Node value = it->second;
      entries.push_back(
          {key, value, key_pos, value.IsNull() ? key_pos : position_of(value.Mark())});
    }
    return entries;
  }

  static const entry* find(const std::vector<entry>& entries, std::string_view key) {
    for (const entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }

  void unknown_key(const entry& e, std::span<const std::string_view> known,
                   const std::string& context) {
    error(e.key_pos, "unknown key " + in_quotes(e.key) + (context.empty() ? "" : " in " + context) +
                         suggestion(e.key, known));
  }

  std::optional<std::string> read_string(const entry& e) {
    if (!e.value.IsScalar()) {
      error(e.value_pos, "expected a string");
      return std::nullopt;
    }
    return e.value.Scalar();
  }

  // Plain (unquoted) decimal integers only.
  std::optional<int> read_int(const entry& e, int min, int max = INT_MAX) {
    const std::string text = e.value.IsScalar() && e.value.Tag() != "!" ? e.value.Scalar() : "";
    std::string_view digits = text;
    const bool negative = digits.starts_with('-');
    if (negative || digits.starts_with('+')) digits.remove_prefix(1);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit)) {
      error(e.value_pos, "expected an integer");
      return std::nullopt;
    }
    long long value = 0;
    if (std::from_chars(digits.data(), digits.data() + digits.size(), value).ec != std::errc{}) {
      value = LLONG_MAX;  // out of range either way
    }
    if (negative) value = -value;
    if (value < min || value > max) {
      if (max != INT_MAX) {
        error(e.value_pos,
              e.key + " must be between " + std::to_string(min) + " and " + std::to_string(max));
      } else if (value < min) {
        error(e.value_pos, e.key + " must be at least " + std::to_string(min));
      } else {
        error(e.value_pos, e.key + " must be at most " + std::to_string(max));
      }
      return std::nullopt;
    }
    return static_cast<int>(value);
  }

  std::optional<bool> read_bool(const entry& e) {
    if (e.value.IsScalar() && e.value.Tag() != "!") {
      const std::string& text = e.value.Scalar();
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
    }
    error(e.value_pos, "expected true or false");
    return std::nullopt;
  }

  static constexpr duration max_window = std::chrono::hours(1);

  std::optional<duration> read_duration(const entry& e, bool positive) {
    std::optional<duration> value;
    if (e.value.IsScalar()) value = parse_duration(e.value.Scalar());
    if (!value) {
      error(e.value_pos, std::string(duration_expected));
      return std::nullopt;
    }
    if (*value > max_duration) {
      error(e.value_pos, "duration too large (at most " +
                             std::to_string(std::chrono::floor<std::chrono::days>(max_duration).count()) + "d)");
      return std::nullopt;
    }
    if (positive && value->count() == 0) {
      error(e.value_pos, e.key + " must be greater than 0");
      return std::nullopt;
    }
    return value;
  }

  std::optional<endpoint> read_endpoint(const entry& e) {
    std::optional<endpoint> value;
    if (e.value.IsScalar()) value = parse_endpoint(e.value.Scalar());
    if (!value) error(e.value_pos, "expected an address host:port");
    return value;
  }

  // A list of strings (null counts as empty); nullopt after reporting a wrong type.
  std::optional<std::vector<list_item>> read_string_list(const entry& e) {
    if (e.value.IsNull()) return std::vector<list_item>{};
    if (!e.value.IsSequence()) {
      error(e.value_pos, "expected a list of strings");
      return std::nullopt;
    }
    std::vector<list_item> items;
    bool ok = true;
    for (const YAML::Node& item : e.value) {
      if (!item.IsScalar()) {
        error(item_position(item), "expected a list of strings");
        ok = false;
        continue;
      }
      items.push_back({item.Scalar(), position_of(item.Mark())});
    }
    if (!ok) return std::nullopt;
    return items;
  }

  void parse_root(const YAML::Node& root) {
    const position root_pos = position_of(root.Mark());
    const auto entries = entries_of(root, root_pos);
    if (!entries) return;
    app_settings defaults;
    const entry* apps = nullptr;
    const entry* tls = nullptr;
    for (const entry& e : *entries) {
      if (e.key == "tls") {
        tls = &e;  // after `apps:`: coverage of app hosts is checked
      } else if (e.key == "listen") {
        parse_listen(e);
      } else if (e.key == "shutdown_timeout") {
        if (auto value = read_duration(e, false)) cfg_.shutdown_timeout = *value;
      } else if (e.key == "scale_interval") {
        if (auto value = read_duration(e, true)) cfg_.scale_interval = *value;
      } else if (e.key == "workers") {
        if (auto value = read_int(e, 0, 64)) cfg_.workers = *value;
      } else if (e.key == "access_log") {
        if (auto value = read_bool(e)) cfg_.access_log = *value;
      } else if (e.key == "limits") {
        parse_limits(e);
      } else if (e.key == "admin") {
        parse_admin(e);
      } else if (e.key == "defaults") {
        parse_defaults(e, defaults);
      } else if (e.key == "apps") {
        apps = &e;  // after `defaults:`, wherever that is in the file
      } else if (std::find(listen_keys.begin(), listen_keys.end(), e.key) != listen_keys.end()) {
        error(e.key_pos, "unknown key " + in_quotes(e.key) + " (did you mean listen." + e.key + "?)");
      } else {
        unknown_key(e, top_keys, "");
      }
    }
    const std::string& a = cfg_.admin.host;
    bool loopback = a == "localhost" || a == "::1" || a.starts_with("127.");
    if (admin_address_pos_ && !loopback && cfg_.admin_token.empty())
      warn(*admin_address_pos_, "admin listener " + cfg_.admin.text() +
                                    " is not on loopback and admin.token is not set: /status is open to that network");
    if (apps == nullptr) {
      error(root_pos, "missing required key 'apps'");
    } else {
      parse_apps(*apps, defaults);
    }
    parse_tls(tls, root_pos);
  }

  // A byte count: plain digits, or digits with KiB, MiB or GiB.
  std::optional<std::uint64_t> read_size(const entry& e, std::uint64_t min, std::uint64_t max) {
    std::optional<std::uint64_t> value;
    if (e.value.IsScalar() && e.value.Tag() != "!") value = parse_size(e.value.Scalar());
    if (!value) {
      error(e.value_pos, std::string(size_expected));
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      error(e.value_pos, e.key + " must be between " + std::to_string(min) + " and " + std::to_string(max) + " bytes");
      return std::nullopt;
    }
    return value;
  }

  void parse_limits(const entry& limits) {
    const auto entries = entries_of(limits.value, limits.value_pos);
    if (!entries) return;
    limits_config& l = cfg_.limits;
    for (const entry& e : *entries) {
      const std::string& k = e.key;
      if (k == "max_header_bytes") {
        // At least room for a request line and a few headers; at most what a parser handles.
        if (auto v = read_size(e, 1024, 1024 * 1024)) l.max_header_bytes = static_cast<std::size_t>(*v);
      } else if (k == "max_headers") {
        if (auto v = read_int(e, 1, 10000)) l.max_header_count = static_cast<std::size_t>(*v);
      } else if (k == "max_connections") {
        if (auto v = read_int(e, 1, 1000000)) l.max_connections = static_cast<std::size_t>(*v);
      } else if (k == "max_pipelined") {
        if (auto v = read_int(e, 1, 1000)) l.max_pipelined = static_cast<std::size_t>(*v);
      } else if (k == "upstream_idle_per_instance") {
        if (auto v = read_int(e, 0, 100000)) l.upstream_idle_per_instance = static_cast<std::size_t>(*v);
      } else if (k == "header_timeout") {
        if (auto v = read_duration(e, true)) l.header_timeout = *v;
      } else if (k == "idle_timeout") {
        if (auto v = read_duration(e, true)) l.idle_timeout = *v;
      } else if (k == "io_timeout") {
        if (auto v = read_duration(e, true)) l.io_timeout = *v;
      } else if (k == "upstream_connect_timeout") {
        if (auto v = read_duration(e, true)) l.upstream_connect_timeout = *v;
      } else if (k == "response_header_timeout") {
        if (auto v = read_duration(e, true)) l.upstream_header_timeout = *v;
      } else if (k == "upstream_idle_timeout") {
        if (auto v = read_duration(e, true)) l.upstream_idle_timeout = *v;
      } else {
        unknown_key(e, limits_keys, "limits");
      }
    }
  }

  void parse_admin(const entry& admin) {
    if (admin.value.IsScalar()) {  // an address: listen.admin one level too high
      error(admin.value_pos, "expected a mapping (did you mean listen.admin?)");
      return;
    }
    const auto entries = entries_of(admin.value, admin.value_pos);
    if (!entries) return;
    for (const entry& e : *entries) {
      if (e.key == "token") {
        auto value = read_string(e);
        if (!value) continue;
        // Sent as `Authorization: Bearer <token>`: visible ASCII only, and long enough to guess badly.
        bool printable = std::all_of(value->begin(), value->end(), [](char c) { return c > 0x20 && c < 0x7f; });
        if (!printable || value->size() < 16) {
          error(e.value_pos, "admin token must be at least 16 visible ASCII characters (no spaces)");
          continue;
        }
        cfg_.admin_token = *value;
      } else {
        unknown_key(e, admin_keys, "admin");
      }
    }
  }

  void parse_listen(const entry& listen) {
    const auto entries = entries_of(listen.value, listen.value_pos);
    if (!entries) return;
    std::optional<position> http_pos;
    std::optional<position> admin_pos;
    bool ok = true;
    for (const entry& e : *entries) {
      if (e.key == "http" || e.key == "admin") {
        const auto value = read_endpoint(e);
        ok = ok && value.has_value();
        if (!value) continue;
        (e.key == "http" ? cfg_.http : cfg_.admin) = *value;
        (e.key == "http" ? http_pos : admin_pos) = e.value_pos;
        if (e.key == "admin") admin_address_pos_ = e.value_pos;
      } else if (e.key == "https") {
        if (auto value = read_endpoint(e)) {
          cfg_.https = *value;
          https_pos_ = e.value_pos;
        }
      } else {
        unknown_key(e, listen_keys, "listen");
      }
    }
    if (ok && cfg_.https && https_pos_ &&
        (listeners_overlap(*cfg_.https, cfg_.http) || listeners_overlap(*cfg_.https, cfg_.admin))) {
      error(*https_pos_, "https address " + cfg_.https->text() + " must differ from the http and admin addresses");
    }
    if (ok && listeners_overlap(cfg_.http, cfg_.admin)) {
      error(admin_pos  ? *admin_pos
            : http_pos ? *http_pos
                       : listen.key_pos,
            "admin address " + cfg_.admin.text() + " must differ from http address " +
                cfg_.http.text());
    }
  }

  void parse_defaults(const entry& defaults_entry, app_settings& defaults) {
    const auto entries = entries_of(defaults_entry.value, defaults_entry.value_pos);
    if (!entries) return;
    layer_keys keys;
    for (const entry& e : *entries) {
      if (!apply_setting(e, defaults, keys, "defaults"))
        unknown_key(e, settings_keys, "defaults");
    }
    if (!keys.minmax_invalid && defaults.min_instances > defaults.max_instances) {
      error(keys.min_pos   ? *keys.min_pos
            : keys.max_pos ? *keys.max_pos
                           : defaults_entry.key_pos,
            minmax_message(defaults));
    }
    defaults_panic_set_ = keys.panic_pos.has_value();
    check_windows(defaults, keys, false);
    check_concurrency(defaults, keys);
  }

  // Knative caps the target at containerConcurrency, and so does the scaler. Warned where this
  // layer sets either key (an inherited conflict was warned about at `defaults:`).
  void check_concurrency(const app_settings& s, const layer_keys& keys) {
    if (s.max_concurrency == 0 || s.target_concurrency <= s.max_concurrency) return;
    if (!keys.target_pos && !keys.concurrency_max_pos) return;
    const std::string max = std::to_string(s.max_concurrency);
    warn(keys.target_pos ? *keys.target_pos : *keys.concurrency_max_pos,
         "target_concurrency " + std::to_string(s.target_concurrency) + " is above max_concurrency " + max +
             ": the scaler aims at " + max + " per instance");
  }

  // panic_window <= stable_window. One that nobody set is 6s, or stable_window if that is
  // shorter; a conflict is reported where this layer set either key (an inherited one was
  // reported at `defaults:`).
  void check_windows(app_settings& s, const layer_keys& keys, bool panic_inherited) {
    if (keys.windows_invalid) return;
    if (!keys.panic_pos && !panic_inherited) {
      s.panic_window = std::min(app_settings{}.panic_window, s.stable_window);
      return;
    }
    if (s.panic_window <= s.stable_window || (!keys.panic_pos && !keys.stable_pos)) return;
    error(keys.panic_pos ? *keys.panic_pos : *keys.stable_pos,
          "panic_window (" + duration_text(s.panic_window) + ") is longer than stable_window (" +
              duration_text(s.stable_window) + ")");
  }

  static std::string minmax_message(const app_settings& s) {
    return "min_instances (" + std::to_string(s.min_instances) +
           ") is greater than max_instances (" + std::to_string(s.max_instances) + ")";
  }

  // One `app_settings` key onto `s`; false when `e` is not such a key.
  bool apply_setting(const entry& e, app_settings& s, layer_keys& keys,
                     const std::string& context) {
    const std::string& k = e.key;
    if (k == "min_instances" || k == "max_instances") {
      const bool is_min = k == "min_instances";
      (is_min ? keys.min_pos : keys.max_pos) = e.key_pos;
      const auto value = read_int(e, is_min ? 0 : 1);
      if (!value)
        keys.minmax_invalid = true;
      else
        (is_min ? s.min_instances : s.max_instances) = *value;
    } else if (k == "target_concurrency" || k == "max_concurrency") {
      const bool target = k == "target_concurrency";
      if (auto value = read_int(e, target ? 1 : 0)) {
        (target ? s.target_concurrency : s.max_concurrency) = *value;
        (target ? keys.target_pos : keys.concurrency_max_pos) = e.key_pos;
      }
    } else if (k == "queue_size") {
      if (auto value = read_int(e, 0)) s.queue_size = *value;
    } else if (k == "scale_to_zero_after") {
      if (auto value = read_duration(e, false)) s.scale_to_zero_after = *value;
    } else if (k == "scale_down_delay") {
      if (auto value = read_duration(e, false)) s.scale_down_delay = *value;
    } else if (k == "stable_window" || k == "panic_window") {
      const bool stable = k == "stable_window";
      (stable ? keys.stable_pos : keys.panic_pos) = e.key_pos;
      auto value = read_duration(e, true);
      // The scaler keeps a bucket per second of the longest window (found by black-box testing:
      // 365d took 747 MB per app, and minutes of control thread). Knative's limit too.
      if (value && *value > max_window) {
        error(e.value_pos, k + " must be at most 1h");
        value.reset();
      }
      if (value)
        (stable ? s.stable_window : s.panic_window) = *value;
      else
        keys.windows_invalid = true;
    } else if (k == "queue_timeout") {
      if (auto value = read_duration(e, true)) s.queue_timeout = *value;
    } else if (k == "startup_timeout") {
      if (auto value = read_duration(e, true)) s.startup_timeout = *value;
    } else if (k == "readiness") {
      parse_readiness(e, s.readiness, "readiness of " + context);
    } else if (k == "max_body") {
      if (auto value = read_size(e, 0, std::uint64_t{1} << 50)) s.max_body = *value;
    } else if (k == "request_timeout") {
      if (auto value = read_duration(e, false)) s.request_timeout = *value;
    } else {
      return apply_scaling_setting(e, s, context);
    }
    return true;
  }
  // ---- Knative-class policy keys (scaler/policy.hpp) ----

  bool apply_scaling_setting(const entry& e, app_settings& s, const std::string& context) {
    const std::string& k = e.key;
    if (k == "metric") {
      const std::string text = e.value.IsScalar() ? e.value.Scalar() : "";
      if (text == "concurrency") s.metric = scale_metric::concurrency;
      else if (text == "rps") s.metric = scale_metric::rps;
      else error(e.value_pos, "metric must be 'concurrency' or 'rps'");
    } else if (k == "target_rps") {
      if (auto value = read_int(e, 1)) s.target_rps = *value;
    } else if (k == "initial_instances") {
      if (auto value = read_int(e, 0)) s.initial_instances = *value;
    } else if (k == "panic_threshold") {
      if (auto value = read_percent(e, 110, 1000)) s.panic_threshold = *value / 100.0;
    } else if (k == "target_utilization") {
      if (auto value = read_percent(e, 1, 100)) s.target_utilization = *value / 100.0;
    } else if (k == "max_scale_up_rate" || k == "max_scale_down_rate") {
      if (auto value = read_rate(e)) (k == "max_scale_up_rate" ? s.max_scale_up_rate : s.max_scale_down_rate) = *value;
    } else if (k == "keep_warm") {
      const std::string text = e.value.IsScalar() ? e.value.Scalar() : "";
      if (text == "auto") s.keep_warm_auto = true;
      else if (text == "off") s.keep_warm_auto = false;
      else error(e.value_pos, "keep_warm must be 'auto' or 'off'");
    } else if (k == "schedule") {
      parse_schedule(e, s.schedule, "schedule of " + context);
    } else {
      return false;
    }
    return true;
  }

  // "70%": an integer percentage within [min, max].
  std::optional<int> read_percent(const entry& e, int min, int max) {
    std::string text = e.value.IsScalar() ? e.value.Scalar() : "";
    int value = 0;
    const bool ok = text.size() >= 2 && text.back() == '%' &&
                    std::all_of(text.begin(), text.end() - 1, is_digit) && text.size() <= 6 &&
                    std::from_chars(text.data(), text.data() + text.size() - 1, value).ec == std::errc{};
    if (!ok) {
      error(e.value_pos, "expected a percentage like 70%");
      return std::nullopt;
    }
    if (value < min || value > max) {
      error(e.value_pos, e.key + " must be between " + std::to_string(min) + "% and " + std::to_string(max) + "%");
      return std::nullopt;
    }
    return value;
  }

  // A decimal number greater than 1 (a rate of 1 would forbid scaling at all), at most 1000000.
  std::optional<double> read_rate(const entry& e) {
    const std::string text = e.value.IsScalar() && e.value.Tag() != "!" ? e.value.Scalar() : "";
    double value = 0;
    const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return is_digit(c) || c == '.'; });
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!digits || ec != std::errc{} || end != text.data() + text.size()) {
      error(e.value_pos, "expected a number like 2 or 1.5");
      return std::nullopt;
    }
    if (!(value > 1.0) || value > 1e6) {
      error(e.value_pos, e.key + " must be greater than 1 and at most 1000000");
      return std::nullopt;
    }
    return value;
  }

  void parse_schedule(const entry& schedule, schedule_config& out, const std::string& context) {
    const auto entries = entries_of(schedule.value, schedule.value_pos);
    if (!entries) return;
    schedule_config sc;  // a schedule replaces the inherited one as a whole
    for (const entry& e : *entries) {
      if (e.key == "time_zone") {
        const auto name = read_string(e);
        if (!name) continue;
        std::string why;
        if (!time_zone::load(*name, why)) {
          error(e.value_pos, why);
          continue;
        }
        sc.time_zone = *name;
      } else if (e.key == "ranges") {
        if (!e.value.IsSequence()) {
          error(e.value_pos, "expected a list of ranges");
          continue;
        }
        for (const YAML::Node& item : e.value) {
          const position item_pos = item_position(item);
          if (!item.IsMap()) {
            error(item_pos, "expected a mapping {days, from, to, min_instances}");
            continue;
          }
          if (auto r = parse_range(item, item_pos, context)) sc.ranges.push_back(*r);
        }
      } else {
        unknown_key(e, schedule_keys, context);
      }
    }
    out = std::move(sc);
  }

  std::optional<schedule_range> parse_range(const YAML::Node& node, position pos, const std::string& context) {
    const auto entries = entries_of(node, pos);
    if (!entries) return std::nullopt;
    schedule_range r;
    bool ok = true;
    std::optional<position> to_pos;
    for (const entry& e : *entries) {
      if (e.key == "days") {
        auto days = read_days(e);
        ok = ok && days.has_value();
        if (days) r.days = *days;
      } else if (e.key == "from" || e.key == "to") {
        auto minute = read_clock(e, e.key == "to");
        ok = ok && minute.has_value();
        if (minute) (e.key == "from" ? r.from_minute : r.to_minute) = *minute;
        if (e.key == "to") to_pos = e.value_pos;
      } else if (e.key == "min_instances") {
        auto value = read_int(e, 0);
        ok = ok && value.has_value();
        if (value) r.min_instances = *value;
      } else {
        unknown_key(e, range_keys, "range of " + context);
        ok = false;
      }
    }
    for (std::string_view required : {"days", "min_instances"}) {
      if (!find(*entries, required)) {
        error(pos, "missing required key " + in_quotes(required) + " in range of " + context);
        ok = false;
      }
    }
    if (ok && r.from_minute >= r.to_minute) {
      error(to_pos ? *to_pos : pos, "range must end after it starts (split ranges that cross midnight)");
      ok = false;
    }
    if (!ok) return std::nullopt;
    return r;
  }

  // "mon-fri", "sat,sun", "mon,wed-fri", "daily".
  std::optional<unsigned> read_days(const entry& e) {
    const std::string text = e.value.IsScalar() ? lower(e.value.Scalar()) : "";
    auto day = [](std::string_view name) -> int {
      for (std::size_t i = 0; i < day_names.size(); ++i)
        if (day_names[i] == name) return static_cast<int>(i);
      return -1;
    };
    unsigned days = 0;
    bool ok = !text.empty();
    if (text == "daily") return 0x7fu;
    std::string_view rest = text;
    while (ok && !rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view part = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      const auto dash = part.find('-');
      const int a = day(part.substr(0, dash));
      const int b = dash == std::string_view::npos ? a : day(part.substr(dash + 1));
      if (a < 0 || b < 0 || b < a) {
        ok = false;
        break;
      }
      for (int d = a; d <= b; ++d) days |= 1u << d;
    }
    if (!ok) {
      error(e.value_pos, "expected days like mon-fri, sat,sun or daily");
      return std::nullopt;
    }
    return days;
  }

  // "HH:MM" (24:00 allowed for `to`) -> minutes since midnight.
  std::optional<int> read_clock(const entry& e, bool allow_end_of_day) {
    const std::string text = e.value.IsScalar() ? e.value.Scalar() : "";
    const bool shape = text.size() == 5 && is_digit(text[0]) && is_digit(text[1]) && text[2] == ':' &&
                       is_digit(text[3]) && is_digit(text[4]);
    const int h = shape ? (text[0] - '0') * 10 + (text[1] - '0') : -1;
    const int m = shape ? (text[3] - '0') * 10 + (text[4] - '0') : -1;
    if (!shape || m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_end_of_day))) {
      error(e.value_pos, allow_end_of_day ? "expected a time of day HH:MM from 00:00 to 24:00"
                                          : "expected a time of day HH:MM from 00:00 to 23:59");
      return std::nullopt;
    }
    return h * 60 + m;
  }

  // Only the keys present override `r`, so an app can change one field of the defaults' readiness.
  void parse_readiness(const entry& readiness, readiness_config& r, const std::string& context) {
    const auto entries = entries_of(readiness.value, readiness.value_pos);
    if (!entries) return;
    for (const entry& e : *entries) {
      if (e.key == "path") {
        const auto value = read_string(e);
        if (!value) continue;
        if (!value->starts_with('/')) {
          error(e.value_pos, "readiness path must start with '/'");
          continue;
        }
        // It goes into the probe's request line as it is (found by black-box testing: CR LF
        // there added header lines, a space made a request the instance answered 400).
        const auto bad = std::find_if(value->begin(), value->end(), [](char c) {
          return c <= 0x20 || c >= 0x7f || std::string_view("\"#<>\\^`{|}").find(c) != std::string_view::npos;
        });
        if (bad != value->end()) {
          error(e.value_pos, "readiness path must be a URL path and query: no spaces, control characters, '#' or " +
                                 std::string("\"<>\\^`{|}; percent-encode them (%20)"));
          continue;
        }
        r.path = *value;
      } else if (e.key == "interval") {
        if (auto value = read_duration(e, true)) r.interval = *value;
      } else if (e.key == "timeout") {
        if (auto value = read_duration(e, true)) r.timeout = *value;
      } else {
        unknown_key(e, readiness_keys, context);
      }
    }
  }

  void parse_apps(const entry& apps, const app_settings& defaults) {
    if (!apps.value.IsNull() && !apps.value.IsSequence()) {
      error(apps.value_pos, "expected a list of apps");
      return;
    }
    if (apps.value.size() == 0) {
      warn(apps.key_pos, "no apps configured");
      return;
    }
    std::size_t index = 0;
    for (const YAML::Node& item : apps.value) {
      ++index;
      if (!item.IsMap()) {
        error(item_position(item), "expected a mapping");
        continue;
      }
      parse_app(item, index, defaults);
    }
  }

  void parse_app(const YAML::Node& node, std::size_t index, const app_settings& defaults) {
    app_config app;
    app.pos = position_of(node.Mark());
    app.settings = defaults;
    const auto entries = entries_of(node, app.pos);
    if (!entries) return;

    // The name first: every other message about this app names it.
    std::string context = "app #" + std::to_string(index);
    if (const entry* name = find(*entries, "name")) {
      if (auto value = read_string(*name)) {
        app.name = *value;
        context = "app " + in_quotes(app.name);
        check_app_name(app.name, name->value_pos);
      }
    } else {
      error(app.pos, "missing required key 'name' in " + context);
    }

    layer_keys keys;
    bool has_hosts = false;
    bool has_backend = false;
    for (const entry& e : *entries) {
      if (e.key == "name") continue;
      if (e.key == "hosts") {
        has_hosts = true;
        parse_hosts(e, app, context);
      } else if (e.key == "backend") {
        has_backend = true;
        parse_backend(e, app, context);
      } else if (e.key == "hsts") {
        if (auto value = read_duration(e, false)) app.hsts = *value;
      } else if (!apply_setting(e, app.settings, keys, context)) {
        unknown_key(e, app_keys, context);
      }
    }
    if (!has_hosts) error(app.pos, "missing required key 'hosts' in " + context);
    if (!has_backend) error(app.pos, "missing required key 'backend' in " + context);
    // An inherited conflict was reported at `defaults:` already.
    if (keys.minmax_set() && !keys.minmax_invalid &&
        app.settings.min_instances > app.settings.max_instances) {
      error(keys.min_pos ? *keys.min_pos : *keys.max_pos, minmax_message(app.settings));
    }
    check_windows(app.settings, keys, defaults_panic_set_);
    check_concurrency(app.settings, keys);
    cfg_.apps.push_back(std::move(app));
  }

  void check_app_name(const std::string& name, position pos) {
    if (!valid_app_name(name)) {
      error(pos, "invalid app name " + in_quotes(name) +
                     " (lower-case letters, digits and '-', at most 63 characters, starting and "
                     "ending with a letter or digit)");
      return;
    }
    const auto [first, inserted] = app_names_.emplace(name, pos.line);
    if (!inserted) {
      error(pos, "duplicate app name " + in_quotes(name) + " (first at line " +
                     std::to_string(first->second) + ")");
    }
  }

  void parse_hosts(const entry& e, app_config& app, const std::string& context) {
    const auto items = read_string_list(e);
    if (!items) return;
    if (items->empty()) {
      error(e.value_pos, "hosts must not be empty");
      return;
    }
    for (const list_item& item : *items) {
      const std::string host = lower(item.text);
      if (host.empty()) {
        error(item.pos, "host must not be empty");
      } else if (host.find(':') != std::string::npos) {
        error(item.pos, "host " + in_quotes(item.text) + " must not include a port");
      } else if (const std::string_view why = host_problem(host); !why.empty()) {
        error(item.pos, "invalid host " + in_quotes(item.text) + " (" + std::string(why) + ")");
      } else if (const auto [first, inserted] =
                     hosts_.emplace(host, std::pair(context, item.pos));
                 !inserted) {
        error(item.pos, "host " + in_quotes(host) + " is already used by " + first->second.first +
                            " (line " + std::to_string(first->second.second.line) + ")");
      } else {
        app.hosts.push_back(host);
      }
    }
  }

  void parse_backend(const entry& backend_entry, app_config& app, const std::string& context) {
    const auto entries = entries_of(backend_entry.value, backend_entry.value_pos);
    if (!entries) return;
    if (entries->empty()) {
      error(backend_entry.key_pos, "missing backend kind (known: process, docker)");
      return;
    }
    const entry* kind = nullptr;
    for (const entry& e : *entries) {
      if (e.key != "process" && e.key != "docker") {
        error(e.key_pos, "unknown backend " + in_quotes(e.key) + " (known: process, docker)");
        continue;
      }
      if (kind != nullptr) {
        error(e.key_pos, "only one backend kind per app (" + in_quotes(kind->key) + " is set already)");
        continue;
      }
      kind = &e;
      if (e.key == "process") {
        if (auto process = parse_process(e, "process backend of " + context))
          app.backend = std::move(*process);
      } else if (auto docker = parse_docker(e, "docker backend of " + context)) {
        app.backend = std::move(*docker);
      }
    }
  }

  std::optional<docker_backend> parse_docker(const entry& docker_entry, const std::string& context) {
    const auto entries = entries_of(docker_entry.value, docker_entry.value_pos);
    if (!entries) return std::nullopt;
    docker_backend d;
    bool ok = true;
    bool has_image = false;
    bool has_port = false;
    for (const entry& e : *entries) {
      if (e.key == "image") {
        has_image = true;
        const auto value = read_string(e);
        if (value && (value->empty() || value->find_first_of(" \t\n/") == 0 ||
                      value->find_first_of(" \t\n") != std::string::npos)) {
          error(e.value_pos, "invalid image " + in_quotes(*value) + " (expected a reference like nginx:1.25)");
          ok = false;
        } else if (value) {
          d.image = *value;
        } else {
          ok = false;
        }
      } else if (e.key == "port") {
        has_port = true;
        const auto value = read_int(e, 1, 65535);
        if (value) d.port = static_cast<std::uint16_t>(*value);
        ok = ok && value.has_value();
      } else if (e.key == "command") {
        const auto items = read_string_list(e);
        if (items && items->empty()) {
          error(e.value_pos, "command must not be empty (leave it out to run the image's own command)");
          ok = false;
        } else if (items) {
          for (const list_item& item : *items) d.command.push_back(item.text);
        } else {
          ok = false;
        }
      } else if (e.key == "env") {
        ok = parse_env_into(e, d.env) && ok;
      } else if (e.key == "labels") {
        ok = parse_labels(e, d.labels) && ok;
      } else if (e.key == "network") {
        const auto value = read_string(e);
        if (value && value->empty()) {
          error(e.value_pos, "network must not be empty (leave it out to publish the port on 127.0.0.1)");
          ok = false;
        } else if (value) {
          d.network = *value;
        } else {
          ok = false;
        }
      } else if (e.key == "memory") {
        const auto value = read_memory(e);
        if (value) d.memory = *value;
        ok = ok && value.has_value();
      } else if (e.key == "cpus") {
        const auto value = read_cpus(e);
        if (value) d.nano_cpus = *value;
        ok = ok && value.has_value();
      } else if (e.key == "pull") {
        const auto value = read_string(e);
        if (value && *value == "never") {
          d.pull = pull_policy::never;
        } else if (value && *value == "missing") {
          d.pull = pull_policy::missing;
        } else if (value && *value == "always") {
          d.pull = pull_policy::always;
        } else {
          if (value) error(e.value_pos, "unknown pull policy " + in_quotes(*value) + " (known: never, missing, always)");
          ok = false;
        }
      } else if (e.key == "stop_timeout") {
        const auto value = read_duration(e, false);
        if (value) d.stop_timeout = *value;
        ok = ok && value.has_value();
      } else {
        unknown_key(e, docker_keys, context);
      }
    }
    if (!has_image) error(docker_entry.key_pos, "missing required key 'image' in " + context);
    if (!has_port) error(docker_entry.key_pos, "missing required key 'port' in " + context);
    if (!ok || !has_image || !has_port) return std::nullopt;
    return d;
  }

  // Bytes as a plain integer, or an integer with a suffix b, k, m or g (powers of 1024, as docker
  // run --memory). Docker's own minimum is 6 MiB.
  std::optional<std::int64_t> read_memory(const entry& e) {
    const std::string text = e.value.IsScalar() ? lower(e.value.Scalar()) : "";
    std::string_view digits = text;
    std::int64_t unit = 1;
    if (!digits.empty() && !is_digit(digits.back())) {
      switch (digits.back()) {
        case 'b': unit = 1; break;
        case 'k': unit = 1024; break;
        case 'm': unit = 1024 * 1024; break;
        case 'g': unit = 1024 * 1024 * 1024; break;
        default: unit = 0;
      }
      digits.remove_suffix(1);
    }
    std::int64_t value = 0;
    if (unit == 0 || digits.empty() || !std::all_of(digits.begin(), digits.end(), is_digit) ||
        std::from_chars(digits.data(), digits.data() + digits.size(), value).ec != std::errc{} ||
        value > INT64_MAX / unit) {
      error(e.value_pos, "expected a memory size like 256m, 1g or a number of bytes");
      return std::nullopt;
    }
    if (value * unit < 6 * 1024 * 1024) {
      error(e.value_pos, "memory must be at least 6m (Docker's minimum)");
      return std::nullopt;
    }
    return value * unit;
  }

  // A decimal number of CPUs ("0.5", 2) with at most 9 decimals, as nano-CPUs.
  std::optional<std::int64_t> read_cpus(const entry& e) {
    const std::string text = e.value.IsScalar() && e.value.Tag() != "!" ? e.value.Scalar() : "";
    const std::size_t dot = text.find('.');
    const std::string_view whole = std::string_view(text).substr(0, dot);
    const std::string_view fraction = dot == std::string::npos ? std::string_view() : std::string_view(text).substr(dot + 1);
    auto digits_only = [](std::string_view v) { return std::all_of(v.begin(), v.end(), is_digit); };
    std::int64_t units = 0;
    if (whole.empty() || whole.size() > 6 || !digits_only(whole) || (dot != std::string::npos && fraction.empty()) ||
        fraction.size() > 9 || !digits_only(fraction)) {
      error(e.value_pos, "expected a number of CPUs like 0.5 or 2");
      return std::nullopt;
    }
    std::from_chars(whole.data(), whole.data() + whole.size(), units);
    std::int64_t nanos = units * 1'000'000'000;
    std::int64_t scale = 100'000'000;
    for (char c : fraction) {
      nanos += (c - '0') * scale;
      scale /= 10;
    }
    if (nanos <= 0) {
      error(e.value_pos, "cpus must be greater than 0");
      return std::nullopt;
    }
    return nanos;
  }

  bool parse_labels(const entry& labels, std::vector<std::pair<std::string, std::string>>& out) {
    const auto entries = entries_of(labels.value, labels.value_pos);
    if (!entries) return false;
    bool ok = true;
    for (const entry& e : *entries) {
      if (e.key.empty()) {
        error(e.key_pos, "label names must not be empty");
        ok = false;
      } else if (e.key.starts_with("wakegate.")) {
        error(e.key_pos, "label " + in_quotes(e.key) + " is reserved (wakegate sets the 'wakegate.' labels itself)");
        ok = false;
      } else if (e.value.IsNull()) {
        out.emplace_back(e.key, "");
      } else if (e.value.IsScalar()) {
        out.emplace_back(e.key, e.value.Scalar());
      } else {
        error(e.value_pos, "expected a string");
        ok = false;
      }
    }
    return ok;
  }

  std::optional<process_backend> parse_process(const entry& process_entry,
                                               const std::string& context) {
    const auto entries = entries_of(process_entry.value, process_entry.value_pos);
    if (!entries) return std::nullopt;
    process_backend p;
    p.cwd = base_dir_.string();
    bool ok = true;
    bool cwd_ok = true;
    const entry* command_entry = nullptr;
    std::optional<std::vector<list_item>> command;
    for (const entry& e : *entries) {
      if (e.key == "command") {
        command_entry = &e;
        command = read_string_list(e);
      } else if (e.key == "cwd") {
        cwd_ok = parse_cwd(e, p);
      } else if (e.key == "env") {
        ok = parse_env(e, p) && ok;
      } else if (e.key == "stop_signal") {
        const auto value = read_signal(e);
        if (value) p.stop_signal = *value;
        ok = ok && value.has_value();
      } else if (e.key == "stop_timeout") {
        const auto value = read_duration(e, false);
        if (value) p.stop_timeout = *value;
        ok = ok && value.has_value();
      } else {
        unknown_key(e, process_keys, context);
      }
    }
    if (command_entry == nullptr) {
      error(process_entry.key_pos, "missing required key 'command' in " + context);
      return std::nullopt;
    }
    if (!command) return std::nullopt;
    if (command->empty()) {
      error(command_entry->value_pos, "command must not be empty");
      return std::nullopt;
    }
    // Checked against the resolved cwd, so only once that is known to be right.
    if (cwd_ok && !command_exists(command->front().text, p.cwd)) {
      error(command->front().pos,
            "command " + in_quotes(command->front().text) + " not found or not executable");
      ok = false;
    }
    for (list_item& item : *command) p.command.push_back(std::move(item.text));
    if (!ok || !cwd_ok) return std::nullopt;
    return p;
  }

  bool parse_cwd(const entry& e, process_backend& p) {
    const auto value = read_string(e);
    if (!value) return false;
    if (value->empty()) {
      error(e.value_pos, "cwd must not be empty");
      return false;
    }
    fs::path path = fs::path(*value);
    if (path.is_relative()) path = base_dir_ / path;
    path = path.lexically_normal();
    if (!path.has_filename() && path.has_parent_path() && path != path.root_path()) {
      path = path.parent_path();  // no trailing '/'
    }
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      error(e.value_pos, "cwd " + in_quotes(path.string()) + " is not an existing directory");
      return false;
    }
    p.cwd = path.string();
    return true;
  }

  bool parse_env(const entry& env, process_backend& p) {
    // The configured PORT wins in the instance's environment (process_backend.cpp build_env).
    if (env.value.IsMap()) {
      for (auto it = env.value.begin(); it != env.value.end(); ++it) {
        if (it->first.Scalar() == "PORT" && !(it->second.IsScalar() && it->second.Scalar() == "${PORT}"))
          warn(position_of(it->first.Mark()),
               "env PORT replaces the port wakegate sets for each instance, but wakegate still connects to "
               "that port (use ${PORT} to pass it under another name)");
      }
    }
    return parse_env_into(env, p.env);
  }

  bool parse_env_into(const entry& env, std::vector<std::pair<std::string, std::string>>& out) {
    const auto entries = entries_of(env.value, env.value_pos);
    if (!entries) return false;
    bool ok = true;
    for (const entry& e : *entries) {
      if (!valid_env_name(e.key)) {
        error(e.key_pos, "invalid environment variable name " + in_quotes(e.key));
        ok = false;
        continue;
      }
      if (e.value.IsNull()) {
        out.emplace_back(e.key, "");
      } else if (e.value.IsScalar()) {
        out.emplace_back(e.key, e.value.Scalar());
      } else {
        error(e.value_pos, "expected a string");
        ok = false;
      }
    }
    return ok;
  }

  std::optional<int> read_signal(const entry& e) {
    const auto value = read_string(e);
    if (!value) return std::nullopt;
    std::string_view name = *value;
    const std::string upper_name = upper(name);
    name = upper_name;
    if (name.starts_with("SIG")) name.remove_prefix(3);
    for (const signal_name& s : signals) {
      if (s.name == name) return s.number;
    }
    error(e.value_pos, "unknown signal " + in_quotes(*value) +
                           " (known: SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGKILL, SIGUSR1, SIGUSR2)");
    return std::nullopt;
  }

  // ---- tls: (after apps, to check which hosts the certificates cover) ----------------------------

  void parse_tls(const entry* tls, position root_pos) {
    if (tls == nullptr) {
      if (cfg_.https && https_pos_) error(*https_pos_, "listen.https needs a 'tls' section with certificates or acme");
      return;
    }
    const auto entries = entries_of(tls->value, tls->value_pos);
    if (!entries) return;
    std::vector<certificate_info> infos;
    const entry* default_entry = nullptr;
    bool certs_ok = true;
    bool has_certificates = false;
    for (const entry& e : *entries) {
      if (e.key == "certificates") {
        has_certificates = true;
        certs_ok = parse_certificates(e, infos);
      } else if (e.key == "default_certificate") {
        if (auto value = read_string(e)) {
          cfg_.tls.default_certificate = lower(*value);
          default_entry = &e;
        }
      } else if (e.key == "redirect_http") {
        if (auto value = read_bool(e)) cfg_.tls.redirect_http = *value;
      } else if (e.key == "ticket_key_rotation") {
        if (auto value = read_duration(e, true)) cfg_.tls.ticket_key_rotation = *value;
      } else if (e.key == "acme") {
        parse_acme(e);
      } else {
        unknown_key(e, tls_keys, "tls");
      }
    }
    if (!cfg_.https) {
      warn(tls->key_pos, "tls is configured but listen.https is not: no HTTPS listener");
    } else if (!has_certificates && !cfg_.tls.acme) {
      error(tls->key_pos, "tls needs 'certificates' or 'acme' for listen.https");
    }
    if (default_entry != nullptr && certs_ok) {
      bool found = false;
      for (const auto& info : infos) found = found || names_cover(info.names, cfg_.tls.default_certificate);
      if (!found)
        error(default_entry->value_pos, "default_certificate " + in_quotes(cfg_.tls.default_certificate) +
                                            " is not a name of any certificate in tls.certificates");
    }
    // Hosts of apps no certificate covers: ACME orders them, otherwise clients get the default.
    if (certs_ok && !cfg_.tls.acme && cfg_.https) {
      for (const auto& app : cfg_.apps) {
        for (const auto& host : app.hosts) {
          bool covered = false;
          for (const auto& info : infos) covered = covered || names_cover(info.names, host);
          if (!covered)
            warn(hosts_.at(host).second, "host " + in_quotes(host) + " of app " + in_quotes(app.name) +
                              " is covered by no certificate in tls.certificates (clients get the default one)");
        }
      }
    }
    (void)root_pos;
  }

  std::string resolve_path(const std::string& path) const {
    fs::path p(path);
    if (p.is_relative()) p = base_dir_ / p;
    return p.lexically_normal().string();
  }

  // Returns false when some certificate could not be checked.
  bool parse_certificates(const entry& e, std::vector<certificate_info>& infos) {
    if (!e.value.IsSequence()) {
      error(e.value_pos, "expected a list of {cert, key}");
      return false;
    }
    bool ok = true;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    for (const YAML::Node& item : e.value) {
      const position item_pos = item_position(item);
      const auto fields = entries_of(item, item_pos);
      if (!fields) {
        ok = false;
        continue;
      }
      certificate_file cf;
      cf.pos = item_pos;
      const entry* cert_e = nullptr;
      const entry* key_e = nullptr;
      for (const entry& f : *fields) {
        if (f.key == "cert" || f.key == "key") {
          auto value = read_string(f);
          if (!value) continue;
          (f.key == "cert" ? cf.cert : cf.key) = resolve_path(*value);
          (f.key == "cert" ? cert_e : key_e) = &f;
        } else {
          unknown_key(f, certificate_keys, "tls.certificates");
        }
      }
      if (cert_e == nullptr || key_e == nullptr) {
        error(item_pos, std::string("missing required key ") + (cert_e == nullptr ? "'cert'" : "'key'") +
                            " in tls.certificates");
        ok = false;
        continue;
      }
      std::string why;
      if (!read_text_file(cf.cert, why)) {
        error(cert_e->value_pos, why);
        ok = false;
        continue;
      }
      if (!read_text_file(cf.key, why)) {
        error(key_e->value_pos, why);
        ok = false;
        continue;
      }
      auto check = inspect_certificate_files(cf.cert, cf.key);
      if (!check.info) {
        const bool key_fault = check.error.starts_with(cf.key) || check.error.starts_with("private key");
        error(key_fault ? key_e->value_pos : cert_e->value_pos, check.error);
        ok = false;
        continue;
      }
      if (check.info->not_after <= now) {
        error(cert_e->value_pos, "certificate " + in_quotes(cf.cert) + " has expired");
        ok = false;
        continue;
      }
      if (check.info->not_before > now)
        warn(cert_e->value_pos, "certificate " + in_quotes(cf.cert) + " is not valid before " +
                                    utc_time_text(check.info->not_before) + ": clients refuse it until then");
      infos.push_back(std::move(*check.info));
      cfg_.tls.certificates.push_back(std::move(cf));
    }
    return ok;
  }

  void parse_acme(const entry& acme_entry) {
    const auto entries = entries_of(acme_entry.value, acme_entry.value_pos);
    if (!entries) return;
    acme_config a;
    bool has_directory = false, has_storage = false;
    for (const entry& e : *entries) {
      if (e.key == "directory") {
        has_directory = true;
        if (auto value = read_string(e)) {
          const std::string_view rest = std::string_view(*value).substr(value->starts_with("https://") ? 8 : 0);
          const bool bad_char = std::any_of(value->begin(), value->end(), [](char c) { return c <= 0x20 || c >= 0x7f; });
          if (!value->starts_with("https://") || rest.empty() || rest.find_first_of("/?#") == 0 || bad_char) {
            error(e.value_pos, "acme directory must be an https:// URL");
            continue;
          }
          a.directory = *value;
        }
      } else if (e.key == "email") {
        if (auto value = read_string(e)) a.email = *value;
      } else if (e.key == "storage") {
        if (auto value = read_string(e)) {
          a.storage = resolve_path(*value);
          has_storage = true;
          if (auto why = storage_problem(a.storage); !why.empty())
            error(e.value_pos, "acme storage " + a.storage + " cannot be used: " + why);
        }
      } else if (e.key == "ca_bundle") {
        if (auto value = read_string(e)) {
          a.ca_bundle = resolve_path(*value);
          std::string why;
          if (!read_text_file(a.ca_bundle, why)) error(e.value_pos, why);
        }
      } else if (e.key == "renew_before") {
        if (auto value = read_duration(e, true)) a.renew_before = *value;
      } else if (e.key == "retry_after") {
        if (auto value = read_duration(e, true)) a.retry_after = *value;
      } else {
        unknown_key(e, acme_keys, "tls.acme");
      }
    }
    if (!has_directory) error(acme_entry.key_pos, "missing required key 'directory' in tls.acme");
    if (!has_storage) error(acme_entry.key_pos, "missing required key 'storage' in tls.acme");
    cfg_.tls.acme = std::move(a);
  }

  std::optional<position> https_pos_;
  std::string file_;
  std::string_view yaml_;  // the text being loaded, for item_position
  fs::path base_dir_;
  config cfg_;
  std::optional<position> admin_address_pos_;  // listen.admin, for the open-admin warning
  bool defaults_panic_set_ = false;            // `defaults:` sets panic_window
  std::vector<diagnostic> errors_;
  std::vector<diagnostic> warnings_;
  std::map<std::string, int> app_names_;                      // name -> line
  std::map<std::string, std::pair<std::string, position>> hosts_;  // host -> (app, where)
};

fs::path absolute_dir(const std::string& dir) {
  fs::path path = dir.empty() ? fs::path(".") : fs::path(dir);
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (!ec) path = std::move(absolute);
  path = path.lexically_normal();
  if (!path.has_filename() && path.has_parent_path() && path != path.root_path()) {
    path = path.parent_path();
  }
  return path;
}

}  // namespace

std::vector<problem> in_file_order(const load_result& result) {
  std::vector<problem> out;
  auto warning = result.warnings.begin();
  auto error = result.errors.begin();
  while (warning != result.warnings.end() || error != result.errors.end()) {
    const bool take_warning =
        error == result.errors.end() ||
        (warning != result.warnings.end() &&
         std::pair(warning->line, warning->column) <= std::pair(error->line, error->column));
    out.push_back(take_warning ? problem{&*warning++, true} : problem{&*error++, false});
  }
  return out;
}

load_result load_string(std::string_view yaml, const std::string& file,
                        const std::string& base_dir) {
  try {
    return loader(file, absolute_dir(base_dir)).run(yaml);
  } catch (const std::exception& e) {
    load_result result;
    result.errors.push_back({file, 1, 1, std::string("internal error: ") + e.what()});
    return result;
  }
}

load_result load_file(const std::string& path) {
  auto cannot_read = [&path](int err) {
    load_result result;
    result.errors.push_back(
        {path, 1, 1, "cannot read file: " + std::generic_category().message(err)});
    return result;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(errno);
  std::string text;
  char buffer[16 * 1024];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return cannot_read(err);
    }
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const fs::path parent = fs::path(path).parent_path();
  return load_string(text, path, parent.empty() ? std::string(".") : parent.string());
}

std::optional<duration> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t total = 0;
  bool too_large = false;  // well-formed, but beyond what milliseconds in 64 bits hold
  std::int64_t previous_unit = INT64_MAX;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_digit(text[i])) return std::nullopt;
    std::int64_t value = 0;
    for (; i < text.size() && is_digit(text[i]); ++i) {
      if (value > (INT64_MAX - 9) / 10) too_large = true;
      else value = value * 10 + (text[i] - '0');
    }
    if (i == text.size()) return std::nullopt;  // a number without unit
    std::int64_t unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1;
      i += 2;
    } else {
      switch (text[i]) {
        case 'd':
          unit = 86'400'000;
          break;
        case 'h':
          unit = 3'600'000;
          break;
        case 'm':
          unit = 60'000;
          break;
        case 's':
          unit = 1000;
          break;
        default:
          return std::nullopt;
      }
      ++i;
    }
    // Strictly descending units: "1m30s", never "30s1m" or "1s1s".
    if (unit >= previous_unit) return std::nullopt;
    previous_unit = unit;
    if (value > (INT64_MAX - total) / unit) too_large = true;
    else total += value * unit;
  }
  return too_large ? duration::max() : duration(total);
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits])) ++digits;
  if (digits == 0 || digits > 15) return std::nullopt;
  std::uint64_t value = 0;
  std::from_chars(text.data(), text.data() + digits, value);
  std::string_view unit = text.substr(digits);
  int shift = 0;
  if (unit == "KiB") {
    shift = 10;
  } else if (unit == "MiB") {
    shift = 20;
  } else if (unit == "GiB") {
    shift = 30;
  } else if (!unit.empty() && unit != "B") {
    return std::nullopt;
  }
  // Too large to count in 64 bits: the largest count, which every range refuses (found by
  // black-box testing: the shift wrapped, 2^64 bytes became 0, "no limit").
  if (value > (UINT64_MAX >> shift)) return UINT64_MAX;
  return value << shift;
}

std::optional<endpoint> parse_endpoint(std::string_view text) {
  std::string_view host;
  std::string_view port;
  bool ipv6 = false;
  if (text.starts_with('[')) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || text.substr(close + 1, 1) != ":") return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    ipv6 = true;
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
    return std::nullopt;
  }
  int port_number = 0;
  std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (port_number > 65535) return std::nullopt;  // port 0: the OS picks a free one

  endpoint result;
  result.port = static_cast<std::uint16_t>(port_number);
  const std::string host_text(host);
  if (ipv6) {
    in6_addr address{};
    if (::inet_pton(AF_INET6, host_text.c_str(), &address) != 1) return std::nullopt;
    result.host = host_text;
  } else if (host.empty() || host == "*") {
    result.host = "0.0.0.0";
  } else if (host == "localhost") {
    result.host = host_text;
  } else {
    in_addr address{};
    if (::inet_pton(AF_INET, host_text.c_str(), &address) != 1) return std::nullopt;
    result.host = host_text;
  }
  return result;
}

}  // namespace wakegate::config
