# Warnings for the project's own targets (not for dependencies).
add_library(wakegate_warnings INTERFACE)
target_compile_options(wakegate_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
  -Woverloaded-virtual -Wimplicit-fallthrough)
