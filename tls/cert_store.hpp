// The certificates wakegate serves, owned by the control thread: the files of tls.certificates
// (re-read on SIGHUP and when a file changes on disk) and the certificates ACME obtained. Each
// change builds a new cert_set and publishes it to the proxy threads; a file that no longer
// loads keeps its previous certificate in service and the log says why. Also rotates the
// session-ticket keys.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>

#include "common/metrics.hpp"
#include "config/config.hpp"
#include "tls/context.hpp"

namespace wakegate::tls {

class cert_store {
 public:
  struct callbacks {
    std::function<void(std::shared_ptr<const cert_set>)> publish_certificates;
    std::function<void(std::shared_ptr<const ticket_keys>)> publish_ticket_keys;
  };

  cert_store(boost::asio::io_context& ctx, callbacks cb);

  // At start and on every config reload: loads every file now, then watches them.
  void apply(const config::tls_config& cfg);
  // SIGHUP: re-reads every file.
  void reload();
  // A certificate obtained by ACME for `host` (replaces an earlier one for the same host).
  void set_acme_certificate(const std::string& host, certificate_source source);

  // The set in service (null when there is no certificate yet, e.g. before ACME's first order).
  std::shared_ptr<const cert_set> current() const { return current_; }
  // Covered by a file certificate (not counting ACME's).
  bool file_covers(const std::string& host) const;

  void write_metrics(metrics::text_writer& w) const;
  // /status: the certificates in service (origin, names, not_after).
  boost::json::array status() const;

 private:
  struct file_stamp {
    ino_t ino = 0;
    off_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const file_stamp&) const = default;
  };
  struct file_entry {
    config::certificate_file files;
    std::optional<certificate_source> good;  // the last version that loaded
    std::vector<std::string> names;
    file_stamp cert_stamp, key_stamp;
    // The files hold a certificate not valid before this (Unix seconds), kept aside while the
    // previous one serves: loaded again then, unchanged or not. 0: none.
    std::int64_t valid_from = 0;
  };

  // True when what the entry serves changed.
  bool load(file_entry& e);
  void rebuild();
  void watch();
  void rotate_tickets();

  boost::asio::io_context& ctx_;
  callbacks cb_;
  config::tls_config cfg_;
  std::vector<file_entry> files_;
  std::map<std::string, certificate_source> acme_;
  std::shared_ptr<const cert_set> current_;
  std::shared_ptr<const ticket_keys> tickets_;
  boost::asio::steady_timer watch_timer_;
  boost::asio::steady_timer ticket_timer_;
  bool started_ = false;
  bool rebuild_failed_ = false;  // the last rebuild threw: the next reload rebuilds
};

}  // namespace wakegate::tls
