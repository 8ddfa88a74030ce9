// Localserve (doc/behaviour.md "localserve"): a local test server for
// applications. The session consults this policy instead of branching on
// the mode itself: no checks over DNS, any sender, one account for every
// recipient, and special localparts that make a command fail as told.
#pragma once
#include <string>
#include <string_view>

#include "config/config.h"

namespace tern::server {

struct LocalserveFailure {
	int code = 0;          // 0: no failure by code
	bool timeout = false;  // never answer (for an hour)
	// The model's text for a failure by code.
	std::string failure_text() const {
		return "failure with code " + std::to_string(code) + " due to special localpart";
	}
};

// A localpart ending in "temperror" → 451, "permerror" → 550, "timeout" →
// timeout, or in three digits 400–600 → that code.
LocalserveFailure localserve_failure(std::string_view localpart);

class LocalservePolicy {
public:
	explicit LocalservePolicy(const config::Config& cfg) : cfg_(&cfg) {}
	bool active() const { return cfg_->localserve; }
	// The port-25 checks that ask DNS (HELO name, the sender domain's MX,
	// SPF, iprev): none in localserve, where nothing is looked up.
	bool checks_over_dns() const { return !active(); }
	// A submitter may send as any address.
	bool any_sender() const { return active(); }
	// The account every recipient goes to; nullptr outside localserve.
	const config::Account* sole_account() const {
		return active() && !cfg_->accounts.empty() ? &cfg_->accounts.begin()->second : nullptr;
	}
	// What a special localpart asks of MAIL ("mailfrom…") or RCPT
	// ("rcptto…"): only localparts starting with `prefix` count; nothing
	// outside localserve.
	LocalserveFailure command_failure(std::string_view prefix, std::string_view localpart) const {
		if (!active() || !localpart.starts_with(prefix)) return {};
		return localserve_failure(localpart);
	}

private:
	const config::Config* cfg_;
};

}  // namespace tern::server
