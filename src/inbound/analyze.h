// The port-25 verdict as a pure function (doc/behaviour.md §9 "The
// analysis"): the facts the session gathered about one message for one
// destination in, accept or refuse out, with the reason token that goes
// into the delivery log line, the delivery metric and the stored copy.
#pragma once
#include <optional>
#include <string>

namespace tern::inbound {

// The SPF result for the MAIL FROM identity, as far as the analysis cares.
enum class SpfVerdict { none, neutral, pass, fail, softfail, temperror, permerror };

// What reputation() concluded from the destination mailbox's history.
struct ReputationAnswer {
	bool error = false;           // the history could not be read
	bool conclusive = false;      // decides on its own
	bool junk = false;            // leaning junk (decides only when conclusive)
	std::string method = "none";  // which step decided: msgfromfull, ..., ip3, none
};

// The optional Bayesian junk filter of the account.
struct JunkFilterAnswer {
	bool open_error = false;      // the filter's data could not be opened
	bool classify_error = false;  // the message could not be classified
	double probability = 0;       // 0 = ham .. 1 = spam
	double threshold = 0.95;      // configured threshold
	double jitter = 0;            // uniform in [-0.05, 0.05), chosen by the caller
};

struct SubjectPassFacts {
	bool configured = false;   // the account has a subject-pass period
	bool token_valid = false;  // the Subject holds a valid, unexpired token
	std::string new_token;     // a fresh token for this sender, for the 550
};

struct MessageFacts {
	bool dmarc_used = false;    // a DMARC record applied (pct chose to use it)
	bool dmarc_reject = false;  // its policy (quarantine included) rejects
	bool dmarc_pass = false;
	SpfVerdict spf_mailfrom = SpfVerdict::none;  // SPF result for the MAIL FROM identity
	bool iprev_pass = false;
	// A DMARC aggregate or TLS report for a report destination that passed
	// the conditions for keeping it (the caller parsed it).
	bool report_kept = false;
	ReputationAnswer reputation;
	std::optional<JunkFilterAnswer> junk_filter;  // absent: no filter configured
	SubjectPassFacts subject_pass;
	// The first healthy DNSBL zone that lists the client, empty when none.
	std::string dnsbl_listed_zone;
};

// The reason of a message accepted with nothing against it.
inline constexpr const char* no_bad_signals = "no-bad-signals";

struct Verdict {
	bool accept = false;
	int code = 0;        // for a refusal: 451, 550
	std::string secode;  // "3.0", "7.26", "7.1"
	std::string text;    // reply text of a refusal
	std::string reason;  // reason token (no-bad-signals, dmarc-policy, ...)
	bool dnsbl_listed = false;
};

// The decision order of doc/behaviour.md §9, step by step.
Verdict analyze(const MessageFacts& facts);

// Whether the first-time-sender delay applies to an accepted verdict: only
// when nothing at all is known about the sender.
bool first_time_delay_applies(const Verdict& verdict);

}  // namespace tern::inbound
