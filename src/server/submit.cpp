#include "server/submit.h"

#include "server/dkim_sign.h"
#include "server/message_file.h"

#include <cerrno>
#include <cstring>

#include "core/stats.h"
#include "mailauth/dkim.h"
#include "message/auth_results.h"
#include "message/header_parse.h"
#include "message/headers.h"
#include "message/submission.h"
#include "store/db.h"
#include "util/log.h"

namespace tern::server {

using smtp::SmtpError;
namespace se = smtp::se;

namespace {

// DKIM-Signature fields for the From domain's selectors in `sign` order
// (RFC 6376 5), over the added and the original header fields and the
// body streamed from the file.
std::string dkim_signatures(const config::Config& cfg, const std::string& domain, const std::string& added_headers,
                            const std::string& header, const MessageFile& file, size_t body_offset, std::time_t now) {
	std::string out;
	std::string error;
	auto parsed = message::parse_header_section(added_headers + header, &error);
	if (!parsed) {
		log::error("dkim sign: parsing header", {{"error", error}});
		return out;
	}
	for (const auto& opts : dkim_sign_options(cfg, domain, now)) {
		auto hash = file.body_hash(body_offset, opts.body_canon, mailauth::dkim::HashAlg::sha256);
		if (!hash) {
			log::error("dkim sign: reading message", {{"error", std::strerror(errno)}});
			continue;
		}
		auto sig = mailauth::dkim::sign(opts, parsed->fields, *hash, &error);
		if (!sig) {
			log::error("dkim sign", {{"domain", opts.domain}, {"selector", opts.selector}, {"error", error}});
			core::stats().count_error("dkimsign");  // tern_smtpserver_errors_total (thread-safe)
			continue;
		}
		out += *sig;
	}
	return out;
}

}  // namespace

SubmissionResult prepare_submission(const SubmissionInput& in) {
	SubmissionResult res;
	const config::Config& cfg = *in.cfg;
	MessageFile file(in.message_path);
	if (!file.ok()) {
		res.error = SmtpError{451, std::string(se::sys_other0), "error reading message: " + std::string(std::strerror(errno))};
		return res;
	}
	auto header = file.read_header();
	if (!header) {
		res.error = SmtpError{550, std::string(se::msg_content_other0), "cannot parse header or From address: header too large"};
		res.refusal = core::SubmissionRefusal::badmessage;
		return res;
	}
	// A header tern adds (sendmail's generated From) is read as part of the
	// message's own; the file's body then starts that much earlier.
	*header = in.extra_header + *header;
	std::string parse_error;
	auto section = message::parse_header_section(*header, &parse_error);
	if (!section) {
		res.error = SmtpError{550, std::string(se::msg_content_other0), "cannot parse header or From address: " + parse_error};
		res.refusal = core::SubmissionRefusal::badmessage;
		return res;
	}
	// RFC 6409 8.1: the sender may only use its own identities.
	message::FromResult from = message::parse_single_from(*section);
	if (!from.ok) {
		res.error = SmtpError{550, std::string(se::msg_content_other0), "cannot parse header or From address: " + from.error};
		res.refusal = core::SubmissionRefusal::badmessage;
		return res;
	}
	res.from_domain = from.address.domain.ascii;
	if (!cfg.localserve && in.check_from) {
		const config::Account* acc = cfg.account_for_address(from.address.localpart, from.address.domain.ascii);
		if (!acc || acc->name != in.account) {
			res.error = SmtpError{550, std::string(se::pol_delivery_not_auth1), "must match authenticated user"};
			res.refusal = core::SubmissionRefusal::badfrom;
			return res;
		}
	}
	// RFC 5321 4.4: Return-Path is added by the final delivery, never by the sender.
	if (message::has_header(*section, "Return-Path")) {
		res.error = SmtpError{550, std::string(se::msg_content_other0), "message must not have Return-Path header"};
		res.refusal = core::SubmissionRefusal::badheader;
		return res;
	}

	std::string added;
	// RFC 6409 8.3 / 8.2: Message-Id and Date when missing.
	std::string message_id = message::header_value(*section, "Message-Id").value_or("");
	if (message_id.empty()) {
		res.message_id = message::make_message_id(in.hostname);
		added += message::message_id_header(res.message_id);
	} else {
		res.message_id = message_id;
		if (res.message_id.size() >= 2 && res.message_id.front() == '<' && res.message_id.back() == '>')
			res.message_id = res.message_id.substr(1, res.message_id.size() - 2);
	}
	if (message::header_value(*section, "Date").value_or("").empty())
		added += message::date_header(in.now, message::local_utc_offset(in.now));

	// doc/behaviour.md §8 step 5: daily limits from the outgoing history.
	if (!cfg.localserve && in.env) {
		auto acc_it = cfg.accounts.find(in.account);
		std::optional<SubmissionInput::Limits> limits = in.default_limits;
		if (acc_it != cfg.accounts.end())
			limits = SubmissionInput::Limits{acc_it->second.max_outgoing_messages_per_day,
			                                 acc_it->second.max_first_time_recipients_per_day};
		if (limits) {
			try {
				store::SendLimitVerdict v = in.env->check_send_limits(in.account, in.recipients, in.now, limits->messages_per_day,
				                                                      limits->first_time_recipients_per_day);
				if (v.messages_reached) {
					res.error = SmtpError{451, std::string(se::pol_delivery_not_auth1),
					                      "max number of messages (" + std::to_string(limits->messages_per_day) +
					                          ") over past 24h reached, try increasing per-account setting "
					                          "MaxOutgoingMessagesPerDay"};
					res.refusal = core::SubmissionRefusal::messagelimiterror;
					return res;
				}
				if (v.first_time_reached) {
					res.error = SmtpError{451, std::string(se::pol_delivery_not_auth1),
					                      "max number of new/first-time recipients (" +
					                          std::to_string(limits->first_time_recipients_per_day) +
					                          ") over past 24h reached, try increasing per-account setting "
					                          "MaxFirstTimeRecipientsPerDay"};
					res.refusal = core::SubmissionRefusal::recipientlimiterror;
					return res;
				}
			} catch (const std::exception& e) {
				log::error("checking send limits", {{"account", in.account}, {"error", e.what()}});
				res.error = SmtpError{451, std::string(se::sys_other0), "error processing"};
				return res;
			}
		}
	}

	// DKIM (RFC 6376) for the From domain, when it has keys.
	if (!cfg.localserve)
		added += dkim_signatures(cfg, res.from_domain, added, *header, file, section->body_offset - in.extra_header.size(),
		                         in.now);
	added += in.extra_header;

	if (in.smtp_auth) {
		// RFC 8601 with RFC 4954's "auth" method: the sender authenticated.
		message::AuthMethod auth{"auth", "pass", "", "", {{"smtp", "mailfrom", in.mail_from, true, ""}}};
		added += message::build_authentication_results(in.hostname, "", {auth});
	}
	res.common_prefix = std::move(added);
	return res;
}

}  // namespace tern::server
