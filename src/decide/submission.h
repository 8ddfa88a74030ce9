// The submission decision (doc/behaviour.md §8) as pure functions: the
// header checks and fixes of a submitted message, the daily limits that
// apply, the Authentication-Results of an authenticated sender and the
// split into one copy per destination. The worker step reads the file and
// the history, signs, and applies these answers (server/submit.cpp).
#pragma once
#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "decide/recipient.h"
#include "message/header_parse.h"
#include "message/headers.h"
#include "smtp/reply.h"

namespace tern::decide {

struct SubmissionHeaderInput {
	std::string account;     // the authenticated account
	bool check_from = true;  // From must belong to `account` (in localserve, any: D46)
	std::string hostname;    // global hostname, for a generated Message-Id
	std::time_t now = 0;
	// sendmail(1): a From at the host name, when that is no hosted domain,
	// names one of the host's own users (cron writes "From: root"), not a
	// hosted address, and passes the From check (doc/behaviour.md
	// "sendmail(1)").
	bool host_users_may_write = false;
};

// Which rule a refused header broke.
enum class HeaderProblem { none, bad_message, bad_from, bad_header };

struct SubmissionHeaderChecks {
	std::optional<smtp::SmtpError> error;
	HeaderProblem problem = HeaderProblem::none;  // set with `error`
	std::string added;                            // Message-Id and Date fields when missing
	std::string message_id;                       // without <>
	std::string from_domain;                      // the From address' domain: the DKIM signing domain
	std::string from_localpart;                   // and its localpart: DKIM's i=
};

// RFC 6409 8.1: From names one address of the sender's own; RFC 5321 4.4:
// no Return-Path; RFC 6409 8.3 and 8.2: Message-Id and Date when missing.
SubmissionHeaderChecks check_submission_header(const config::Config& cfg, const message::HeaderSection& section,
                                               const SubmissionHeaderInput& in);

struct SendLimits {
	int64_t messages_per_day;
	int64_t first_time_recipients_per_day;
};

// The daily limits of `account` (doc/behaviour.md §8 step 5): its own when
// it is a configured account, else `defaults`; never in localserve.
std::optional<SendLimits> send_limits_for(const config::Config& cfg, const std::string& account,
                                          const std::optional<SendLimits>& defaults);

// The 451 for a reached limit, nullopt when neither was reached.
std::optional<smtp::SmtpError> send_limit_refusal(const SendLimits& limits, bool messages_reached,
                                                  bool first_time_reached);

// RFC 8601 with RFC 4954's "auth" method: the sender authenticated.
// `mail_from` as the transaction writes it; under SMTPUTF8 an address with
// an internationalized domain gets its ASCII form as a comment, as the
// model writes it (doc/behaviour.md §7).
std::string submission_auth_results(const std::string& authserv_id, const std::string& mail_from, bool smtputf8);

// One copy of a submitted message: its destination and its header prefix
// (Received "for" the recipient, then the common fields).
struct SubmittedCopy {
	std::string to;
	std::string domain;  // ASCII domain, or the address literal
	uint8_t notify = 0;
	std::string orcpt;
	std::string prefix;
};
std::vector<SubmittedCopy> submission_copies(const std::vector<Recipient>& recipients, message::ReceivedInfo ri,
                                             const std::string& common_prefix);

}  // namespace tern::decide
