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
std::string dkim_signatures(const config::Config& cfg, const decide::SubmissionHeaderChecks& from,
                            const std::string& added_headers, const std::string& header, const MessageFile& file,
                            size_t body_offset, std::time_t now) {
	std::string out;
	std::vector<mailauth::dkim::SignOptions> signers = dkim_sign_options(cfg, from.from_domain, from.from_localpart,
	                                                                     now);
	if (signers.empty()) return out;
	std::string error;
	auto parsed = message::parse_header_section(added_headers + header, &error);
	// Every way signing fails counts as the model's "dkimsign" server
	// error (tern_smtpserver_errors_total, thread-safe).
	if (!parsed) {
		log::error("dkim sign: parsing header", {{"error", error}});
		core::stats().count_error("dkimsign");
		return out;
	}
	for (const auto& opts : signers) {
		auto hash = file.body_hash(body_offset, opts.body_canon, mailauth::dkim::HashAlg::sha256);
		if (!hash) {
			log::error("dkim sign: reading message", {{"error", std::strerror(errno)}});
			core::stats().count_error("dkimsign");
			continue;
		}
		auto sig = mailauth::dkim::sign(opts, parsed->fields, *hash, &error);
		if (!sig) {
			log::error("dkim sign",
			           {{"domain", opts.domain}, {"selector", opts.selector}, {"error", error}});
			core::stats().count_error("dkimsign");
			continue;
		}
		out += *sig;
	}
	return out;
}

}  // namespace

namespace {

// The metric label of a refused header (tern_smtpserver_submission_total).
core::SubmissionRefusal refusal_label(decide::HeaderProblem problem) {
	switch (problem) {
	case decide::HeaderProblem::none: break;
	case decide::HeaderProblem::bad_message: return core::SubmissionRefusal::badmessage;
	case decide::HeaderProblem::bad_from: return core::SubmissionRefusal::badfrom;
	case decide::HeaderProblem::bad_header: return core::SubmissionRefusal::badheader;
	}
	return core::SubmissionRefusal::other;
}

// doc/behaviour.md §8 step 5: the daily limits from the outgoing history.
std::optional<SmtpError> check_send_limits(const SubmissionInput& in, core::SubmissionRefusal& refusal) {
	if (!in.env) return std::nullopt;
	std::optional<decide::SendLimits> limits = decide::send_limits_for(*in.cfg, in.account, in.default_limits);
	if (!limits) return std::nullopt;
	try {
		store::SendLimitVerdict v = in.env->check_send_limits(
		    in.account, in.recipients, in.now, limits->messages_per_day, limits->first_time_recipients_per_day);
		if (v.messages_reached)
			refusal = core::SubmissionRefusal::messagelimiterror;
		else if (v.first_time_reached)
			refusal = core::SubmissionRefusal::recipientlimiterror;
		return decide::send_limit_refusal(*limits, v.messages_reached, v.first_time_reached);
	} catch (const std::exception& e) {
		log::error("checking send limits", {{"account", in.account}, {"error", e.what()}});
		return SmtpError{451, std::string(se::sys_other0), "error processing"};
	}
}

}  // namespace

SubmissionResult prepare_submission(const SubmissionInput& in) {
	SubmissionResult res;
	const config::Config& cfg = *in.cfg;
	MessageFile file(in.message_path);
	if (!file.ok()) {
		res.error = SmtpError{451, std::string(se::sys_other0),
		                      "error reading message: " + std::string(std::strerror(errno))};
		return res;
	}
	auto header = file.read_header();
	if (!header) {
		res.error = SmtpError{550, std::string(se::msg_content_other0),
		                      "cannot parse header or From address: header too large"};
		res.refusal = core::SubmissionRefusal::badmessage;
		return res;
	}
	// A header tern adds (sendmail's generated From) is read as part of the
	// message's own; the file's body then starts that much earlier.
	*header = in.extra_header + *header;
	std::string parse_error;
	auto section = message::parse_header_section(*header, &parse_error);
	if (!section) {
		res.error = SmtpError{550, std::string(se::msg_content_other0),
		                      "cannot parse header or From address: " + parse_error};
		res.refusal = core::SubmissionRefusal::badmessage;
		return res;
	}
	decide::SubmissionHeaderChecks checks = decide::check_submission_header(
	    cfg, *section, {in.account, in.check_from, in.hostname, in.now, in.host_users_may_write});
	res.from_domain = checks.from_domain;
	res.message_id = checks.message_id;
	res.error = checks.error;
	res.refusal = refusal_label(checks.problem);
	if (!res.error) res.error = check_send_limits(in, res.refusal);
	if (res.error) return res;
	std::string added = std::move(checks.added);
	// DKIM (RFC 6376) for the From domain, when it has keys.
	if (!cfg.localserve)
		added += dkim_signatures(cfg, checks, added, *header, file,
		                         section->body_offset - in.extra_header.size(), in.now);
	added += in.extra_header;
	if (in.smtp_auth) added += decide::submission_auth_results(in.hostname, in.mail_from, in.smtputf8);
	res.common_prefix = std::move(added);
	return res;
}

}  // namespace tern::server
