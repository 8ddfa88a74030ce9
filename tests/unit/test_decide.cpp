// The session's decisions as pure functions (src/decide/): recipient
// resolution, the port-25 verdict assembly and the incoming DSN.
#include <doctest/doctest.h>

#include "config/config.h"
#include "decide/inbound_verdict.h"
#include "decide/incoming_dsn.h"
#include "decide/recipient.h"
#include "decide/submission.h"
#include "smtp/dsn_params.h"

using namespace tern;
using namespace tern::decide;

namespace {

std::shared_ptr<const config::Config> test_config(bool keep_rejects = false) {
	std::string keep = keep_rejects ? "true" : "false";
	return config::Config::load_text(R"({
		"hostname": "mail.example.org",
		"listeners": {"mx": {"hostname": "mx.example.org", "smtp": {}}},
		"domains": {"example.org": {"localpart_catchall_separator": "+"}},
		"accounts": {
			"alice": {"destinations": {"alice@example.org": {}, "lists@example.org": {"mailbox": "Lists"}},
			          "keep_rejects": )" +
	                                     keep + R"(},
			"bob": {"destinations": {"bob@example.org": {}}},
			"pm": {"destinations": {"pm@example.org": {}}}
		},
		"postmaster": {"account": "pm", "mailbox": "Postmaster"}
	})",
	                                 "tern.json", "/etc/tern");
}

smtp::RcptArgs rcpt(const std::string& args, bool smtputf8 = false) {
	smtp::ParseMode mode;
	mode.smtputf8 = smtputf8;
	smtp::Result<smtp::RcptArgs> r = smtp::parse_rcpt(" " + args, mode);
	REQUIRE_MESSAGE(r.ok(), "refused: " << r.error().text);
	return std::move(*r);
}

RecipientDecision port25(const config::Config& cfg, const std::string& args) {
	return resolve_recipient(cfg, rcpt(args), {"mx.example.org", false, false});
}

RecipientDecision submission(const config::Config& cfg, const std::string& args) {
	return resolve_recipient(cfg, rcpt(args), {"mail.example.org", true, false});
}

}  // namespace

TEST_CASE("decide recipient: a hosted address resolves to its account and mailbox") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<Alice+tag@Example.org>");
	CHECK_FALSE(d.refused);
	CHECK(d.recipient.local);
	CHECK(d.recipient.account == "alice");
	CHECK(d.recipient.mailbox == "INBOX");
	CHECK(d.recipient.display == "Alice+tag@example.org");  // the parser lowers the domain
	d = port25(*cfg, "TO:<lists@example.org>");
	CHECK(d.recipient.account == "alice");
	CHECK(d.recipient.mailbox == "Lists");
}

TEST_CASE("decide recipient: the bare <POSTMASTER> form reaches the postmaster, shown with the listener's name") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<Postmaster>");
	CHECK_FALSE(d.refused);
	CHECK(d.recipient.postmaster);
	CHECK(d.recipient.local);
	CHECK(d.recipient.account == "pm");
	CHECK(d.recipient.mailbox == "Postmaster");
	CHECK(d.recipient.display == "postmaster@mx.example.org");
}

TEST_CASE("decide recipient: an unknown user fails only after DATA on port 25, at once on submission") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<nobody@example.org>");
	CHECK_FALSE(d.refused);
	CHECK_FALSE(d.recipient.local);
	d = submission(*cfg, "TO:<nobody@example.org>");
	CHECK(d.refused);
	CHECK(d.code == 550);
	CHECK(d.secode == "1.1");
	CHECK(d.text == "no such user");
}

TEST_CASE("decide recipient: a foreign domain is relayed on submission, refused on port 25") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<someone@example.net>");
	CHECK(d.refused);
	CHECK(d.code == 550);
	CHECK(d.text == "not accepting email for domain");
	d = submission(*cfg, "TO:<someone@example.net>");
	CHECK_FALSE(d.refused);
	CHECK_FALSE(d.recipient.local);
	CHECK(d.recipient.display == "someone@example.net");
}

TEST_CASE("decide recipient: an address literal is refused on port 25 only") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<alice@[192.0.2.1]>");
	CHECK(d.refused);
	CHECK(d.text == "not accepting email for ip");
	CHECK_FALSE(submission(*cfg, "TO:<alice@[192.0.2.1]>").refused);
}

TEST_CASE("decide recipient: NOTIFY and ORCPT are kept with the recipient") {
	auto cfg = test_config();
	RecipientDecision d = port25(*cfg, "TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org");
	CHECK(d.recipient.notify == (smtp::notify_success | smtp::notify_failure));
	CHECK(d.recipient.orcpt == "rfc822;b@example.org");
}

TEST_CASE("decide recipient: localserve takes every address into its one account's INBOX") {
	config::Config cfg;
	cfg.localserve = true;
	cfg.hostname = "localhost";
	config::Account acc;
	acc.name = "tern";
	cfg.accounts["tern"] = acc;
	for (const char* args : {"TO:<anyone@example.com>", "TO:<x@[127.0.0.1]>", "TO:<postmaster>"}) {
		CAPTURE(args);
		RecipientDecision d = port25(cfg, args);
		CHECK_FALSE(d.refused);
		CHECK(d.recipient.local);
		CHECK(d.recipient.account == "tern");
		CHECK(d.recipient.mailbox == "INBOX");
	}
}

