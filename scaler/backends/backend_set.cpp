#include "scaler/backends/backend_set.hpp"

#include <variant>

namespace wakegate::scaler {

static_assert(std::variant_size_v<config::backend> == 2, "backend_set: one slot per backend kind");

backend_set::backend_set(std::unique_ptr<instance_backend> process, std::unique_ptr<instance_backend> docker)
    : kinds_{std::move(process), std::move(docker)} {
  for (auto& kind : kinds_) {
    if (!kind) continue;
    // on_exit is set on this object after construction: look it up at call time.
    kind->on_exit = [this](const std::string& id, const std::string& reason) {
      if (on_exit) {
        const auto callback = on_exit;
        callback(id, reason);
      }
    };
  }
}

instance_backend* backend_set::owner_of(const std::string& id) const {
  auto it = owners_.find(id);
  return it == owners_.end() ? nullptr : it->second;
}

void backend_set::start(const instance_spec& spec, std::function<void(start_result)> done) {
  instance_backend* kind = spec.backend != nullptr ? kinds_[spec.backend->index()].get() : nullptr;
  if (kind == nullptr) {
    start_result r;
    r.error = "instance '" + spec.id + "': this backend kind is not available";
    done(r);
    return;
  }
  owners_[spec.id] = kind;
  kind->start(spec, std::move(done));
}

void backend_set::stop(const std::string& id, std::function<void()> done) {
  instance_backend* kind = owner_of(id);
  if (kind == nullptr) kind = kinds_[0] ? kinds_[0].get() : kinds_[1].get();  // unknown ids complete at once
  kind->stop(id, [this, id, done = std::move(done)] {
    owners_.erase(id);
    if (done) done();
  });
}

void backend_set::hurry() {
  for (auto& kind : kinds_)
    if (kind) kind->hurry();
}

void backend_set::stop_all(std::function<void()> done) {
  auto left = std::make_shared<int>(0);
  for (auto& kind : kinds_)
    if (kind) ++*left;
  auto all_done = std::make_shared<std::function<void()>>(std::move(done));
  for (auto& kind : kinds_) {
    if (!kind) continue;
    kind->stop_all([this, left, all_done] {
      if (--*left > 0) return;
      owners_.clear();
      if (*all_done) (*all_done)();
    });
  }
}

void backend_set::configure(const config::config& cfg) {
  for (auto& kind : kinds_)
    if (kind) kind->configure(cfg);
}

void backend_set::instance_ready(const std::string& id) {
  if (auto* kind = owner_of(id)) kind->instance_ready(id);
}

void backend_set::write_metrics(metrics::text_writer& w) const {
  for (const auto& kind : kinds_)
    if (kind) kind->write_metrics(w);
}

}  // namespace wakegate::scaler
