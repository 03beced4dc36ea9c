// Structured logging: one JSON object per line on stderr, written with a single write(2) so that
// lines from different threads never interleave.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace wakegate::log {

enum class level { debug, info, warn, error };

struct field {
  std::string_view key;
  std::variant<std::string_view, std::int64_t, double, bool> value;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  field(std::string_view k, bool v) : key(k), value(v) {}
  field(std::string_view k, double v) : key(k), value(v) {}
  template <class I>
    requires std::is_integral_v<I>
  field(std::string_view k, I v) : key(k), value(static_cast<std::int64_t>(v)) {}
};

void write(level lvl, std::string_view msg, std::initializer_list<field> fields = {});
inline void info(std::string_view msg, std::initializer_list<field> f = {}) { write(level::info, msg, f); }
inline void warn(std::string_view msg, std::initializer_list<field> f = {}) { write(level::warn, msg, f); }
inline void error(std::string_view msg, std::initializer_list<field> f = {}) { write(level::error, msg, f); }

// Helpers shared with the access log and /status.
void append_json_string(std::string& out, std::string_view s);  // with quotes, escaped; bytes that are not UTF-8 as \ufffd
void append_number(std::string& out, double v, int decimals);
void append_time_utc(std::string& out);  // "2026-11-25T20:01:02.123Z" (now)

// Writes a whole buffer to stderr (retrying partial writes).
void write_stderr(std::string_view s);

}  // namespace wakegate::log
