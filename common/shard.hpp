// Which per-thread shard the running thread writes to. Each proxy worker thread sets its own
// index at start; the control thread uses the last one. Hot-path counters keep one slot per
// shard so that every slot has a single writer and threads never contend.
#pragma once

#include <cstddef>

namespace wakegate {

inline constexpr std::size_t max_shards = 65;  // up to 64 workers + the control thread

inline thread_local std::size_t this_shard = 0;

// Shards in use (workers + 1); set once at start-up, before any sharded structure is created.
inline std::size_t shard_count = max_shards;

}  // namespace wakegate
