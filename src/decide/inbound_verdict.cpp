#include "decide/inbound_verdict.h"

#include "mailauth/auth_methods.h"
#include "mailauth/publicsuffix.h"
#include "message/auth_results.h"
#include "smtp/reply.h"
#include "util/strings.h"

namespace tern::decide {

namespace se = smtp::se;

std::string MessageChecks::spf_domain() const {
	switch (spf.identity) {
	case mailauth::SpfReceived::Identity::mailfrom: return spf_args.mailfrom_domain;
	case mailauth::SpfReceived::Identity::helo: return spf_args.helo_domain;
	case mailauth::SpfReceived::Identity::none: break;
	}
	return {};
}

namespace {

inbound::SpfVerdict spf_verdict(mailauth::SpfStatus s) {
	switch (s) {
	case mailauth::SpfStatus::none: return inbound::SpfVerdict::none;
	case mailauth::SpfStatus::neutral: return inbound::SpfVerdict::neutral;
	case mailauth::SpfStatus::pass: return inbound::SpfVerdict::pass;
	case mailauth::SpfStatus::fail: return inbound::SpfVerdict::fail;
	case mailauth::SpfStatus::softfail: return inbound::SpfVerdict::softfail;
	case mailauth::SpfStatus::temperror: return inbound::SpfVerdict::temperror;
	case mailauth::SpfStatus::permerror: return inbound::SpfVerdict::permerror;
	}
	return inbound::SpfVerdict::none;
}

inbound::MessageFacts message_facts(const MessageChecks& c) {
	inbound::MessageFacts f;
	f.dmarc_used = c.dmarc.use;
	f.dmarc_reject = c.dmarc.reject;
	f.dmarc_pass = c.dmarc.status == mailauth::DmarcStatus::pass;
	// Only a result for the MAIL FROM identity counts (doc/behaviour.md §9).
	f.spf_mailfrom = c.spf.identity == mailauth::SpfReceived::Identity::mailfrom ? spf_verdict(c.spf.result)
										     : inbound::SpfVerdict::none;
	f.iprev_pass = c.iprev.status == mailauth::IprevStatus::pass;
	return f;
}

// The EHLO name is validated by an SPF pass for the HELO identity, or by
// iprev verifying exactly that name (RFC 8601 2.7.3).
bool ehlo_validated(const MessageChecks& c, const std::string& ehlo_domain) {
	if (ehlo_domain.empty()) return false;
	if (c.spf.identity == mailauth::SpfReceived::Identity::helo && c.spf.result == mailauth::SpfStatus::pass)
		return true;
	return c.iprev.status == mailauth::IprevStatus::pass && ascii_lower(c.iprev.name) == ehlo_domain;
}

}  // namespace

SenderFacts gather_sender_facts(const MessageChecks& c, const std::array<std::string, 3>& ip_masks,
                                const smtp::HelloArg& hello, const std::optional<smtp::Address>& mail_from) {
	SenderFacts out;
	out.facts = message_facts(c);
	inbound::MessageIdentity& m = out.identity;
	m.from_localpart = c.from_localpart;
	m.from_domain = ascii_lower(c.from_domain);
	m.from_org_domain = m.from_domain.empty() ? "" : mailauth::organizational_domain(m.from_domain);
	// RFC 7489 3.1: a From domain aligned, strictly or relaxed, with a
	// passing SPF or DKIM identity, whether or not the domain publishes a
	// DMARC record or what alignment its record asks for (doc/behaviour.md
	// §9: the model's "From validated").
	m.from_validated = !c.from_domain.empty() &&
	    mailauth::from_alignment(c.from_domain, c.dkim, c.spf.result, c.spf_domain()) != mailauth::Alignment::none;
	std::set<std::string> dkim;
	for (const auto& r : c.dkim)
		if (r.status == mailauth::dkim::Status::pass && !r.domain().empty())
			dkim.insert(ascii_lower(r.domain()));
	m.dkim_domains.assign(dkim.begin(), dkim.end());
	if (mail_from) {
		m.mailfrom_localpart = mail_from->localpart;
		m.mailfrom_domain = ascii_lower(mail_from->domain.ascii);
	}
	m.mailfrom_validated = c.spf.identity == mailauth::SpfReceived::Identity::mailfrom &&
	    c.spf.result == mailauth::SpfStatus::pass;
	if (!hello.ip) m.ehlo_domain = ascii_lower(hello.domain.ascii);
	m.ehlo_validated = ehlo_validated(c, m.ehlo_domain);
	m.ip1 = ip_masks[0];
	m.ip2 = ip_masks[1];
	m.ip3 = ip_masks[2];
	return out;
}

namespace {

// The model writes SPF's checked domain and a signature's d= and s= in the
// transaction's form, so under SMTPUTF8 an internationalized one is in
// Unicode with its ASCII form as the property's comment (RFC 6531 3.7.3
// allows UTF-8 in these fields only then). DMARC's header.from stays ASCII
// (doc/behaviour.md D25).
void use_unicode_forms(std::vector<message::AuthMethod>& methods) {
	for (message::AuthMethod& m : methods) {
		for (message::AuthProp& p : m.props) {
			bool domain = (p.type == "smtp" && (p.property == "mailfrom" || p.property == "helo")) ||
			    (p.type == "header" && (p.property == "d" || p.property == "s"));
			if (!domain) continue;
			std::optional<smtp::Domain> forms = smtp::parse_domain(p.value);
			if (!forms || forms->unicode == forms->ascii) continue;
			p.value = forms->unicode;
			p.comment = forms->ascii;
		}
	}
}

}  // namespace

std::string authentication_results(const MessageChecks& c, const std::string& authserv_id, const IpAddr& remote_ip,
                                   bool smtputf8) {
	std::vector<message::AuthMethod> methods;
	methods.push_back(mailauth::iprev_auth_method(c.iprev.status, remote_ip));
	for (auto& m : mailauth::dkim_auth_methods(c.dkim, c.dkim_error)) methods.push_back(std::move(m));
	methods.push_back(mailauth::spf_auth_method(c.spf.result, c.spf.identity, c.spf_domain()));
	methods.push_back(mailauth::dmarc_auth_method(c.dmarc));
	if (smtputf8) use_unicode_forms(methods);
	return message::build_authentication_results(authserv_id, "", methods);
}

inbound::Verdict rate_limit_verdict(std::string text) {
	return inbound::Verdict{false, 452, std::string(se::mailbox_full2), std::move(text), "rate-limited", false};
}

inbound::CopiesCounted AccountDecision::copies_counted() const {
	if (verdict.accept) return inbound::CopiesCounted::each_recipient;
	return rejects_plan && rejects_plan->store ? inbound::CopiesCounted::first_recipient
						   : inbound::CopiesCounted::none;
}

void settle_rejects(AccountDecision& d, const std::string& message_id, const std::string& sha256, bool keep_rejects,
                    int64_t now) {
	d.rejects_plan.reset();
	if (d.verdict.accept || d.history_error) return;
	d.rejects_plan = inbound::plan_reject(d.rejects, message_id, sha256, keep_rejects, now);
}

VerdictSummary summarize_verdicts(const AccountDecisions& decisions) {
	VerdictSummary s;
	for (const auto& [account, d] : decisions) {
		if (d.refuses_any()) s.refused_accounts.push_back(account);
		// Only a copy that is stored waits: not when the limits refuse every
		// recipient of the account.
		if (inbound::first_time_delay_applies(d.verdict) && !d.rate_limited(0)) s.first_time_delay = true;
	}
	return s;
}

namespace {

// RFC 5321 4.5.3.1.10 / the model: an unknown recipient is its own error,
// whatever the accounts decided (doc/behaviour.md §9: when all failed, one
// reply if the codes agree, else a list ending in "multiple errors").
DeliverError unknown_user_error(const Recipient& r) {
	return {r.display, 550, std::string(se::addr_bad_dest_mailbox1), true, "no such user"};
}

void add_removals(std::map<std::string, std::vector<std::string>>& removals, const std::string& account,
                  const std::vector<std::string>& names) {
	auto& remove = removals[account];
	remove.insert(remove.end(), names.begin(), names.end());
}

// A refused recipient (the nth of its account): its error, and one Rejects
// copy per account, only when the account's history could be read.
void plan_refusal(InboundCopyPlan& plan, size_t index, size_t nth, const Recipient& r, const AccountDecision& d,
                  std::set<std::string>& rejects_done) {
	const inbound::Verdict& v = d.verdict_for(nth);
	plan.refusal_reasons.push_back(v.reason);
	plan.errors.push_back({r.display, v.code, v.secode, v.code >= 500, v.text});
	// A delivery-rate refusal comes before the analysis, as in the model: it
	// keeps no Rejects copy (the limit is there to stop a mailbox filling).
	if (d.rate_limited(nth)) return;
	if (!d.rejects_plan || !rejects_done.insert(r.account).second) return;
	add_removals(plan.rejects_expired, r.account, d.rejects_plan->remove);
	if (d.rejects_plan->store) plan.copies.push_back({index, r.account, v.reason, true, true});
}

}  // namespace

InboundCopyPlan plan_inbound_copies(const std::vector<Recipient>& recipients, const AccountDecisions& decisions,
                                    const CopyPlanInput& in) {
	InboundCopyPlan plan;
	std::set<std::string> rejects_done;
	std::map<std::string, size_t> seen_of_account;  // recipients of each account so far
	for (size_t i = 0; i < recipients.size(); ++i) {
		const Recipient& r = recipients[i];
		if (!r.local) {
			++plan.unknown_users;
			plan.errors.push_back(unknown_user_error(r));
			continue;
		}
		const AccountDecision& d = decisions.at(r.account);
		const size_t nth = seen_of_account[r.account]++;
		if (!d.verdict_for(nth).accept) {
			plan_refusal(plan, i, nth, r, d, rejects_done);
			continue;
		}
		plan.copies.push_back({i, r.account, d.verdict.reason, false, in.seen_recipients.count(r.display) > 0});
		// A sender that retried after a temporary refusal: the earlier
		// Rejects copies of this message go.
		add_removals(plan.rejects_superseded, r.account, inbound::rejects_superseded(d.rejects, in.message_id));
	}
	return plan;
}

namespace {

// The recipients (as the client wrote them) that a delivery's errors name.
std::set<std::string> failed_recipients(const std::vector<DeliverError>& errors) {
	std::set<std::string> failed;
	for (const auto& e : errors) failed.insert(e.rcpt);
	return failed;
}

}  // namespace

RejectsRemovals rejects_to_remove(const RejectsRemovals& expired, const RejectsRemovals& superseded,
                                  const std::vector<Recipient>& recipients, const std::vector<DeliverError>& errors) {
	const std::set<std::string> failed = failed_recipients(errors);
	std::set<std::string> accounts_with_failures;
	for (const auto& r : recipients)
		if (r.local && failed.count(r.display)) accounts_with_failures.insert(r.account);
	RejectsRemovals removals = expired;
	for (const auto& [account, names] : superseded)
		if (!accounts_with_failures.count(account)) add_removals(removals, account, names);
	return removals;
}

std::vector<std::string> delivered_reasons(const std::vector<Recipient>& recipients, const AccountDecisions& decisions,
                                           const std::vector<DeliverError>& errors) {
	const std::set<std::string> failed = failed_recipients(errors);
	std::vector<std::string> reasons;
	for (const auto& r : recipients) {
		if (!r.local || failed.count(r.display)) continue;
		auto it = decisions.find(r.account);
		if (it != decisions.end()) reasons.push_back(it->second.verdict.reason);
	}
	return reasons;
}

std::string join_reasons(const std::vector<std::string>& reasons) {
	std::set<std::string> distinct(reasons.begin(), reasons.end());
	std::string out;
	for (const auto& reason : distinct) out += (out.empty() ? "" : ",") + reason;
	return out;
}

}  // namespace tern::decide