namespace {

Recipient local_rcpt(const std::string& display, const std::string& account) {
	Recipient r;
	r.address = *smtp::parse_address(display);
	r.display = display;
	r.local = true;
	r.account = account;
	r.mailbox = "INBOX";
	return r;
}

Recipient unknown_rcpt(const std::string& display) {
	Recipient r;
	r.address = *smtp::parse_address(display);
	r.display = display;
	return r;
}

AccountDecision accepted(const std::string& reason) {
	AccountDecision d;
	d.verdict.accept = true;
	d.verdict.reason = reason;
	return d;
}

AccountDecision refused(int code, const std::string& secode, const std::string& reason) {
	AccountDecision d;
	d.verdict = inbound::Verdict{false, code, secode, "refused for " + reason, reason, false};
	return d;
}

MessageChecks passing_checks() {
	MessageChecks c;
	c.spf_args.mailfrom_domain = "sender.example";
	c.spf_args.helo_domain = "mta.sender.example";
	c.spf.result = mailauth::SpfStatus::pass;
	c.spf.identity = mailauth::SpfReceived::Identity::mailfrom;
	c.iprev.status = mailauth::IprevStatus::pass;
	c.iprev.name = "MTA.sender.example";
	c.from_domain = "Sender.Example";
	c.from_localpart = "news";
	return c;
}

smtp::HelloArg hello_name(const std::string& name) {
	smtp::HelloArg h;
	h.domain.ascii = name;
	return h;
}

}  // namespace

TEST_CASE("decide verdict: the sender facts come from the checks, MAIL FROM and the EHLO name") {
	MessageChecks c = passing_checks();
	smtp::Address from;
	from.localpart = "bounces";
	from.domain.ascii = "Sender.Example";
	SenderFacts s = gather_sender_facts(c, {"192.0.2.1/32", "192.0.2.0/26", "192.0.0.0/21"},
	                                    hello_name("mta.sender.example"), from);
	CHECK(s.facts.spf_mailfrom == inbound::SpfVerdict::pass);
	CHECK(s.facts.iprev_pass);
	CHECK_FALSE(s.facts.dmarc_pass);
	CHECK(s.identity.from_domain == "sender.example");
	CHECK(s.identity.from_localpart == "news");
	CHECK(s.identity.mailfrom_domain == "sender.example");
	CHECK(s.identity.mailfrom_validated);
	// iprev verified exactly the EHLO name (case aside).
	CHECK(s.identity.ehlo_domain == "mta.sender.example");
	CHECK(s.identity.ehlo_validated);
	CHECK(s.identity.ip2 == "192.0.2.0/26");
	SUBCASE("an SPF result for the HELO identity is no MAIL FROM verdict") {
		c.spf.identity = mailauth::SpfReceived::Identity::helo;
		c.iprev.status = mailauth::IprevStatus::fail;
		s = gather_sender_facts(c, {}, hello_name("mta.sender.example"), std::nullopt);
		CHECK(s.facts.spf_mailfrom == inbound::SpfVerdict::none);
		CHECK_FALSE(s.identity.mailfrom_validated);
		CHECK(s.identity.ehlo_validated);  // SPF pass for the HELO identity
	}
	SUBCASE("a HELO name the checks did not verify is not validated") {
		c.iprev.name = "other.example";
		s = gather_sender_facts(c, {}, hello_name("mta.sender.example"), from);
		CHECK_FALSE(s.identity.ehlo_validated);
	}
	SUBCASE("an address-literal EHLO gives no EHLO domain") {
		smtp::HelloArg h;
		h.ip = IpAddr::parse("192.0.2.1");
		s = gather_sender_facts(c, {}, h, from);
		CHECK(s.identity.ehlo_domain.empty());
		CHECK_FALSE(s.identity.ehlo_validated);
	}
}

TEST_CASE("decide verdict: From is validated by alignment alone, without a DMARC record") {
	MessageChecks c = passing_checks();  // SPF pass for sender.example, no DMARC record
	smtp::Address from;
	from.localpart = "bounces";
	from.domain.ascii = "sender.example";
	auto validated = [&] {
		return gather_sender_facts(c, {}, hello_name("mta.sender.example"), from).identity.from_validated;
	};
	CHECK_FALSE(c.dmarc.aligned_spf_pass);
	CHECK(validated());  // strict: the SPF domain is the From domain
	c.from_domain = "news.sender.example";
	CHECK(validated());  // relaxed: the same organizational domain
	c.from_domain = "other.example";
	CHECK_FALSE(validated());
	c.spf.result = mailauth::SpfStatus::softfail;
	c.from_domain = "sender.example";
	CHECK_FALSE(validated());  // SPF did not pass and no DKIM signature
	mailauth::dkim::Result sig;
	sig.status = mailauth::dkim::Status::pass;
	sig.signature.emplace();
	sig.signature->domain = "sender.example";
	c.dkim.push_back(sig);
	CHECK(validated());  // a passing DKIM signature of the From domain
	c.dkim[0].status = mailauth::dkim::Status::fail;
	CHECK_FALSE(validated());
	c.from_domain.clear();  // no From address
	c.dkim[0].status = mailauth::dkim::Status::pass;
	CHECK_FALSE(validated());
}

