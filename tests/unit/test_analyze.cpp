// The port-25 verdict, row by row in the decision order of
// doc/behaviour.md §9, and subject-pass tokens.
#include <doctest/doctest.h>

#include "inbound/analyze.h"
#include "inbound/subjectpass.h"

using namespace tern::inbound;

namespace {

// A message that passes everything and has no history.
MessageFacts clean() {
	MessageFacts f;
	f.spf_mailfrom = SpfVerdict::pass;
	f.iprev_pass = true;
	f.dmarc_pass = true;
	return f;
}

void check_vague_refusal(const Verdict& v, const std::string& reason) {
	CHECK_FALSE(v.accept);
	CHECK(v.code == 451);
	CHECK(v.secode == "3.0");
	CHECK(v.text == "error processing");
	CHECK(v.reason == reason);
}

}  // namespace

TEST_CASE("analyze: nothing known and nothing bad accepts as no-bad-signals, the only reason that waits") {
	Verdict v = analyze(clean());
	CHECK(v.accept);
	CHECK(v.reason == "no-bad-signals");
	CHECK(first_time_delay_applies(v));
}

TEST_CASE("analyze: a used DMARC reject policy refuses 550 5.7.26 before everything else") {
	MessageFacts f = clean();
	f.dmarc_used = true;
	f.dmarc_reject = true;
	f.reputation = {false, true, false, "msgfromfull"};  // even a good history does not save it
	Verdict v = analyze(f);
	CHECK_FALSE(v.accept);
	CHECK(v.code == 550);
	CHECK(v.secode == "7.26");
	CHECK(v.text == "rejecting per dmarc policy");
	CHECK(v.reason == "dmarc-policy");
	SUBCASE("a record that was not used (pct) does not reject") {
		f.dmarc_used = false;
		CHECK(analyze(f).accept);
	}
}

TEST_CASE("analyze: a history that cannot be read refuses vaguely") {
	MessageFacts f = clean();
	f.reputation.error = true;
	check_vague_refusal(analyze(f), "reputation-error");
}

TEST_CASE("analyze: a conclusive reputation decides with its method as reason") {
	MessageFacts f = clean();
	f.reputation = {false, true, false, "msgtofull"};
	Verdict good = analyze(f);
	CHECK(good.accept);
	CHECK(good.reason == "msgtofull");
	CHECK_FALSE(first_time_delay_applies(good));
	f.reputation = {false, true, true, "msgfromdomain"};
	check_vague_refusal(analyze(f), "msgfromdomain");
	SUBCASE("conclusive good wins over an SPF fail and a DNSBL listing") {
		f.reputation = {false, true, false, "ip1"};
		f.spf_mailfrom = SpfVerdict::fail;
		f.dnsbl_listed_zone = "bl.example";
		CHECK(analyze(f).accept);
	}
}

TEST_CASE("analyze: a kept report is accepted when reputation is not conclusive") {
	MessageFacts f = clean();
	f.report_kept = true;
	f.spf_mailfrom = SpfVerdict::fail;  // reports come before the SPF policy
	Verdict v = analyze(f);
	CHECK(v.accept);
	CHECK(v.reason == "reporting");
	CHECK_FALSE(first_time_delay_applies(v));
}

TEST_CASE("analyze: SPF fail and softfail refuse for the weak methods only") {
	for (SpfVerdict s : {SpfVerdict::fail, SpfVerdict::softfail}) {
		for (const char* method : {"dkimspf", "ip1", "ip2", "ip3", "none"}) {
			MessageFacts f = clean();
			f.spf_mailfrom = s;
			f.reputation.method = method;
			check_vague_refusal(analyze(f), "spf-policy");
		}
		MessageFacts f = clean();
		f.spf_mailfrom = s;
		f.reputation.method = "msgfromdomain";  // inconclusive but about the user's verdicts
		CHECK(analyze(f).accept);
	}
	for (SpfVerdict s : {SpfVerdict::none, SpfVerdict::neutral, SpfVerdict::temperror, SpfVerdict::permerror}) {
		MessageFacts f = clean();
		f.spf_mailfrom = s;
		CHECK(analyze(f).accept);
	}
}

TEST_CASE("analyze: iprev failure with a history leaning junk refuses as iprev") {
	MessageFacts f = clean();
	f.iprev_pass = false;
	f.reputation = {false, false, true, "ip2"};
	check_vague_refusal(analyze(f), "iprev");
	SUBCASE("leaning ham: accepted") {
		f.reputation.junk = false;
		CHECK(analyze(f).accept);
	}
	SUBCASE("iprev pass: accepted") {
		f.iprev_pass = true;
		CHECK(analyze(f).accept);
	}
}

TEST_CASE("analyze: a valid subject-pass token accepts before the junk filter and DNSBLs") {
	MessageFacts f = clean();
	f.subject_pass = {true, true, "tok"};
	f.dnsbl_listed_zone = "bl.example";
	f.junk_filter = JunkFilterAnswer{false, false, 0.99, 0.9, 0};
	Verdict v = analyze(f);
	CHECK(v.accept);
	CHECK(v.reason == "subjectpass");
	SUBCASE("without the account option the token means nothing") {
		f.subject_pass.configured = false;
		CHECK_FALSE(analyze(f).accept);
	}
}

