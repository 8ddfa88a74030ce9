// A DNS check started before the message needs it: iprev when a port-25
// session starts, SPF and the MAIL FROM domain's DMARC record when MAIL
// FROM is accepted, the From domain's DMARC record as soon as the From
// header has streamed in, when it names another domain (doc/design.md
// "Early lookups"). By the time the analysis needs them their answers are
// usually in, so the message waits only for the checks that depend on its
// whole content (DKIM keys).
//
// The resolver's callback holds the shared EarlyLookup, never the
// connection; whoever waits for the result registers through get(), whose
// callback must reach the connection through its handle as every async
// completion does. Loop thread only. The holder serves any result a
// session may come to wait for after the work started (the history records
// of its copies, server/deliver.cpp).
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailauth/dmarc.h"
#include "mailauth/iprev.h"
#include "mailauth/spf.h"

namespace tern::server {

template <class T>
class EarlyLookup {
public:
	// Stores the result and runs the waiters, in order.
	void set(T value) {
		value_ = std::move(value);
		std::vector<std::function<void(const T&)>> waiting;
		waiting.swap(waiters_);
		for (auto& w : waiting) w(*value_);
	}
	// Runs `f` with the result: at once when it is in, else when it arrives.
	void get(std::function<void(const T&)> f) {
		if (value_)
			f(*value_);
		else
			waiters_.push_back(std::move(f));
	}
	bool ready() const { return value_.has_value(); }

private:
	std::optional<T> value_;
	std::vector<std::function<void(const T&)>> waiters_;
};

struct SpfOutcome {
	mailauth::SpfReceived received;
	std::string explanation;
};

using EarlyIprev = EarlyLookup<mailauth::IprevResult>;
// The arguments it was started with, to tell whether it still applies.
struct EarlySpf {
	mailauth::SpfArgs args;
	EarlyLookup<SpfOutcome> lookup;
};

// The DMARC record of a domain (lower-cased): the MAIL FROM domain's, or the
// From domain's seen while DATA streamed in; the analysis uses it only when
// the message's From names that domain.
struct EarlyDmarc {
	std::string domain;
	EarlyLookup<mailauth::DmarcLookup> lookup;
};

}  // namespace tern::server