TEST_CASE("decide verdict: Authentication-Results names iprev, SPF and DMARC under the authserv-id") {
	MessageChecks c = passing_checks();
	std::string ar = authentication_results(c, "mail.example.org", *IpAddr::parse("192.0.2.1"), false);
	CHECK(ar.starts_with("Authentication-Results: mail.example.org;"));
	CHECK(ar.find("iprev=pass") != std::string::npos);
	CHECK(ar.find("spf=pass") != std::string::npos);
	CHECK(ar.find("smtp.mailfrom=sender.example") != std::string::npos);
	CHECK(ar.find("dmarc=none") != std::string::npos);
	CHECK(ar.ends_with("\r\n"));
}

TEST_CASE("decide verdict: under SMTPUTF8 SPF's and DKIM's IDN domains are in Unicode with the ASCII form as comment") {
	MessageChecks c = passing_checks();
	c.spf_args.mailfrom_domain = "xn--bcher-kva.example";
	mailauth::dkim::Signature sig;
	sig.domain = "xn--bcher-kva.example";
	sig.selector = "s1";
	mailauth::dkim::Result r;
	r.status = mailauth::dkim::Status::pass;
	r.signature = sig;
	c.dkim.push_back(r);
	c.dmarc.status = mailauth::DmarcStatus::pass;
	c.dmarc.domain = "xn--bcher-kva.example";
	const IpAddr ip = *IpAddr::parse("192.0.2.1");
	auto unfolded = [](std::string text) {
		for (size_t at; (at = text.find("\r\n\t")) != std::string::npos;) text.replace(at, 3, " ");
		return text;
	};
	std::string ar = unfolded(authentication_results(c, "mail.example.org", ip, true));
	INFO(ar);
	CHECK(ar.find(" smtp.mailfrom=b\xc3\xbc"
	              "cher.example (xn--bcher-kva.example)") != std::string::npos);
	CHECK(ar.find(" header.d=b\xc3\xbc"
	              "cher.example (xn--bcher-kva.example) header.s=s1 ") != std::string::npos);
	// DMARC's header.from stays ASCII, with no comment (doc/behaviour.md D25).
	CHECK(ar.find(" header.from=xn--bcher-kva.example\r\n") != std::string::npos);
	// Without SMTPUTF8 every domain is ASCII, with no comments.
	std::string ascii = unfolded(authentication_results(c, "mail.example.org", ip, false));
	CHECK(ascii.find("smtp.mailfrom=xn--bcher-kva.example;") != std::string::npos);
	CHECK(ascii.find("header.d=xn--bcher-kva.example header.s=s1") != std::string::npos);
}

TEST_CASE("decide verdict: a delivery-rate refusal overrides the analysis from its recipient on") {
	inbound::Verdict v = rate_limit_verdict("max messages per minute from ip reached");
	CHECK_FALSE(v.accept);
	CHECK(v.code == 452);
	CHECK(v.secode == "2.2");
	CHECK(v.reason == "rate-limited");
	CHECK(v.text == "max messages per minute from ip reached");
	AccountDecision d = accepted("reputation-good");
	CHECK_FALSE(d.refuses_any());
	d.rate_refusal = v;
	d.rate_limited_from = 1;
	CHECK(d.verdict_for(0).accept);
	CHECK_FALSE(d.rate_limited(0));
	CHECK(d.verdict_for(1).code == 452);
	CHECK(d.rate_limited(2));
	CHECK(d.refuses_any());
	CHECK(d.first_refusal().reason == "rate-limited");
	AccountDecision refused_too = refused(451, "3.0", "reputation-error");
	refused_too.rate_refusal = v;
	refused_too.rate_limited_from = 1;
	CHECK(refused_too.first_refusal().reason == "reputation-error");
	refused_too.rate_limited_from = 0;
	CHECK(refused_too.first_refusal().reason == "rate-limited");
}

TEST_CASE("decide verdict: the summary lists refusing accounts and whether the first-time delay applies") {
	AccountDecisions decisions{{"alice", accepted("no-bad-signals")}, {"bob", refused(550, "7.1", "dmarc-policy")}};
	VerdictSummary s = summarize_verdicts(decisions);
	CHECK(s.refused_accounts == std::vector<std::string>{"bob"});
	CHECK(s.first_time_delay);
	decisions["alice"] = accepted("reputation-good");
	CHECK_FALSE(summarize_verdicts(decisions).first_time_delay);
}

namespace {

// The decisions as the worker leaves them once the accounts' histories were
// read: each refusal's Rejects plan settled.
void settle_all(AccountDecisions& decisions, const config::Config& cfg, const std::string& message_id,
                const std::string& sha256, int64_t now) {
	for (auto& [account, d] : decisions)
		settle_rejects(d, message_id, sha256, cfg.accounts.at(account).keep_rejects, now);
}

}  // namespace

