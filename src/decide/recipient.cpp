#include "decide/recipient.h"

#include "smtp/dsn_params.h"
#include "smtp/reply.h"

namespace tern::decide {

namespace se = smtp::se;

namespace {

RecipientDecision refuse(Recipient rcpt, std::string_view secode, std::string text) {
	RecipientDecision d;
	d.refused = true;
	d.code = 550;
	d.secode = std::string(secode);
	d.text = std::move(text);
	d.recipient = std::move(rcpt);
	return d;
}

// The recipient as the client named it, before any lookup.
Recipient named_recipient(const smtp::RcptArgs& r, const RecipientContext& ctx) {
	Recipient rcpt;
	rcpt.postmaster = r.postmaster;
	rcpt.notify = r.notify;
	if (r.orcpt) rcpt.orcpt = smtp::orcpt_to_stored(*r.orcpt);
	if (r.postmaster) {
		rcpt.address.localpart = "postmaster";
		rcpt.display = "postmaster@" + ctx.listener_hostname;
	} else {
		rcpt.address = r.to;
		rcpt.display = ctx.smtputf8 ? rcpt.address.to_string() : rcpt.address.to_ascii_string();
	}
	return rcpt;
}

}  // namespace

smtp::SmtpError all_failed_reply(const std::vector<DeliverError>& errors) {
	bool same = true;
	bool permanent = false;
	std::string joined;
	for (const auto& e : errors) {
		if (e.code != errors[0].code || e.secode != errors[0].secode) same = false;
		if (e.code >= 500) permanent = true;
		if (!joined.empty()) joined += "\n";
		joined += e.text;
	}
	if (same) return smtp::SmtpError{errors[0].code, errors[0].secode, joined};
	std::string lines;
	for (const auto& e : errors)
		lines += std::to_string(e.code) + " " + smtp::enhanced_code(e.code, e.secode) + " " + e.text + "\n";
	lines += "multiple errors";
	return smtp::SmtpError{permanent ? 554 : 451, std::string(se::sys_other0), lines};
}

RecipientDecision resolve_recipient(const config::Config& cfg, const smtp::RcptArgs& r, const RecipientContext& ctx) {
	Recipient rcpt = named_recipient(r, ctx);
	if (cfg.localserve) {
		const auto& acc = cfg.accounts.begin()->second;
		rcpt.local = true;
		rcpt.account = acc.name;
		rcpt.mailbox = "INBOX";
		return {false, 0, "", "", std::move(rcpt)};
	}
	if (rcpt.address.ip) {
		if (!ctx.submission)
			return refuse(std::move(rcpt), se::addr_bad_dest_mailbox1, "not accepting email for ip");
		return {false, 0, "", "", std::move(rcpt)};
	}
	auto res = cfg.resolve_recipient(rcpt.address.localpart, r.postmaster ? "" : rcpt.address.domain.ascii);
	switch (res.kind) {
	case config::Config::RcptKind::local:
		rcpt.local = true;
		rcpt.account = res.account->name;
		rcpt.mailbox = res.mailbox;
		break;
	case config::Config::RcptKind::foreign_domain:
		if (!ctx.submission)
			return refuse(std::move(rcpt), se::addr_bad_dest_mailbox1, "not accepting email for domain");
		break;
	case config::Config::RcptKind::unknown_user:
		// RFC 5321 3.5.3 lets a server keep quiet about which users exist:
		// on port 25 the failure shows only after DATA.
		if (ctx.submission) return refuse(std::move(rcpt), se::addr_bad_dest_mailbox1, "no such user");
		break;
	}
	return {false, 0, "", "", std::move(rcpt)};
}

}  // namespace tern::decide
