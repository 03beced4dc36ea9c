// The control plane's one backend: sends each app's instances to the backend its config names
// (backend.process or backend.docker) and remembers which one runs each instance.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "scaler/backend.hpp"

namespace wakegate::scaler {

class backend_set final : public instance_backend {
 public:
  // Either may be null when that kind is not available; its apps then fail to start.
  backend_set(std::unique_ptr<instance_backend> process, std::unique_ptr<instance_backend> docker);

  void start(const instance_spec& spec, std::function<void(start_result)> done) override;
  void stop(const std::string& id, std::function<void()> done) override;
  void stop_all(std::function<void()> done) override;
  void hurry() override;
  void configure(const config::config& cfg) override;
  void instance_ready(const std::string& id) override;
  void write_metrics(metrics::text_writer& w) const override;

 private:
  instance_backend* owner_of(const std::string& id) const;

  std::unique_ptr<instance_backend> kinds_[2];  // by config::backend's index: process, docker
  std::map<std::string, instance_backend*> owners_;  // instance id -> its backend
};

}  // namespace wakegate::scaler
