// The Knative-class policy keys: defaults, values, precedence and exact diagnostics.
#include <catch2/catch.hpp>

#include "config/loader.hpp"
#include "tests/support/config_load.hpp"

using namespace wakegate::config;
using namespace std::chrono_literals;

namespace {

load_result load(std::string_view yaml) { return wakegate::test::load_yaml(yaml); }
std::vector<std::string> errors_of(std::string_view yaml) { return wakegate::test::yaml_errors(yaml); }

}  // namespace

TEST_CASE("scaling keys: defaults, values and precedence", "[config][loader][scaling]") {
  auto r = load(R"(
defaults:
  panic_window: 3s
  target_utilization: 80%
  schedule:
    time_zone: Europe/Berlin
    ranges:
      - {days: mon-fri, from: "09:00", to: "18:00", min_instances: 2}
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [/bin/true]}}
  - name: b
    hosts: [b.localhost]
    metric: rps
    target_rps: 40
    stable_window: 30s
    panic_window: 2s
    panic_threshold: 150%
    target_utilization: 100%
    max_scale_up_rate: 1.5
    max_scale_down_rate: 4
    initial_instances: 3
    keep_warm: auto
    schedule:
      ranges:
        - {days: "sat,sun", min_instances: 1}
        - {days: daily, from: "00:00", to: "24:00", min_instances: 0}
        - {days: "mon,wed-fri", to: "06:30", min_instances: 4}
    backend: {process: {command: [/bin/true]}}
)");
  INFO((r.errors.empty() ? "" : r.errors.front().str()));
  REQUIRE(r.ok());
  const auto& a = r.cfg->apps[0].settings;
  CHECK(a.metric == scale_metric::concurrency);
  CHECK(a.target_rps == 100);
  CHECK(a.panic_window == 3s);
  CHECK(a.panic_threshold == 2.0);
  CHECK(a.target_utilization == Approx(0.8));
  CHECK(a.max_scale_up_rate == 1000);
  CHECK(a.max_scale_down_rate == 2);
  CHECK(a.initial_instances == 1);
  CHECK_FALSE(a.keep_warm_auto);
  CHECK(a.schedule.time_zone == "Europe/Berlin");
  REQUIRE(a.schedule.ranges.size() == 1);
  CHECK(a.schedule.ranges[0].days == 0x1fu);
  CHECK(a.schedule.ranges[0].from_minute == 540);
  CHECK(a.schedule.ranges[0].to_minute == 1080);
  CHECK(a.schedule.ranges[0].min_instances == 2);

  const auto& b = r.cfg->apps[1].settings;
  CHECK(b.metric == scale_metric::rps);
  CHECK(b.target_rps == 40);
  CHECK(b.stable_window == 30s);
  CHECK(b.panic_window == 2s);
  CHECK(b.panic_threshold == Approx(1.5));
  CHECK(b.target_utilization == 1.0);
  CHECK(b.max_scale_up_rate == 1.5);
  CHECK(b.max_scale_down_rate == 4);
  CHECK(b.initial_instances == 3);
  CHECK(b.keep_warm_auto);
  // A schedule replaces the inherited one as a whole (its zone defaults to UTC).
  CHECK(b.schedule.time_zone == "UTC");
  REQUIRE(b.schedule.ranges.size() == 3);
  CHECK(b.schedule.ranges[0].days == 0x60u);
  CHECK(b.schedule.ranges[0].from_minute == 0);
  CHECK(b.schedule.ranges[0].to_minute == 1440);
  CHECK(b.schedule.ranges[1].days == 0x7fu);
  CHECK(b.schedule.ranges[2].days == 0x1du);
  CHECK(b.schedule.ranges[2].to_minute == 390);
}

TEST_CASE("scaling keys: exact diagnostics", "[config][loader][scaling]") {
  CHECK(errors_of(R"(
defaults:
  metric: latency
  target_rps: 0
  panic_window: 0s
  panic_threshold: 200
  target_utilization: 101%
  max_scale_up_rate: 1
  max_scale_down_rate: fast
  initial_instances: -1
  keep_warm: always
  panic_treshold: 200%
apps: []
)") == std::vector<std::string>{
            "t.yaml:2:11: metric must be 'concurrency' or 'rps'",
            "t.yaml:3:15: target_rps must be at least 1",
            "t.yaml:4:17: panic_window must be greater than 0",
            "t.yaml:5:20: expected a percentage like 70%",
            "t.yaml:6:23: target_utilization must be between 1% and 100%",
            "t.yaml:7:22: max_scale_up_rate must be greater than 1 and at most 1000000",
            "t.yaml:8:24: expected a number like 2 or 1.5",
            "t.yaml:9:22: initial_instances must be at least 0",
            "t.yaml:10:14: keep_warm must be 'auto' or 'off'",
            "t.yaml:11:3: unknown key 'panic_treshold' in defaults (did you mean 'panic_threshold'?)",
        });
  CHECK(errors_of(R"(
defaults:
  panic_threshold: 105%
apps: []
)") == std::vector<std::string>{"t.yaml:2:20: panic_threshold must be between 110% and 1000%"});
}