TEST_CASE("analyze: the junk filter compares with threshold plus jitter") {
	MessageFacts f = clean();
	f.junk_filter = JunkFilterAnswer{false, false, 0.5, 0.5, 0};
	CHECK(analyze(f).accept);  // at the threshold: accepted
	f.junk_filter->probability = 0.51;
	check_vague_refusal(analyze(f), "junk-content");
	f.junk_filter->jitter = 0.02;
	CHECK(analyze(f).accept);
	f.junk_filter->jitter = -0.05;
	f.junk_filter->probability = 0.46;
	check_vague_refusal(analyze(f), "junk-content");
	SUBCASE("an accepted message keeps the no-bad-signals reason") {
		f.junk_filter->probability = 0.1;
		CHECK(analyze(f).reason == "no-bad-signals");
	}
}

TEST_CASE("analyze: suspicious iprev lowers the junk threshold to 0.25") {
	MessageFacts f = clean();
	f.iprev_pass = false;
	f.junk_filter = JunkFilterAnswer{false, false, 0.3, 0.9, 0};
	check_vague_refusal(analyze(f), "junk-content-strict");
	f.junk_filter->probability = 0.25;
	CHECK(analyze(f).accept);
	SUBCASE("a threshold already lower stays") {
		f.junk_filter->threshold = 0.2;
		f.junk_filter->probability = 0.22;
		check_vague_refusal(analyze(f), "junk-content");
	}
	SUBCASE("a strong method is never suspicious") {
		f.reputation.method = "msgfromfull";
		f.junk_filter->probability = 0.3;
		CHECK(analyze(f).accept);
	}
}

TEST_CASE("analyze: junk filter errors refuse vaguely") {
	MessageFacts f = clean();
	f.junk_filter = JunkFilterAnswer{true, false, 0, 0.9, 0};
	check_vague_refusal(analyze(f), "junk-filter-error");
	f.junk_filter = JunkFilterAnswer{false, true, 0, 0.9, 0};
	check_vague_refusal(analyze(f), "junk-classify-error");
}

TEST_CASE("analyze: a DNSBL listing refuses a message that was accepted so far") {
	MessageFacts f = clean();
	f.dnsbl_listed_zone = "bl.example";
	Verdict v = analyze(f);
	check_vague_refusal(v, "dns-blocklisted");
	CHECK(v.dnsbl_listed);
}

TEST_CASE("analyze: subject-pass is offered to an unknown DMARC-passing sender that looks like spam") {
	MessageFacts f = clean();
	f.subject_pass = {true, false, "TOKEN123"};
	f.dnsbl_listed_zone = "bl.example";
	Verdict v = analyze(f);
	CHECK_FALSE(v.accept);
	CHECK(v.code == 550);
	CHECK(v.secode == "7.1");
	CHECK(v.text ==
	      "Your message resembles spam. If your email is legitimate, please send it again with the following added "
	      "to the email message subject: (pass:TOKEN123)");
	CHECK(v.reason == "give-subjectpass");
	SUBCASE("not without a DMARC pass") {
		f.dmarc_pass = false;
		check_vague_refusal(analyze(f), "dns-blocklisted");
	}
	SUBCASE("not with some history") {
		f.reputation.method = "ip3";
		check_vague_refusal(analyze(f), "dns-blocklisted");
	}
	SUBCASE("junk content over the threshold alone is not offered a token") {
		f.dnsbl_listed_zone.clear();
		f.junk_filter = JunkFilterAnswer{false, false, 0.95, 0.9, 0};
		check_vague_refusal(analyze(f), "junk-content");
	}
}

TEST_CASE("subjectpass: a token verifies for its sender and key within the period") {
	std::string key = "0123456789abcdef";
	int64_t t = 1'700'000'000;
	std::string token = make_subjectpass_token(key, "mjl@example.org", t);
	CHECK(token.size() == 22);
	CHECK(subjectpass_token_valid(token, key, "mjl@example.org", t + 60, 3600));
	CHECK(subjectpass_token_valid(token, key, "mjl@example.org", t, 3600));
	CHECK_FALSE(subjectpass_token_valid(token, key, "mjl@example.org", t + 7200, 3600));
	CHECK_FALSE(subjectpass_token_valid(token, key, "other@example.org", t + 60, 3600));
	CHECK_FALSE(subjectpass_token_valid(token, "another key.....", "mjl@example.org", t + 60, 3600));
	CHECK_FALSE(subjectpass_token_valid(token, key, "mjl@example.org", t - 3600, 3600));  // from the future
	CHECK_FALSE(subjectpass_token_valid("AAAA", key, "mjl@example.org", t, 3600));
	CHECK_FALSE(subjectpass_token_valid("!!!!!!!!!!!!!!!!!!!!!!", key, "mjl@example.org", t, 3600));
	std::string tampered = token;
	tampered[21] = tampered[21] == 'A' ? 'B' : 'A';
	CHECK_FALSE(subjectpass_token_valid(tampered, key, "mjl@example.org", t + 60, 3600));
}

TEST_CASE("subjectpass: the token is found inside the subject") {
	CHECK(subjectpass_token_in("Re: hello (pass:abcDEF_-12) there").value() == "abcDEF_-12");
	CHECK_FALSE(subjectpass_token_in("no token here").has_value());
	CHECK_FALSE(subjectpass_token_in("(pass:)").has_value());
	CHECK_FALSE(subjectpass_token_in("(pass:unterminated").has_value());
}