TEST_CASE("decide verdict: copies for accepting accounts, errors and one Rejects copy for refusing ones") {
	auto cfg = test_config();
	std::vector<Recipient> rcpts{local_rcpt("alice@example.org", "alice"), unknown_rcpt("nobody@example.org"),
	                             local_rcpt("bob@example.org", "bob"), local_rcpt("bob+x@example.org", "bob")};
	AccountDecisions decisions{{"alice", accepted("no-bad-signals")},
	                           {"bob", refused(451, "3.0", "reputation-error")}};
	CopyPlanInput in;
	in.message_id = "<m1@sender.example>";
	in.seen_recipients = {"alice@example.org"};
	settle_all(decisions, *cfg, in.message_id, "ab", 1000);
	CHECK_FALSE(decisions["alice"].rejects_plan);  // accepted: nothing to plan
	InboundCopyPlan plan = plan_inbound_copies(rcpts, decisions, in);
	REQUIRE(plan.copies.size() == 2);
	CHECK(plan.copies[0].recipient == 0);
	CHECK(plan.copies[0].account == "alice");
	CHECK_FALSE(plan.copies[0].rejects_copy);
	CHECK(plan.copies[0].seen);  // a kept report
	CHECK(plan.copies[0].reason == "no-bad-signals");
	CHECK(plan.copies[1].recipient == 2);
	CHECK(plan.copies[1].rejects_copy);  // once for bob, although two recipients
	CHECK(plan.copies[1].seen);
	CHECK(plan.copies[1].reason == "reputation-error");
	REQUIRE(plan.errors.size() == 3);
	CHECK(plan.errors[0].rcpt == "nobody@example.org");
	CHECK(plan.errors[0].code == 550);  // alice accepted: the unknown user has its own error
	CHECK(plan.errors[0].text == "no such user");
	CHECK(plan.errors[1].rcpt == "bob@example.org");
	CHECK(plan.errors[1].code == 451);
	CHECK_FALSE(plan.errors[1].user_error);
	CHECK(plan.unknown_users == 1);
	CHECK(plan.refusal_reasons == std::vector<std::string>{"reputation-error", "reputation-error"});
	// The rate counts and the plan read the same decision.
	CHECK(decisions["alice"].copies_counted() == inbound::CopiesCounted::each_recipient);
	CHECK(decisions["bob"].copies_counted() == inbound::CopiesCounted::first_recipient);
	SUBCASE("without a readable history no Rejects copy is kept") {
		decisions["bob"].rejects_plan.reset();  // no history: never settled
		plan = plan_inbound_copies(rcpts, decisions, in);
		CHECK(plan.copies.size() == 1);
		CHECK(decisions["bob"].copies_counted() == inbound::CopiesCounted::none);
		decisions["bob"].history_error = true;
		settle_all(decisions, *cfg, in.message_id, "ab", 1000);
		CHECK_FALSE(decisions["bob"].rejects_plan);
		CHECK(plan_inbound_copies(rcpts, decisions, in).copies.size() == 1);
	}
	SUBCASE("an earlier Rejects copy of the same message is stored once") {
		decisions["bob"].rejects.push_back({"1.abc.host", "<m1@sender.example>", "ab", 900});
		settle_all(decisions, *cfg, in.message_id, "ab", 1000);
		plan = plan_inbound_copies(rcpts, decisions, in);
		CHECK(plan.copies.size() == 1);
		CHECK(decisions["bob"].copies_counted() == inbound::CopiesCounted::none);
	}
	SUBCASE("a delivered retry removes the Rejects copies of the same message") {
		decisions["alice"].rejects.push_back({"1.abc.host", "<m1@sender.example>", "ab", 900});
		plan = plan_inbound_copies(rcpts, decisions, in);
		const std::vector<std::string> names{"1.abc.host"};
		CHECK(plan.rejects_superseded["alice"] == names);
		// Once stored: not while alice's copy failed (disk full), when the
		// Rejects copy is still her only one.
		CHECK(rejects_to_remove(plan.rejects_expired, plan.rejects_superseded, rcpts, {})["alice"] == names);
		std::vector<DeliverError> failed{{"alice@example.org", 452, "3.1", false, "insufficient storage"}};
		CHECK(rejects_to_remove(plan.rejects_expired, plan.rejects_superseded, rcpts, failed).count("alice") ==
		      0);
		std::vector<DeliverError> other_failed{{"bob@example.org", 451, "3.0", false, "refused"}};
		CHECK(rejects_to_remove(plan.rejects_expired, plan.rejects_superseded, rcpts, other_failed)["alice"] ==
		      names);
	}
	SUBCASE("the copies a refusal's Rejects plan lets expire go although the refusal is an error") {
		REQUIRE(decisions["bob"].rejects_plan);
		decisions["bob"].rejects_plan->remove = {"0.old.host"};
		plan = plan_inbound_copies(rcpts, decisions, in);
		CHECK(plan.rejects_expired["bob"] == std::vector<std::string>{"0.old.host"});
		CHECK(rejects_to_remove(plan.rejects_expired, plan.rejects_superseded, rcpts, plan.errors)["bob"] ==
		      std::vector<std::string>{"0.old.host"});
	}
}

TEST_CASE("decide verdict: an unknown user is 550 5.1.1 no such user whatever the accounts decided") {
	// The model: its own error per unknown recipient; when all failed with
	// different codes the reply lists them (doc/behaviour.md §9).
	std::vector<Recipient> rcpts{local_rcpt("bob@example.org", "bob"), unknown_rcpt("nobody@example.org")};
	AccountDecisions decisions{{"bob", refused(451, "3.0", "reputation-error")}};
	InboundCopyPlan plan = plan_inbound_copies(rcpts, decisions, {});
	REQUIRE(plan.errors.size() == 2);
	CHECK(plan.errors[1].code == 550);
	CHECK(plan.errors[1].secode == "1.1");
	CHECK(plan.errors[1].user_error);
	CHECK(plan.errors[1].text == "no such user");
}

