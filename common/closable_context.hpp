// An io_context whose queued handlers and suspended coroutines can be destroyed before the
// context itself is. Objects bound to one context can be owned from another (an instance holds
// idle upstream connections of every proxy thread, and handlers queued to any thread keep it):
// at exit every context's handlers go first, the contexts last (proxy::server::~server and
// app/main.cpp), so that nothing outlives the context its sockets belong to.
#pragma once

#include <boost/asio/io_context.hpp>

namespace wakegate {

class closable_context : public boost::asio::io_context {
 public:
  using io_context::io_context;
  // Destroys, without running them, the handlers it holds (execution_context::shutdown; Asio
  // does it again, then finding nothing, at destruction). Only once no thread runs it.
  void destroy_handlers() { shutdown(); }
};

}  // namespace wakegate
