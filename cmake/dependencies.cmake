# All dependencies come from Debian 12 packages (see README "Building").
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json)
find_package(OpenSSL 3 REQUIRED)
find_package(yaml-cpp REQUIRED)

# Boost headers used everywhere, compiled the same way everywhere.
add_library(wakegate_boost INTERFACE)
target_link_libraries(wakegate_boost INTERFACE Boost::headers Boost::json Threads::Threads)
target_compile_definitions(wakegate_boost INTERFACE
  BOOST_ASIO_NO_DEPRECATED
  BOOST_BEAST_USE_STD_STRING_VIEW
  BOOST_ASIO_DISABLE_BOOST_COROUTINE
  # Asio keeps this many freed coroutine frames (and as many operations) per thread for reuse,
  # each up to about 1 KiB. The default, 2, is fewer than the frames a proxied request has
  # alive at once, so every request paid ~5 malloc/free pairs (docs/design.md, "The request path").
  BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