TEST_CASE("decide verdict: a delivery-rate refusal keeps no Rejects copy") {
	// In the model the rate check comes before the analysis and the Rejects
	// step: a limit meant to stop a mailbox filling does not fill Rejects.
	auto cfg = test_config();
	std::vector<Recipient> rcpts{local_rcpt("bob@example.org", "bob")};
	AccountDecisions decisions{{"bob", refused(452, "2.2", "rate-limited")}};
	CopyPlanInput in;
	in.message_id = "<m2@sender.example>";
	settle_all(decisions, *cfg, in.message_id, "cd", 1000);
	CHECK(plan_inbound_copies(rcpts, decisions, in).copies.size() == 1);  // an analysis refusal: kept
	decisions["bob"].rate_refusal = rate_limit_verdict("more than 2 messages in past 1m0s from your ip/network");
	InboundCopyPlan plan = plan_inbound_copies(rcpts, decisions, in);
	CHECK(plan.copies.empty());
	REQUIRE(plan.errors.size() == 1);
	CHECK(plan.errors[0].code == 452);
}

TEST_CASE("decide verdict: the delivery-rate limits refuse an account's recipients from the one that passes them") {
	// The model stores each recipient's copy before it checks the next.
	std::vector<Recipient> rcpts{local_rcpt("bob@example.org", "bob"), local_rcpt("alice@example.org", "alice"),
	                             local_rcpt("bob+x@example.org", "bob"), local_rcpt("bob+y@example.org", "bob")};
	AccountDecisions decisions{{"alice", accepted("reputation-good")}, {"bob", accepted("reputation-good")}};
	decisions["bob"].rate_refusal = rate_limit_verdict("more than 2 messages in past 1m0s from your ip/network");
	decisions["bob"].rate_limited_from = 2;  // bob's third recipient
	InboundCopyPlan plan = plan_inbound_copies(rcpts, decisions, {});
	REQUIRE(plan.copies.size() == 3);
	CHECK(plan.copies[0].recipient == 0);
	CHECK(plan.copies[1].recipient == 1);
	CHECK(plan.copies[2].recipient == 2);
	REQUIRE(plan.errors.size() == 1);
	CHECK(plan.errors[0].rcpt == "bob+y@example.org");
	CHECK(plan.errors[0].code == 452);
	CHECK(plan.errors[0].text == "more than 2 messages in past 1m0s from your ip/network");
	CHECK(plan.refusal_reasons == std::vector<std::string>{"rate-limited"});
	VerdictSummary s = summarize_verdicts(decisions);
	CHECK(s.refused_accounts == std::vector<std::string>{"bob"});
	// Every recipient limited: no copy waits for the first-time delay.
	decisions = {{"bob", accepted("no-bad-signals")}};
	CHECK(summarize_verdicts(decisions).first_time_delay);
	decisions["bob"].rate_refusal = rate_limit_verdict("x");
	CHECK_FALSE(summarize_verdicts(decisions).first_time_delay);
}

TEST_CASE("decide verdict: delivered reasons skip failed and unknown recipients") {
	std::vector<Recipient> rcpts{local_rcpt("alice@example.org", "alice"), unknown_rcpt("nobody@example.org"),
	                             local_rcpt("bob@example.org", "bob"), local_rcpt("pm@example.org", "pm")};
	AccountDecisions decisions{{"alice", accepted("reputation-good")},
	                           {"bob", accepted("no-bad-signals")},
	                           {"pm", accepted("reputation-good")}};
	std::vector<DeliverError> errors{{"bob@example.org", 451, "3.0", false, "error processing"}};
	std::vector<std::string> reasons = delivered_reasons(rcpts, decisions, errors);
	CHECK(reasons == std::vector<std::string>{"reputation-good", "reputation-good"});
	CHECK(join_reasons(reasons) == "reputation-good");
	CHECK(join_reasons({"no-bad-signals", "dkim-good", "no-bad-signals"}) == "dkim-good,no-bad-signals");
	CHECK(join_reasons({}).empty());
}

namespace {

IncomingDsnFacts dsn_facts() {
	IncomingDsnFacts f;
	Recipient a = local_rcpt("alice@example.org", "alice");
	Recipient b = local_rcpt("bob@example.org", "bob");
	b.orcpt = "rfc822;b@example.org";
	f.recipients = {a, b};
	f.mail_from = "sender@sender.example";
	f.envid = "env-1";
	f.hostname = "mail.example.org";
	f.hello = "mta.sender.example";
	f.remote_ip_literal = "[192.0.2.1]";
	f.now = 1700000000;
	return f;
}

}  // namespace

TEST_CASE("decide dsn: nothing failed and nobody asked for SUCCESS: no DSN") {
	CHECK_FALSE(incoming_dsn(dsn_facts()).has_value());
}

