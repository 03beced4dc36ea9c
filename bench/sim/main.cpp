// wakegate_sim: runs five traces under three policies and reports, per trace, latency (queueing
// included), held requests, cold starts and instance-seconds; writes one gnuplot SVG per trace.
//
//   wakegate_sim [--short] [--seed N] [--out DIR] [--data DIR] [--no-plots]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "bench/sim/simulator.hpp"

namespace fs = std::filesystem;
using namespace wakegate::sim;

namespace {

std::vector<trace> make_traces(double scale) {
  const double pi = 3.141592653589793;
  std::vector<trace> ts;
  ts.push_back({"steady", "steady Poisson, 60 req/s", 600 * scale, [](double) { return 60.0; }, 60});
  const double a = 180 * scale, b = 420 * scale;
  ts.push_back({"step", "10x step: 20 -> 200 -> 20 req/s", 600 * scale,
                [a, b](double t) { return t >= a && t < b ? 200.0 : 20.0; }, 200});
  const double s0 = 60 * scale, s1 = 180 * scale;
  ts.push_back({"spike", "spike from zero: 300 req/s for 2 min, idle around it", 600 * scale,
                [s0, s1](double t) { return t >= s0 && t < s1 ? 300.0 : 0.0; }, 300});
  const double day = 1200 * scale;
  ts.push_back({"diurnal", "diurnal: 5..100 req/s (a day in 20 min)", day,
                [day, pi](double t) { return 5 + 95 * (1 - std::cos(2 * pi * t / day)) / 2; }, 100});
  // Off longer than scale_to_zero_after: every on period after the first wakes the app from zero
  // with a start-time estimate in hand.
  const double period = 420 * scale, on = 60 * scale;
  ts.push_back({"onoff", "on/off: 60 s at 80 req/s, 6 min off (to zero in between)", 2100 * scale,
                [period, on](double t) { return std::fmod(t, period) < on ? 80.0 : 0.0; }, 80});
  return ts;
}

void write_data(const fs::path& file, const result& r) {
  std::ofstream out(file);
  out << "# second arrivals ready desired p99_seconds panic\n";
  for (std::size_t s = 0; s < r.timeline.size(); ++s) {
    const auto& x = r.timeline[s];
    out << s << ' ' << x.arrivals << ' ' << x.ready << ' ' << x.desired << ' ' << x.p99 << ' ' << (x.panic ? 1 : 0)
        << '\n';
  }
}

bool plot(const trace& t, const fs::path& data_dir, const fs::path& svg) {
  const fs::path script = data_dir / (t.name + ".gp");
  auto d = [&](const char* policy) { return "'" + (data_dir / (t.name + "-" + policy + ".dat")).string() + "'"; };
  std::ofstream gp(script);
  gp << "set terminal svg size 900,620 dynamic font 'sans,11' background rgb 'white'\n"
     << "set output '" << svg.string() << "'\n"
     << "set multiplot layout 2,1 title '" << t.title << "'\n"
     << "set key top left horizontal\nset grid\nset xrange [0:" << t.duration << "]\n"
     << "set ylabel 'instances'\nset y2label 'requests/s'\nset ytics nomirror\nset y2tics\nset yrange [0:*]\n"
     << "set y2range [0:*]\nset format x ''\nset lmargin 10\nset rmargin 10\n"
     << "plot " << d("wakegate") << " using 1:2 axes x1y2 with lines lc rgb '#bbbbbb' title 'demand (req/s)', \\\n"
     << "     " << d("wakegate") << " using 1:($6*0 + $3) with steps lw 2 lc rgb '#1f77b4' title 'wakegate ready', \\\n"
     << "     " << d("wakegate") << " using 1:4 with steps dt 2 lc rgb '#1f77b4' title 'wakegate desired', \\\n"
     << "     " << d("plain") << " using 1:3 with steps lw 2 lc rgb '#ff7f0e' title 'plain ready', \\\n"
     << "     " << d("fixed-peak") << " using 1:3 with steps lc rgb '#2ca02c' title 'fixed-peak'\n"
     << "unset y2label\nunset y2tics\nset format x '%g'\nset xlabel 'seconds'\nset ylabel 'p99 latency (s)'\n"
     << "set logscale y\nset yrange [0.1:*]\n"
     << "plot " << d("wakegate") << " using 1:($5 > 0 ? $5 : 1/0) with lines lc rgb '#1f77b4' title 'wakegate', \\\n"
     << "     " << d("plain") << " using 1:($5 > 0 ? $5 : 1/0) with lines lc rgb '#ff7f0e' title 'plain', \\\n"
     << "     " << d("fixed-peak") << " using 1:($5 > 0 ? $5 : 1/0) with lines lc rgb '#2ca02c' title 'fixed-peak'\n"
     << "unset multiplot\n";
  gp.close();
  const std::string cmd = "gnuplot '" + script.string() + "'";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  bool short_run = false, plots = true;
  std::uint64_t seed = 1;
  fs::path out = "docs/scaling", data = fs::temp_directory_path() / "wakegate-sim";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--short") short_run = true;
    else if (a == "--no-plots") plots = false;
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "--data" && i + 1 < argc) data = argv[++i];
    else {
      std::cerr << "usage: wakegate_sim [--short] [--seed N] [--out DIR] [--data DIR] [--no-plots]\n";
      return 2;
    }
  }
  run_options o;
  o.seed = seed;
  o.settings.target_concurrency = 10;
  o.settings.max_instances = 50;
  o.settings.max_concurrency = o.model.max_concurrency;  // the app knows its hard limit
  o.settings.scale_to_zero_after = std::chrono::minutes(5);
  if (short_run) {
    o.settings.stable_window = std::chrono::seconds(12);
    o.settings.panic_window = std::chrono::seconds(2);
    o.settings.scale_down_delay = std::chrono::seconds(6);
    o.settings.scale_to_zero_after = std::chrono::seconds(60);
  }
  fs::create_directories(data);
  if (plots) fs::create_directories(out);

  std::cout << "Simulated: target_concurrency " << o.settings.target_concurrency << ", max_concurrency "
            << o.model.max_concurrency << ", start time log-normal median " << o.model.start_median
            << " s, service time log-normal median " << o.model.service_median << " s, seed " << seed
            << (short_run ? ", short traces" : "") << ".\n\n"
            << "| trace | policy | requests | p50 ms | p99 ms | held % | held s | cold | failed | starts | "
               "instance-s |\n"
            << "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  int failures = 0;
  for (const auto& t : make_traces(short_run ? 0.2 : 1.0)) {
    for (auto p : {policy_kind::wakegate, policy_kind::plain, policy_kind::fixed_peak}) {
      auto r = simulate(t, p, o);
      write_data(data / (t.name + "-" + to_string(p) + ".dat"), r);
      char line[256];
      std::snprintf(line, sizeof line, "| %s | %s | %llu | %.0f | %.0f | %.1f | %.0f | %llu | %llu | %llu | %.0f |\n",
                    t.name.c_str(), to_string(p), static_cast<unsigned long long>(r.requests), r.p50 * 1000,
                    r.p99 * 1000, r.requests ? 100.0 * static_cast<double>(r.held) / static_cast<double>(r.requests) : 0,
                    r.held_seconds, static_cast<unsigned long long>(r.cold), static_cast<unsigned long long>(r.failed),
                    static_cast<unsigned long long>(r.starts), r.instance_seconds);
      std::cout << line;
    }
    if (plots && !plot(t, data, out / (t.name + ".svg"))) {
      std::cerr << "gnuplot failed for " << t.name << " (is gnuplot-nox installed?)\n";
      ++failures;
    }
  }
  std::cout << "\nheld %: requests that waited for capacity; held s: their total wait; cold: arrived with no "
               "ready instance; failed: held past queue_timeout (30 s); instance-s: cost, starting time included.\n";
  return failures == 0 ? 0 : 1;
}
