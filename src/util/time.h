// Time formatting shared by logs, the queue and diagnostics.
#pragma once
#include <cstdint>
#include <string>

namespace tern {

// "2026-11-25T17:22:09Z" (ISO 8601 / RFC 3339, UTC, whole seconds).
std::string iso8601_utc(int64_t unix_seconds);

}  // namespace tern