TEST_CASE("decide dsn: a failed recipient is reported to the sender from the recipient domain's postmaster") {
	IncomingDsnFacts f = dsn_facts();
	f.errors = {{"bob@example.org", 452, "3.1", false, "error processing"}};
	auto dsn = incoming_dsn(f);
	REQUIRE(dsn.has_value());
	CHECK(dsn->from == "postmaster@example.org");
	CHECK(dsn->to == "sender@sender.example");
	CHECK(dsn->subject == std::string(message::subject_incoming_failure));
	CHECK(dsn->envid == "env-1");
	CHECK(dsn->reporting_mta == "mail.example.org");
	CHECK(dsn->received_from_mta.find("mta.sender.example") != std::string::npos);
	CHECK_FALSE(dsn->message_id.empty());
	REQUIRE(dsn->recipients.size() == 1);
	CHECK(dsn->recipients[0].final_recipient == "bob@example.org");
	CHECK(dsn->recipients[0].original_recipient == "rfc822;b@example.org");
	CHECK(dsn->recipients[0].action == "failed");
	CHECK(dsn->recipients[0].status == "4.3.1");
	CHECK(dsn->text_body.find("bob@example.org") != std::string::npos);
}

TEST_CASE("decide dsn: the text names a recipient with its domain's ASCII form, as the model writes it") {
	IncomingDsnFacts f = dsn_facts();
	f.smtputf8 = true;
	Recipient idn;
	idn.address = *smtp::parse_address(
	    "j\xc3\xb6rg@b\xc3\xbc"
	    "cher.example");
	idn.display = idn.address.to_string();
	f.recipients.push_back(idn);
	f.errors = {{idn.display, 550, "1.1", true, "no such user"}};
	auto dsn = incoming_dsn(f);
	REQUIRE(dsn.has_value());
	CHECK(dsn->text_body.find("\tj\xc3\xb6rg@xn--bcher-kva.example\n") != std::string::npos);
	CHECK(dsn->text_body.find("b\xc3\xbc"
	                          "cher") == std::string::npos);
	// The delivery-status part keeps the address; compose_dsn writes it as RFC 6533 says.
	REQUIRE(dsn->recipients.size() == 1);
	CHECK(dsn->recipients[0].final_recipient == idn.display);
}

TEST_CASE("decide dsn: NOTIFY decides which recipients are reported") {
	IncomingDsnFacts f = dsn_facts();
	f.errors = {{"bob@example.org", 550, "1.1", true, "no such user"}};
	SUBCASE("NOTIFY=NEVER on the failed recipient: no DSN") {
		f.recipients[1].notify = smtp::notify_never;
		CHECK_FALSE(incoming_dsn(f).has_value());
	}
	SUBCASE("NOTIFY=SUCCESS on a delivered recipient adds a delivered entry") {
		f.recipients[0].notify = smtp::notify_success;
		auto dsn = incoming_dsn(f);
		REQUIRE(dsn.has_value());
		REQUIRE(dsn->recipients.size() == 2);
		CHECK(dsn->recipients[0].action == "failed");
		CHECK(dsn->recipients[1].final_recipient == "alice@example.org");
		CHECK(dsn->recipients[1].action == "delivered");
		CHECK(dsn->recipients[1].status == "2.0.0");
	}
	SUBCASE("only successes: the subject says delivered") {
		f.errors.clear();
		f.recipients[0].notify = smtp::notify_success;
		auto dsn = incoming_dsn(f);
		REQUIRE(dsn.has_value());
		CHECK(dsn->subject == std::string(message::subject_delivered));
		REQUIRE(dsn->recipients.size() == 1);
		CHECK(dsn->recipients[0].action == "delivered");
	}
}

namespace {

message::HeaderSection header(const std::string& text) {
	auto section = message::parse_header_section(text);
	REQUIRE(section.has_value());
	return *section;
}

SubmissionHeaderInput as_alice() { return {"alice", true, "mail.example.org", 1700000000}; }

}  // namespace

TEST_CASE("decide submission: a From of the sender's own gets Message-Id and Date when missing") {
	auto cfg = test_config();
	SubmissionHeaderChecks c = check_submission_header(*cfg, header("From: Alice <alice@example.org>\r\n\r\n"),
	                                                   as_alice());
	CHECK_FALSE(c.error);
	CHECK(c.from_domain == "example.org");
	CHECK_FALSE(c.message_id.empty());
	CHECK(c.added.find("Message-Id: <" + c.message_id + ">") != std::string::npos);
	CHECK(c.added.find("Date: ") != std::string::npos);
	SUBCASE("present ones are kept, the id without its brackets") {
		c = check_submission_header(
		    *cfg,
		    header(
			"From: alice@example.org\r\nMessage-Id: <x1@example.org>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n"),
		    as_alice());
		CHECK_FALSE(c.error);
		CHECK(c.message_id == "x1@example.org");
		CHECK(c.added.empty());
	}
}

