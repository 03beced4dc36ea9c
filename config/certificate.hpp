// Reading and checking a PEM certificate chain and its private key, shared by the config loader
// (validation with positions) and the TLS contexts (serving).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wakegate::config {

struct certificate_info {
  std::vector<std::string> names;  // DNS subjectAltNames, lower-case (the CN when there are none)
  std::int64_t not_before = 0;     // Unix seconds
  std::int64_t not_after = 0;
};

struct certificate_check {
  std::optional<certificate_info> info;  // set when the chain parses and the key matches
  std::string error;                     // otherwise why not, e.g. "private key does not match the certificate"
};

// OpenSSL's pass-phrase callback for every PEM read: refuses. A null callback would make OpenSSL
// prompt on the terminal, blocking the thread that reads the key (found by black-box testing).
int refuse_pass_phrase(char* buf, int size, int rwflag, void* userdata) noexcept;

// "2026-12-02 10:00:00 UTC", for messages about a certificate's validity.
std::string utc_time_text(std::int64_t unix_seconds);

// Whole file; nullopt (and `error` set) when it cannot be read.
std::optional<std::string> read_text_file(const std::string& path, std::string& error);

// Checks PEM text: at least one certificate, a private key that matches the first one.
certificate_check inspect_certificate_pem(std::string_view cert_pem, std::string_view key_pem);

// Reads both files and inspects them; errors name the file that is at fault.
certificate_check inspect_certificate_files(const std::string& cert_path, const std::string& key_path);

// `host` (lower-case, maybe "*.suffix") is covered by a name: equal, or a "*.suffix" name whose
// wildcard stands for exactly one label of `host`.
bool name_covers(std::string_view name, std::string_view host) noexcept;
bool names_cover(const std::vector<std::string>& names, std::string_view host) noexcept;

}  // namespace wakegate::config
