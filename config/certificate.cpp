#include "config/certificate.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

namespace wakegate::config {

namespace {

struct bio_free {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::int64_t unix_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string openssl_reason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data found";
  const char* r = ERR_reason_error_string(e);
  return r != nullptr ? r : "unknown OpenSSL error";
}

}  // namespace

int refuse_pass_phrase(char*, int, int, void*) noexcept { return -1; }

std::string utc_time_text(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

std::optional<std::string> read_text_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

certificate_check inspect_certificate_pem(std::string_view cert_pem, std::string_view key_pem) {
  certificate_check out;
  ERR_clear_error();
  std::unique_ptr<BIO, bio_free> cb(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, x509_free> leaf(PEM_read_bio_X509(cb.get(), nullptr, refuse_pass_phrase, nullptr));
  if (!leaf) {
    out.error = "no PEM certificate (" + openssl_reason() + ")";
    return out;
  }
  std::unique_ptr<BIO, bio_free> kb(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, pkey_free> key(PEM_read_bio_PrivateKey(kb.get(), nullptr, refuse_pass_phrase, nullptr));
  if (!key) {
    const bool encrypted = key_pem.find("ENCRYPTED") != std::string_view::npos;  // PKCS#8 or the old Proc-Type
    out.error = encrypted ? "private key is encrypted: wakegate reads unencrypted keys only (decrypt it with "
                            "'openssl pkey -in KEY -out PLAIN_KEY')"
                          : "no PEM private key (" + openssl_reason() + ")";
    ERR_clear_error();
    return out;
  }
  if (X509_check_private_key(leaf.get(), key.get()) != 1) {
    ERR_clear_error();
    out.error = "private key does not match the certificate";
    return out;
  }
  certificate_info info;
  info.not_before = unix_time(X509_get0_notBefore(leaf.get()));
  info.not_after = unix_time(X509_get0_notAfter(leaf.get()));
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf.get(), NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const auto* s = gn->d.dNSName;
      info.names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                             static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (info.names.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(leaf.get()), NID_commonName, cn, sizeof cn);
    if (n > 0) info.names.push_back(lower(std::string(cn, static_cast<std::size_t>(n))));
  }
  ERR_clear_error();
  out.info = std::move(info);
  return out;
}

certificate_check inspect_certificate_files(const std::string& cert_path, const std::string& key_path) {
  certificate_check out;
  auto cert = read_text_file(cert_path, out.error);
  if (!cert) return out;
  auto key = read_text_file(key_path, out.error);
  if (!key) return out;
  out = inspect_certificate_pem(*cert, *key);
  if (!out.info && out.error.starts_with("no PEM certificate")) out.error = cert_path + ": " + out.error;
  if (!out.info && out.error.starts_with("no PEM private key")) out.error = key_path + ": " + out.error;
  return out;
}

bool name_covers(std::string_view name, std::string_view host) noexcept {
  if (name == host) return true;
  if (!name.starts_with("*.") || host.starts_with("*.")) return false;
  auto dot = host.find('.');
  return dot != std::string_view::npos && dot > 0 && host.substr(dot) == name.substr(1);
}

bool names_cover(const std::vector<std::string>& names, std::string_view host) noexcept {
  for (const auto& n : names)
    if (name_covers(n, host)) return true;
  return false;
}

}  // namespace wakegate::config
