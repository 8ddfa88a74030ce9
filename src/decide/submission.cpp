#include "decide/submission.h"

#include "message/auth_results.h"
#include "message/submission.h"
#include "util/strings.h"

namespace tern::decide {

using smtp::SmtpError;
namespace se = smtp::se;

namespace {

SmtpError content_error(std::string text) {
	return SmtpError{550, std::string(se::msg_content_other0), std::move(text)};
}

// Message-Id and Date when missing (RFC 6409 8.3, 8.2). The seed treats a
// present but empty field as missing.
void add_missing_fields(const message::HeaderSection& section, const SubmissionHeaderInput& in,
                        SubmissionHeaderChecks& out) {
	std::string message_id = message::header_value(section, "Message-Id").value_or("");
	if (message_id.empty()) {
		out.message_id = message::make_message_id(in.hostname);
		out.added += message::message_id_header(out.message_id);
	} else {
		out.message_id = message_id;
		if (message_id.size() >= 2 && message_id.front() == '<' && message_id.back() == '>')
			out.message_id = message_id.substr(1, message_id.size() - 2);
	}
	if (message::header_value(section, "Date").value_or("").empty())
		out.added += message::date_header(in.now, message::local_utc_offset(in.now));
}

}  // namespace

SubmissionHeaderChecks check_submission_header(const config::Config& cfg, const message::HeaderSection& section,
                                               const SubmissionHeaderInput& in) {
	SubmissionHeaderChecks out;
	message::FromResult from = message::parse_single_from(section);
	if (!from.ok) {
		out.error = content_error("cannot parse header or From address: " + from.error);
		out.problem = HeaderProblem::bad_message;
		return out;
	}
	out.from_domain = from.address.domain.ascii;
	out.from_localpart = from.address.localpart;
	if (in.check_from) {
		// The From address must reach the sender's own account as a
		// recipient would: the postmaster account may write as postmaster
		// at the host name (the model's From check takes the postmaster
		// forms RCPT takes; its MAIL FROM check does not). localserve's
		// one account owns every address, so there any From passes
		// (doc/behaviour.md D46).
		config::Config::RcptResult owner = cfg.resolve_recipient(from.address.localpart,
		                                                         from.address.domain.ascii);
		const config::Account* acc = owner.kind == config::Config::RcptKind::local ? owner.account : nullptr;
		// Only where the host name is no hosted domain: there every address
		// is one, and stays checked.
		const bool host_user = in.host_users_may_write &&
		    owner.kind == config::Config::RcptKind::foreign_domain && !from.address.ip &&
		    iequals(from.address.domain.ascii, cfg.hostname);
		if (!host_user && (!acc || acc->name != in.account)) {
			out.error = SmtpError{550, std::string(se::pol_delivery_not_auth1),
			                      "must match authenticated user"};
			out.problem = HeaderProblem::bad_from;
			return out;
		}
	}
	// RFC 5321 4.4: Return-Path is added by the final delivery, never by the sender.
	if (message::has_header(section, "Return-Path")) {
		out.error = content_error("message must not have Return-Path header");
		out.problem = HeaderProblem::bad_header;
		return out;
	}
	add_missing_fields(section, in, out);
	return out;
}

std::optional<SendLimits> send_limits_for(const config::Config& cfg, const std::string& account,
                                          const std::optional<SendLimits>& defaults) {
	if (cfg.localserve) return std::nullopt;
	auto it = cfg.accounts.find(account);
	if (it == cfg.accounts.end()) return defaults;
	return SendLimits{it->second.max_outgoing_messages_per_day, it->second.max_first_time_recipients_per_day};
}

std::optional<SmtpError> send_limit_refusal(const SendLimits& limits, bool messages_reached, bool first_time_reached) {
	if (messages_reached)
		return SmtpError{
		    451, std::string(se::pol_delivery_not_auth1),
		    "max number of messages (" + std::to_string(limits.messages_per_day) +
			") over past 24h reached, try increasing per-account setting MaxOutgoingMessagesPerDay"};
	if (first_time_reached)
		return SmtpError{
		    451, std::string(se::pol_delivery_not_auth1),
		    "max number of new/first-time recipients (" + std::to_string(limits.first_time_recipients_per_day) +
			") over past 24h reached, try increasing per-account setting MaxFirstTimeRecipientsPerDay"};
	return std::nullopt;
}

std::string submission_auth_results(const std::string& authserv_id, const std::string& mail_from, bool smtputf8) {
	std::string ascii_form;
	if (smtputf8)
		if (std::optional<smtp::Address> a = smtp::parse_address(mail_from);
		    a && !a->ip && a->domain.unicode != a->domain.ascii)
			ascii_form = a->to_ascii_string();
	message::AuthMethod auth{"auth", "pass", "", "", {{"smtp", "mailfrom", mail_from, true, ascii_form}}};
	return message::build_authentication_results(authserv_id, "", {auth});
}

std::vector<SubmittedCopy> submission_copies(const std::vector<Recipient>& recipients, message::ReceivedInfo ri,
                                             const std::string& common_prefix) {
	std::vector<SubmittedCopy> copies;
	for (const auto& rc : recipients) {
		ri.for_rcpt = rc.ascii_address();
		SubmittedCopy c;
		c.to = rc.display;
		c.domain = rc.address.lookup_domain();
		c.notify = rc.notify;
		c.orcpt = rc.orcpt;
		c.prefix = message::build_received(ri) + common_prefix;
		copies.push_back(std::move(c));
	}
	return copies;
}

}  // namespace tern::decide
