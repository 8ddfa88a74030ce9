// The port-25 decision assembled from facts (doc/behaviour.md §9): the
// session runs the lookups and the history reads; these pure functions turn
// their results into the analysis facts, the Authentication-Results field,
// each account's verdict, the copies to write and the errors to report, and
// the reasons counted for delivered recipients.
#pragma once
#include <array>
#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "decide/recipient.h"
#include "inbound/analyze.h"
#include "inbound/delivery_rate.h"
#include "inbound/rejects.h"
#include "inbound/reputation.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/iprev.h"
#include "mailauth/spf.h"
#include "smtp/parser.h"
#include "util/ipaddr.h"

namespace tern::decide {

// What the checks of a received message found: its From, iprev, SPF, DKIM
// and DMARC.
struct MessageChecks {
	mailauth::SpfArgs spf_args;
	std::string from_domain;  // "" when From did not parse
	std::string from_localpart;
	mailauth::IprevResult iprev;
	mailauth::SpfReceived spf;
	std::string spf_explanation;
	std::vector<mailauth::dkim::Result> dkim;
	// Set when the header section could not be read, so no signature was
	// looked at: Authentication-Results says dkim=none with it as reason.
	std::string dkim_error;
	mailauth::DmarcResult dmarc;

	// The domain SPF evaluated (RFC 7489 6.6.2): MAIL FROM's, or the HELO
	// name's for a null sender; "" when SPF checked nothing.
	std::string spf_domain() const;
};

// The analysis' inputs that do not depend on the destination account.
struct SenderFacts {
	inbound::MessageFacts facts;
	inbound::MessageIdentity identity;
};

// The junk filter (facts.junk_filter), a kept report (facts.report_kept)
// and subject-pass (facts.subject_pass) stay at their "not known" values;
// each is filled per account. `ip_masks`: the client address at /32 /26
// /21 (IPv6 /64 /48 /32).
SenderFacts gather_sender_facts(const MessageChecks& checks, const std::array<std::string, 3>& ip_masks,
                                const smtp::HelloArg& hello, const std::optional<smtp::Address>& mail_from);

// The Authentication-Results field of a port-25 copy (RFC 8601): iprev,
// DKIM, SPF and DMARC, under `authserv_id`. Under SMTPUTF8 an
// internationalized domain of SPF or DKIM is written in its Unicode form
// with the ASCII form as a comment (doc/behaviour.md §7).
std::string authentication_results(const MessageChecks& checks, const std::string& authserv_id, const IpAddr& remote_ip,
                                   bool smtputf8);

// The delivery-rate limits' refusal: 452 4.2.2 with their text.
inbound::Verdict rate_limit_verdict(std::string text);

// One destination account's answer and what its history held.
struct AccountDecision {
	inbound::Verdict verdict;                  // the analysis's, inbound::analyze()
	std::vector<inbound::RejectCopy> rejects;  // the account's Rejects copies before this message
	bool history_error = false;
	// What the analysis's refusal does to the account's Rejects mailbox,
	// decided once by settle_rejects() for both the delivery-rate counts and
	// the plan of copies; none while the history is unread (no copy kept,
	// nothing removed) or when the analysis accepts.
	std::optional<inbound::RejectsPlan> rejects_plan;
	// The model checks the delivery-rate limits per recipient, after the
	// copies of the recipients before it (inbound::first_rate_refusal): the
	// account's recipients from the rate_limited_from-th on (0: all of them)
	// get rate_refusal instead of the analysis's verdict.
	std::optional<inbound::Verdict> rate_refusal;
	size_t rate_limited_from = 0;

	// For the account's nth recipient (0-based, in transaction order).
	bool rate_limited(size_t nth) const { return rate_refusal && nth >= rate_limited_from; }
	const inbound::Verdict& verdict_for(size_t nth) const { return rate_limited(nth) ? *rate_refusal : verdict; }
	// Whether some recipient of the account is refused, and the refusal its
	// first refused recipient gets.
	bool refuses_any() const { return !verdict.accept || rate_refusal.has_value(); }
	const inbound::Verdict& first_refusal() const { return verdict.accept ? *rate_refusal : verdict_for(0); }
	// What the copies of the account's recipients add to its delivery-rate
	// counts, in the model's per-recipient order: each recipient's copy when
	// accepted, else the one Rejects copy when it is kept.
	inbound::CopiesCounted copies_counted() const;
};
// Decides rejects_plan from the analysis's verdict and the account's
// Rejects copies (inbound::plan_reject); called once the history was read.
void settle_rejects(AccountDecision& d, const std::string& message_id, const std::string& sha256, bool keep_rejects,
                    int64_t now);
using AccountDecisions = std::map<std::string, AccountDecision>;  // by account name

struct VerdictSummary {
	std::vector<std::string> refused_accounts;
	bool first_time_delay = false;  // some account knows nothing about the sender
};
VerdictSummary summarize_verdicts(const AccountDecisions& decisions);

// One copy to write: a recipient's, or an account's Rejects copy.
struct PlannedCopy {
	size_t recipient = 0;  // index in the transaction's recipients
	std::string account;
	std::string reason;         // the verdict's reason token (X-Tern-Reason)
	bool rejects_copy = false;  // to the account's Rejects mailbox, always its own Maildir
	bool seen = false;          // stored Seen: a kept DMARC/TLS report, or a Rejects copy
};

struct InboundCopyPlan {
	std::vector<PlannedCopy> copies;
	std::vector<DeliverError> errors;  // refused and unknown recipients
	size_t unknown_users = 0;
	std::vector<std::string> refusal_reasons;  // one per refused local recipient
	// Rejects copies to remove (account → unique names): copies past their
	// age that a refused message's plan makes room with, and copies of
	// this same message that its delivery makes obsolete.
	std::map<std::string, std::vector<std::string>> rejects_expired, rejects_superseded;
};

struct CopyPlanInput {
	std::string message_id;
	std::set<std::string> seen_recipients;  // a report was kept for them
};

// The copies of a port-25 message (doc/behaviour.md §7, §9 "Rejects"): one
// per recipient whose account accepted it; for an account that refused it,
// the error and at most one Rejects copy.
InboundCopyPlan plan_inbound_copies(const std::vector<Recipient>& recipients, const AccountDecisions& decisions,
                                    const CopyPlanInput& in);

// The Rejects copies to remove once a message's copies are written: the
// expired ones, and those the message makes obsolete except for accounts
// one of whose recipients failed (`errors`): until the message is in
// their mailbox, its Rejects copy is their only one.
using RejectsRemovals = std::map<std::string, std::vector<std::string>>;  // account → unique names
RejectsRemovals rejects_to_remove(const RejectsRemovals& expired, const RejectsRemovals& superseded,
                                  const std::vector<Recipient>& recipients, const std::vector<DeliverError>& errors);

// The reason of each delivered recipient (not in `errors`), in order.
std::vector<std::string> delivered_reasons(const std::vector<Recipient>& recipients, const AccountDecisions& decisions,
                                           const std::vector<DeliverError>& errors);
// The distinct reasons, sorted, comma-separated (the delivery log line).
std::string join_reasons(const std::vector<std::string>& reasons);

}  // namespace tern::decide
