#include "tls/cert_store.hpp"

#include <sys/stat.h>

#include "common/log.hpp"
#include "config/certificate.hpp"

namespace wakegate::tls {

namespace {

constexpr auto watch_interval = std::chrono::seconds(1);

}  // namespace

cert_store::cert_store(boost::asio::io_context& ctx, callbacks cb)
    : ctx_(ctx), cb_(std::move(cb)), watch_timer_(ctx), ticket_timer_(ctx) {}

void cert_store::apply(const config::tls_config& cfg) {
  bool rotation_changed = cfg.ticket_key_rotation != cfg_.ticket_key_rotation;
  // A new set (new SSL_CTXs) empties the session-ID cache: built only when something changed
  // (found by black-box testing: every SIGHUP cost TLS 1.2 clients without tickets a full handshake).
  bool changed = !started_ || cfg.default_certificate != cfg_.default_certificate ||
                 cfg.certificates.size() != files_.size();
  for (std::size_t i = 0; !changed && i < files_.size(); ++i)
    changed = cfg.certificates[i].cert != files_[i].files.cert || cfg.certificates[i].key != files_[i].files.key;
  cfg_ = cfg;
  std::vector<file_entry> next;
  for (const auto& f : cfg.certificates) {
    file_entry e;
    e.files = f;
    // Same files as before: keep the last good version, in case the file is broken now.
    for (auto& old : files_)
      if (old.files.cert == f.cert && old.files.key == f.key) e = std::move(old);
    e.files = f;
    next.push_back(std::move(e));
  }
  files_ = std::move(next);
  for (auto& e : files_) changed = load(e) || changed;
  if (changed || rebuild_failed_) rebuild();
  if (!started_) {
    started_ = true;
    rotate_tickets();
    watch();
  } else if (rotation_changed) {
    rotate_tickets();
  }
}

void cert_store::reload() {
  bool changed = false;
  for (auto& e : files_) changed = load(e) || changed;
  if (changed || rebuild_failed_) rebuild();
}

void cert_store::set_acme_certificate(const std::string& host, certificate_source source) {
  acme_[host] = std::move(source);
  rebuild();
}

bool cert_store::file_covers(const std::string& host) const {
  for (const auto& e : files_)
    if (e.good && config::names_cover(e.names, host)) return true;
  return false;
}

bool cert_store::load(file_entry& e) {
  auto stamp_of = [](const std::string& path) {
    file_stamp s;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      s.ino = st.st_ino;
      s.size = st.st_size;
      s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    }
    return s;
  };
  e.cert_stamp = stamp_of(e.files.cert);
  e.key_stamp = stamp_of(e.files.key);
  std::string why;
  auto cert = config::read_text_file(e.files.cert, why);
  auto key = cert ? config::read_text_file(e.files.key, why) : std::nullopt;
  e.valid_from = 0;
  if (cert && key) {
    auto check = config::inspect_certificate_pem(*cert, *key);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    if (check.info) {
      if (check.info->not_after <= now) {
        why = "certificate has expired";
      } else if (check.info->not_before > now && e.good) {
        // Clients would refuse it until then (found by black-box testing: it replaced a good one).
        why = "certificate is not valid before " + config::utc_time_text(check.info->not_before) +
              ": it replaces the previous one then";
        e.valid_from = check.info->not_before;
      } else {
        bool changed = !e.good || e.good->cert_pem != *cert || e.good->key_pem != *key;
        e.good = certificate_source{e.files.cert, std::move(*cert), std::move(*key)};
        e.names = std::move(check.info->names);
        if (changed) {
          std::string names;  // every name, as /status lists them (the first alone misled)
          for (const auto& n : e.names) names.append(names.empty() ? "" : ", ").append(n);
          log::info("certificate loaded", {{"cert", e.files.cert}, {"names", names}});
        }
        return changed;
      }
    } else {
      why = check.error;
    }
  }
  if (e.good)
    log::error("certificate reload failed: keeping the previous certificate", {{"cert", e.files.cert}, {"error", why}});
  else
    log::error("certificate cannot be loaded", {{"cert", e.files.cert}, {"error", why}});
  return false;
}

void cert_store::rebuild() {
  std::vector<certificate_source> sources;
  for (const auto& e : files_)
    if (e.good) sources.push_back(*e.good);
  for (const auto& [host, src] : acme_) sources.push_back(src);
  if (sources.empty()) {
    current_ = nullptr;
  } else {
    // Without a usable default (its file failed at start), fall back to the first certificate.
    std::string_view def = cfg_.default_certificate;
    if (!def.empty() && !file_covers(std::string(def))) def = {};
    try {
      current_ = cert_set::build(sources, def);
    } catch (const std::exception& e) {
      log::error("certificates not updated", {{"error", e.what()}});
      rebuild_failed_ = true;  // tried again at the next reload (found in review)
      return;
    }
  }
  rebuild_failed_ = false;
  if (cb_.publish_certificates) cb_.publish_certificates(current_);
}

void cert_store::watch() {
  watch_timer_.expires_after(watch_interval);
  watch_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    bool changed = false;
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    for (auto& e : files_) {
      if (e.valid_from != 0 && now >= e.valid_from) {
        log::info("certificate now valid", {{"cert", e.files.cert}});
        changed = load(e) || changed;
        continue;
      }
      file_stamp c, k;
      struct stat st {};
      if (::stat(e.files.cert.c_str(), &st) == 0)
        c = {st.st_ino, st.st_size,
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
      if (::stat(e.files.key.c_str(), &st) == 0)
        k = {st.st_ino, st.st_size,
             static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
      if (c == e.cert_stamp && k == e.key_stamp) continue;
      log::info("certificate file changed", {{"cert", e.files.cert}});
      changed = load(e) || changed;
    }
    if (changed) rebuild();
    watch();
  });
}

void cert_store::rotate_tickets() {
  tickets_ = rotate_ticket_keys(tickets_.get());
  if (cb_.publish_ticket_keys) cb_.publish_ticket_keys(tickets_);
  ticket_timer_.expires_after(cfg_.ticket_key_rotation);
  ticket_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) rotate_tickets();
  });
}

boost::json::array cert_store::status() const {
  boost::json::array out;
  if (!current_) return out;
  for (const auto& c : current_->certificates()) {
    boost::json::array names;
    for (const auto& n : c.names) names.emplace_back(n);
    out.push_back(boost::json::object{{"origin", c.origin}, {"names", std::move(names)}, {"not_after", c.not_after}});
  }
  return out;
}

void cert_store::write_metrics(metrics::text_writer& w) const {
  if (!current_) return;
  w.family("wakegate_certificate_expiry_timestamp_seconds", "gauge",
           "When each served certificate expires (Unix time), by host name.");
  std::map<std::string_view, std::int64_t> by_host;
  for (const auto& c : current_->certificates())
    for (const auto& n : c.names) by_host.emplace(n, c.not_after);
  for (const auto& [host, t] : by_host) w.sample("wakegate_certificate_expiry_timestamp_seconds", {{"host", host}}, static_cast<double>(t));
}

}  // namespace wakegate::tls
