// Everything an integration test needs: the wakegate binary, the test app, HTTP, admin, waits.
#pragma once

#include "tests/support/admin.hpp"
#include "tests/support/config_yaml.hpp"
#include "tests/support/harness.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"