TEST_CASE("scaling keys: schedule diagnostics", "[config][loader][scaling]") {
  CHECK(errors_of(R"(
defaults:
  schedule:
    time_zone: Mars/Olympus
    ranges:
      - {days: mon-fry, min_instances: 1}
      - {days: fri-mon, min_instances: 1}
      - {days: mon, from: "9:00", min_instances: 1}
      - {days: mon, from: "10:00", to: "09:00", min_instances: 1}
      - {days: mon, to: "24:01", min_instances: 1}
      - {days: mon, from: "24:00", min_instances: 1}
      - {from: "10:00"}
      - {days: mon, min_instances: -2, at: 1}
      - daily
    timezone: UTC
apps: []
)") == std::vector<std::string>{
            "t.yaml:3:16: unknown time zone 'Mars/Olympus' (no file /usr/share/zoneinfo/Mars/Olympus; is tzdata installed?)",
            "t.yaml:5:16: expected days like mon-fri, sat,sun or daily",
            "t.yaml:6:16: expected days like mon-fri, sat,sun or daily",
            "t.yaml:7:27: expected a time of day HH:MM from 00:00 to 23:59",
            "t.yaml:8:40: range must end after it starts (split ranges that cross midnight)",
            "t.yaml:9:25: expected a time of day HH:MM from 00:00 to 24:00",
            "t.yaml:10:27: expected a time of day HH:MM from 00:00 to 23:59",
            "t.yaml:11:9: missing required key 'days' in range of schedule of defaults",
            "t.yaml:11:9: missing required key 'min_instances' in range of schedule of defaults",
            "t.yaml:12:36: min_instances must be at least 0",
            "t.yaml:12:40: unknown key 'at' in range of schedule of defaults",
            "t.yaml:13:9: expected a mapping {days, from, to, min_instances}",
            "t.yaml:14:5: unknown key 'timezone' in schedule of defaults (did you mean 'time_zone'?)",
        });
}

TEST_CASE("scaling keys: panic_window is at most stable_window", "[config][loader][scaling]") {
  SECTION("unset, it is 6 s, or stable_window where that is shorter, layer by layer") {
    auto r = load(R"(
defaults:
  stable_window: 2s
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [/bin/true]}}
  - name: b
    hosts: [b.localhost]
    stable_window: 30s
    backend: {process: {command: [/bin/true]}}
  - name: c
    hosts: [c.localhost]
    stable_window: 1500ms
    backend: {process: {command: [/bin/true]}}
)");
    INFO((r.errors.empty() ? "" : r.errors.front().str()));
    REQUIRE(r.ok());
    CHECK(r.cfg->apps[0].settings.panic_window == 2s);
    CHECK(r.cfg->apps[1].settings.panic_window == 6s);
    CHECK(r.cfg->apps[2].settings.panic_window == 1500ms);
  }
  SECTION("set in the same layer: reported at panic_window") {
    CHECK(errors_of(R"(
defaults:
  stable_window: 5s
  panic_window: 10s
apps:
  - name: a
    hosts: [a.localhost]
    stable_window: 4s
    panic_window: 4500ms
    backend: {process: {command: [/bin/true]}}
)") == std::vector<std::string>{
              "t.yaml:3:3: panic_window (10s) is longer than stable_window (5s)",
              "t.yaml:8:5: panic_window (4500ms) is longer than stable_window (4s)",
          });
  }
  SECTION("windows are at most 1h (the scaler keeps a bucket per second of them)") {
    CHECK(errors_of(R"(
defaults:
  stable_window: 365d
apps:
  - name: a
    hosts: [a.localhost]
    stable_window: 1h
    panic_window: 3601s
    backend: {process: {command: [/bin/true]}}
)") == std::vector<std::string>{"t.yaml:2:18: stable_window must be at most 1h",
                                "t.yaml:7:19: panic_window must be at most 1h"});
  }
  SECTION("a conflict with an inherited key: reported where the app set its own") {
    CHECK(errors_of(R"(
defaults:
  panic_window: 10s
apps:
  - name: a
    hosts: [a.localhost]
    stable_window: 5s
    backend: {process: {command: [/bin/true]}}
  - name: b
    hosts: [b.localhost]
    stable_window: 10s
    backend: {process: {command: [/bin/true]}}
)") == std::vector<std::string>{"t.yaml:6:5: panic_window (10s) is longer than stable_window (5s)"});
  }
  SECTION("an inherited conflict is reported once, at defaults; an invalid window is not compared") {
    CHECK(errors_of(R"(
defaults:
  stable_window: 3s
  panic_window: 4s
apps:
  - name: a
    hosts: [a.localhost]
    backend: {process: {command: [/bin/true]}}
  - name: b
    hosts: [b.localhost]
    panic_window: soon
    backend: {process: {command: [/bin/true]}}
)") == std::vector<std::string>{
              "t.yaml:3:3: panic_window (4s) is longer than stable_window (3s)",
              "t.yaml:10:19: expected a duration like 250ms, 30s or 5m",
          });
  }
}
