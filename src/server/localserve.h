// Localserve's special localparts (doc/behaviour.md "localserve"): applications can
// test their error handling by addressing mail to them.
#pragma once
#include <string_view>

namespace tern::server {

struct LocalserveFailure {
	int code = 0;          // 0: no failure by code
	bool timeout = false;  // never answer (for an hour)
};

// A localpart ending in "temperror" → 451, "permerror" → 550, "timeout" →
// timeout, or in three digits 400–600 → that code.
LocalserveFailure localserve_failure(std::string_view localpart);

}  // namespace tern::server
