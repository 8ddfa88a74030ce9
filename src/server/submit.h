// The submission decision (doc/behaviour.md §8), the blocking part of it:
// runs on a worker thread after DATA, reading the message's header from the
// temp file, so the loop never touches the disk. Separate from the session
// so it can be tested without sockets.
#pragma once
#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/stats.h"
#include "decide/submission.h"
#include "smtp/reply.h"

namespace tern::store {
class Env;
}

namespace tern::server {

struct SubmissionInput {
	std::shared_ptr<const config::Config> cfg;
	std::string account;                  // authenticated account
	std::string message_path;             // the received message (temp file)
	std::string mail_from;                // as written into headers ("" = null)
	std::vector<std::string> recipients;  // forward paths, for the send limits
	std::string hostname;                 // global hostname (Message-Id, Auth-Results)
	bool smtputf8 = false;
	std::time_t now = 0;
	store::Env* env = nullptr;  // send limits (nullptr: not checked)
	// Local submission (sendmail.tern, src/server/local_submit.cpp):
	// header lines tern adds before the message's own (a generated From),
	// whether From must belong to `account` (a From of the host's own users
	// passing, decide::SubmissionHeaderInput), the daily limits when
	// `account` names no configured account (nullopt: none), and whether
	// the sender authenticated over SMTP (Authentication-Results).
	std::string extra_header;
	bool check_from = true;
	bool host_users_may_write = false;
	using Limits = decide::SendLimits;
	std::optional<Limits> default_limits;
	bool smtp_auth = true;
};

struct SubmissionResult {
	std::optional<smtp::SmtpError> error;
	core::SubmissionRefusal refusal = core::SubmissionRefusal::other;  // which check set `error`
	// Header lines common to every recipient's copy, after the per-recipient
	// Received: [Message-Id] [Date] [DKIM-Signature...] Authentication-Results.
	std::string common_prefix;
	std::string message_id;  // without <>
	std::string from_domain;
};

// Reads the header, applies decide::check_submission_header (From, no
// Return-Path, Message-Id and Date) and the daily send limits, DKIM-signs
// for the From domain's configured selectors, and adds the
// Authentication-Results line. Blocking: worker threads only.
SubmissionResult prepare_submission(const SubmissionInput& in);

}  // namespace tern::server