TEST_CASE("decide submission: From of another account, a bad From or a Return-Path are refused") {
	auto cfg = test_config();
	SubmissionHeaderChecks c = check_submission_header(*cfg, header("From: bob@example.org\r\n\r\n"), as_alice());
	REQUIRE(c.error);
	CHECK(c.error->code == 550);
	CHECK(c.error->secode == "7.1");
	CHECK(c.error->text == "must match authenticated user");
	CHECK(c.problem == HeaderProblem::bad_from);
	SubmissionHeaderInput unchecked = as_alice();
	unchecked.check_from = false;
	CHECK_FALSE(check_submission_header(*cfg, header("From: bob@example.org\r\n\r\n"), unchecked).error);

	c = check_submission_header(*cfg, header("From: a@example.org, b@example.org\r\n\r\n"), as_alice());
	REQUIRE(c.error);
	CHECK(c.error->secode == "6.0");
	CHECK(c.error->text.starts_with("cannot parse header or From address: "));
	CHECK(c.problem == HeaderProblem::bad_message);

	c = check_submission_header(*cfg, header("From: alice@example.org\r\nReturn-Path: <x@example.org>\r\n\r\n"),
	                            as_alice());
	REQUIRE(c.error);
	CHECK(c.error->text == "message must not have Return-Path header");
	CHECK(c.problem == HeaderProblem::bad_header);
}

TEST_CASE("decide submission: localserve takes any From, and still one From and no Return-Path (D46)") {
	auto cfg = config::Config::localserve_config("/tmp/tern-localserve-unused");
	SubmissionHeaderInput as_tern;
	as_tern.account = "tern";
	as_tern.hostname = cfg->hostname;
	for (const char* from :
	     {"From: tern@localhost\r\n\r\n", "From: other@localhost\r\n\r\n", "From: noreply@app.example\r\n\r\n"}) {
		CAPTURE(from);
		CHECK_FALSE(check_submission_header(*cfg, header(from), as_tern).error);
	}
	SubmissionHeaderChecks c = check_submission_header(*cfg, header("From: a@app.example, b@app.example\r\n\r\n"),
	                                                   as_tern);
	REQUIRE(c.error);
	CHECK(c.problem == HeaderProblem::bad_message);
	c = check_submission_header(*cfg, header("From: a@app.example\r\nReturn-Path: <a@app.example>\r\n\r\n"),
	                            as_tern);
	REQUIRE(c.error);
	CHECK(c.problem == HeaderProblem::bad_header);
}

TEST_CASE("decide submission: the postmaster account may write From postmaster at the host name, others may not") {
	auto cfg = test_config();
	SubmissionHeaderInput as_pm = as_alice();
	as_pm.account = "pm";
	for (const char* from : {"From: postmaster@mail.example.org\r\n\r\n", "From: PostMaster@mx.example.org\r\n\r\n",
	                         "From: <postmaster@example.org>\r\n\r\n", "From: pm@example.org\r\n\r\n"}) {
		CAPTURE(from);
		CHECK_FALSE(check_submission_header(*cfg, header(from), as_pm).error);
		SubmissionHeaderChecks c = check_submission_header(*cfg, header(from), as_alice());
		REQUIRE(c.error);
		CHECK(c.error->text == "must match authenticated user");
	}
	// Still nobody's: an unknown name at a hosted domain or at the host name.
	CHECK(check_submission_header(*cfg, header("From: nobody@example.org\r\n\r\n"), as_pm).error);
	CHECK(check_submission_header(*cfg, header("From: root@mail.example.org\r\n\r\n"), as_pm).error);
}

TEST_CASE("decide submission: through sendmail, a From of the host's own users passes; hosted addresses are checked") {
	auto cfg = test_config();
	SubmissionHeaderInput local = as_alice();
	local.host_users_may_write = true;
	// Cron's From, completed with the host name, which is no hosted domain.
	for (const char* from : {"From: root@mail.example.org (Cron Daemon)\r\n\r\n",
	                         "From: alice@MAIL.example.org\r\n\r\n", "From: www-data@mail.example.org\r\n\r\n"}) {
		CAPTURE(from);
		CHECK_FALSE(check_submission_header(*cfg, header(from), local).error);
	}
	// The postmaster at the host name is an account's address: not alice's.
	CHECK(check_submission_header(*cfg, header("From: postmaster@mail.example.org\r\n\r\n"), local).error);
	CHECK(check_submission_header(*cfg, header("From: bob@example.org\r\n\r\n"), local).error);
	CHECK(check_submission_header(*cfg, header("From: root@elsewhere.example\r\n\r\n"), local).error);
	// A host name that is a hosted domain has only hosted addresses.
	CHECK(check_submission_header(*cfg, header("From: ceo@example.org\r\n\r\n"), local).error);
	auto hosted = test_config();
	auto own_host = std::make_shared<config::Config>(*hosted);
	own_host->hostname = "example.org";
	local.hostname = "example.org";
	SubmissionHeaderChecks c = check_submission_header(*own_host, header("From: ceo@example.org\r\n\r\n"), local);
	REQUIRE(c.error);
	CHECK(c.error->text == "must match authenticated user");
}

TEST_CASE("decide submission: daily limits come from the account, else the defaults") {
	auto cfg = test_config();
	auto limits = send_limits_for(*cfg, "alice", std::nullopt);
	REQUIRE(limits);
	CHECK(limits->messages_per_day == cfg->accounts.at("alice").max_outgoing_messages_per_day);
	CHECK_FALSE(send_limits_for(*cfg, "nobody", std::nullopt));
	auto defaults = send_limits_for(*cfg, "nobody", SendLimits{5, 2});
	REQUIRE(defaults);
	CHECK(defaults->first_time_recipients_per_day == 2);

	CHECK_FALSE(send_limit_refusal({5, 2}, false, false));
	auto refusal = send_limit_refusal({5, 2}, true, true);
	REQUIRE(refusal);
	CHECK(refusal->code == 451);
	CHECK(refusal->text.starts_with("max number of messages (5) over past 24h reached"));
	refusal = send_limit_refusal({5, 2}, false, true);
	REQUIRE(refusal);
	CHECK(refusal->text.starts_with("max number of new/first-time recipients (2)"));
}

