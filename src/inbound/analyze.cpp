#include "inbound/analyze.h"

#include "smtp/reply.h"

namespace tern::inbound {

namespace {

namespace se = smtp::se;

Verdict accepted(std::string reason) {
	Verdict v;
	v.accept = true;
	v.reason = std::move(reason);
	return v;
}

// Refusals are deliberately vague and temporary (doc/behaviour.md §9): a
// legitimate sender retries, a spammer learns nothing.
Verdict refused_vaguely(std::string reason) {
	return Verdict{false, 451, std::string(se::sys_other0), "error processing", std::move(reason), false};
}

// Reputation methods that only weigh authentication and addresses, not the
// user's own verdicts on this sender: SPF and iprev still count for them.
bool weak_method(const std::string& method) {
	return method == "dkimspf" || method == "ip1" || method == "ip2" || method == "ip3" || method == "none";
}

struct JunkOutcome {
	bool accept = true;
	std::string reason;
	bool offer_subject_pass = false;  // well under the threshold
};

std::optional<Verdict> junk_filter_step(const JunkFilterAnswer& jf, bool suspicious, JunkOutcome& out) {
	if (jf.open_error) return refused_vaguely("junk-filter-error");
	if (jf.classify_error) return refused_vaguely("junk-classify-error");
	double threshold = jf.threshold + jf.jitter;
	out.reason = "junk-content";
	// A client whose address does not resolve back gets the stricter bar.
	if (suspicious && threshold > 0.25) {
		threshold = 0.25;
		out.reason = "junk-content-strict";
	}
	out.accept = jf.probability <= threshold;
	out.offer_subject_pass = jf.probability < threshold - 0.2;
	return std::nullopt;
}

}  // namespace

Verdict analyze(const MessageFacts& f) {
	// Step 1 of the model (mailing-list rulesets) has no counterpart: tern's
	// destinations have no rulesets (doc/behaviour.md D40).
	if (f.dmarc_used && f.dmarc_reject)  // RFC 7489 6.6.2
		return Verdict{false,          550,  std::string(se::pol_dmarc26), "rejecting per dmarc policy",
		               "dmarc-policy", false};
	const ReputationAnswer& rep = f.reputation;
	if (rep.error) return refused_vaguely("reputation-error");
	if (rep.conclusive) return rep.junk ? refused_vaguely(rep.method) : accepted(rep.method);
	if (f.report_kept) return accepted("reporting");

	bool suspicious = false;
	if (weak_method(rep.method)) {
		if (f.spf_mailfrom == SpfVerdict::fail || f.spf_mailfrom == SpfVerdict::softfail)
			return refused_vaguely("spf-policy");
		suspicious = !f.iprev_pass;
		if (suspicious && rep.junk) return refused_vaguely("iprev");
	}
	if (f.subject_pass.configured && f.subject_pass.token_valid) return accepted("subjectpass");

	JunkOutcome junk;
	if (f.junk_filter)
		if (auto refusal = junk_filter_step(*f.junk_filter, suspicious, junk)) return *refusal;
	bool listed = false;
	if (junk.accept && !f.dnsbl_listed_zone.empty()) {
		junk.accept = false;
		junk.reason = "dns-blocklisted";
		listed = true;
	}
	if (junk.accept) return accepted(no_bad_signals);

	// A sender with a good DMARC record and no history at all may prove it is
	// a person by resending with the token in the subject.
	if (f.subject_pass.configured && f.dmarc_pass && rep.method == "none" && (listed || junk.offer_subject_pass)) {
		return Verdict{
		    false,
		    550,
		    std::string(se::pol_delivery_not_auth1),
		    "Your message resembles spam. If your email is legitimate, please send it again with the "
		    "following added to the email message subject: (pass:" +
			f.subject_pass.new_token + ")",
		    "give-subjectpass",
		    listed};
	}
	Verdict v = refused_vaguely(junk.reason);
	v.dnsbl_listed = listed;
	return v;
}

bool first_time_delay_applies(const Verdict& verdict) { return verdict.accept && verdict.reason == no_bad_signals; }

}  // namespace tern::inbound