TEST_CASE("decide submission: one copy per recipient, with its domain and a Received for it") {
	auto cfg = test_config();
	std::vector<Recipient> rcpts{submission(*cfg, "TO:<bob@example.net> NOTIFY=NEVER").recipient,
	                             submission(*cfg, "TO:<x@[192.0.2.7]>").recipient};
	message::ReceivedInfo ri;
	ri.from = "mail.example.org";
	ri.by = "mail.example.org";
	ri.with = "ESMTPSA";
	ri.id = "abc";
	ri.when = 1700000000;
	auto copies = submission_copies(rcpts, ri, "X-Common: 1\r\n");
	REQUIRE(copies.size() == 2);
	CHECK(copies[0].to == "bob@example.net");
	CHECK(copies[0].domain == "example.net");
	CHECK(copies[0].notify == smtp::notify_never);
	CHECK(copies[0].prefix.starts_with("Received: "));
	CHECK(copies[0].prefix.find("for <bob@example.net>") != std::string::npos);
	CHECK(copies[0].prefix.ends_with("X-Common: 1\r\n"));
	CHECK(copies[1].domain == "[192.0.2.7]");
	CHECK(submission_auth_results("mail.example.org", "alice@example.org", false).find("auth=pass") !=
	      std::string::npos);
	// The model's Path.ASCIIExtra: under SMTPUTF8 an IDN sender's ASCII form follows as a comment.
	CHECK(submission_auth_results("mail.example.org",
	                              "j\xc3\xb6rg@b\xc3\xbc"
	                              "cher.example",
	                              true) ==
	      "Authentication-Results: mail.example.org; auth=pass\r\n\tsmtp.mailfrom=j\xc3\xb6rg@b\xc3\xbc"
	      "cher.example (j\xc3\xb6rg@xn--bcher-kva.example)\r\n");
	CHECK(submission_auth_results("mail.example.org", "alice@example.org", true) ==
	      "Authentication-Results: mail.example.org; auth=pass\r\n\tsmtp.mailfrom=alice@example.org\r\n");
}

TEST_CASE("decide submission: under SMTPUTF8 the queue gets the Unicode address, Received's \"for\" the ASCII form") {
	auto cfg = test_config();
	RecipientDecision d = resolve_recipient(*cfg,
	                                        rcpt("TO:<j\xc3\xb6rg@b\xc3\xbc"
	                                             "cher.example>",
	                                             true),
	                                        {"mail.example.org", true, true});
	REQUIRE_FALSE(d.refused);
	message::ReceivedInfo ri;
	ri.from = ri.by = "mail.example.org";
	auto copies = submission_copies({d.recipient}, ri, "");
	REQUIRE(copies.size() == 1);
	CHECK(copies[0].to ==
	      "j\xc3\xb6rg@b\xc3\xbc"
	      "cher.example");
	CHECK(copies[0].domain == "xn--bcher-kva.example");
	// The model's Path.String(): the localpart as it is, the domain's A-labels.
	INFO(copies[0].prefix);
	CHECK(copies[0].prefix.find("<j\xc3\xb6rg@xn--bcher-kva.example>;") != std::string::npos);
	// The bare <POSTMASTER> form keeps the listener's hostname.
	RecipientDecision pm = port25(*cfg, "TO:<postmaster>");
	CHECK(pm.recipient.ascii_address() == "postmaster@mx.example.org");
}

TEST_CASE("decide reply: every recipient failed: one code when all agree, else one line each") {
	std::vector<DeliverError> same{{"a@example.org", 550, "1.1", true, "no such user"},
	                               {"b@example.org", 550, "1.1", true, "no such user"}};
	smtp::SmtpError e = all_failed_reply(same);
	CHECK(e.code == 550);
	CHECK(e.secode == "1.1");
	CHECK(e.text == "no such user\nno such user");
	std::vector<DeliverError> mixed{{"a@example.org", 451, "3.0", false, "error processing"},
	                                {"b@example.org", 550, "1.1", true, "no such user"}};
	e = all_failed_reply(mixed);
	CHECK(e.code == 554);
	CHECK(e.secode == "3.0");
	CHECK(e.text == "451 4.3.0 error processing\n550 5.1.1 no such user\nmultiple errors");
	mixed[1] = {"b@example.org", 452, "3.1", false, "error processing"};
	CHECK(all_failed_reply(mixed).code == 451);
}

TEST_CASE("decide dsn: a recipient whose copy the queue retries gets no success notice yet") {
	IncomingDsnFacts f = dsn_facts();
	f.recipients[0].notify = smtp::notify_success;
	f.queued = {"alice@example.org"};
	CHECK_FALSE(incoming_dsn(f).has_value());
	f.recipients[1].notify = smtp::notify_success;
	auto dsn = incoming_dsn(f);
	REQUIRE(dsn.has_value());
	REQUIRE(dsn->recipients.size() == 1);
	CHECK(dsn->recipients[0].final_recipient == "bob@example.org");
}
