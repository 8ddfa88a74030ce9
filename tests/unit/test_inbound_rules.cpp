// The smaller rules of the inbound decision: delivery-rate limits, DNSBL
// zone health, junk marks from a Dovecot Maildir, and the Rejects mailbox.
#include <doctest/doctest.h>

#include "inbound/delivery_rate.h"
#include "inbound/dnsbl_health.h"
#include "inbound/junk_marks.h"
#include "inbound/rejects.h"

using namespace tern::inbound;

TEST_CASE("delivery rate: the model's table is the default") {
	DeliveryRateLimits l = default_delivery_rate_limits();
	CHECK(l[0].messages_per_minute == 500);
	CHECK(l[0].messages_per_day == 10000);
	CHECK(l[1].messages_per_minute == 1500);
	CHECK(l[1].messages_per_day == 30000);
	CHECK(l[2].messages_per_minute == 4500);
	CHECK(l[2].messages_per_day == 90000);
	CHECK(l[0].bytes_per_minute == 1000LL * 1024 * 1024);
	CHECK(l[0].bytes_per_day == 3000LL * 1024 * 1024);
	CHECK(l[2].bytes_per_day == 27000LL * 1024 * 1024);
}

TEST_CASE("delivery rate: per recipient, after the copies of the recipients before it") {
	// The helper's example: 2 a minute from the /32, one message from it
	// already, a message to three addresses of the account.
	DeliveryRateLimits l = default_delivery_rate_limits();
	l[0].messages_per_minute = 2;
	std::array<NetworkHistoryCount, 3> c{};
	c[0].messages_minute = 1;
	auto at = first_rate_refusal(c, 100, l, 3, CopiesCounted::each_recipient);
	REQUIRE(at);
	CHECK(at->first == 1);  // the first is stored, the second would be the third message
	CHECK(at->text == "more than 2 messages in past 1m0s from your ip/network");
	// A refused message keeps one Rejects copy: it counts once.
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::first_recipient)->first == 1);
	c[0].messages_minute = 0;
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::first_recipient) == std::nullopt);
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::each_recipient)->first == 2);
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::none) == std::nullopt);
	// Sizes add up too; the wider networks count every copy as well.
	l = default_delivery_rate_limits();
	l[2].bytes_per_minute = 250;
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::each_recipient)->first == 2);
	c[0].messages_minute = 2;
	l[0].messages_per_minute = 2;
	CHECK(first_rate_refusal(c, 100, l, 3, CopiesCounted::each_recipient)->first == 0);
	CHECK(first_rate_refusal(c, 100, l, 0, CopiesCounted::each_recipient) == std::nullopt);
}

TEST_CASE("delivery rate: counts refuse at the limit, sizes when this message passes it") {
	DeliveryRateLimits l = default_delivery_rate_limits();
	std::array<NetworkHistoryCount, 3> c{};
	CHECK_FALSE(delivery_rate_refusal(c, 1000, l));
	c[0].messages_minute = 499;
	CHECK_FALSE(delivery_rate_refusal(c, 1000, l));
	c[0].messages_minute = 500;
	CHECK(delivery_rate_refusal(c, 1000, l).value() == "more than 500 messages in past 1m0s from your ip/network");
	c[0].messages_minute = 0;
	c[1].messages_day = 30000;
	CHECK(delivery_rate_refusal(c, 1000, l).value() ==
	      "more than 30000 messages in past 24h0m0s from your ip/network");
	c[1].messages_day = 0;
	c[2].bytes_minute = 9000LL * 1024 * 1024 - 10;
	CHECK_FALSE(delivery_rate_refusal(c, 10, l));
	CHECK(delivery_rate_refusal(c, 11, l).value() ==
	      "more than 9437184000 bytes in past 1m0s from your ip/network");
	SUBCASE("counts are checked before sizes") {
		c[2].messages_day = 90000;
		CHECK(delivery_rate_refusal(c, 11, l).value().find("messages") != std::string::npos);
	}
	SUBCASE("a configured small limit") {
		l[0].messages_per_minute = 2;
		c = {};
		c[0].messages_minute = 2;
		CHECK(delivery_rate_refusal(c, 1, l).value() ==
		      "more than 2 messages in past 1m0s from your ip/network");
	}
}

TEST_CASE("dnsbl health: 127.0.0.2 must be listed and 127.0.0.1 not; errors count as healthy") {
	using P = DnsblProbe;
	CHECK(dnsbl_zone_healthy(P::listed, P::not_listed));
	CHECK_FALSE(dnsbl_zone_healthy(P::not_listed, P::not_listed));
	CHECK_FALSE(dnsbl_zone_healthy(P::listed, P::listed));
	CHECK(dnsbl_zone_healthy(P::error, P::not_listed));
	CHECK(dnsbl_zone_healthy(P::listed, P::error));
	CHECK(dnsbl_zone_healthy(P::error, P::error));
	CHECK(dnsbl_health_stale(0, 1000));
	CHECK_FALSE(dnsbl_health_stale(1000, 1000 + 4 * 3600 - 1));
	CHECK(dnsbl_health_stale(1000, 1000 + 4 * 3600));
}

TEST_CASE("junk marks: dovecot-keywords and the file name's flags") {
	auto kw = parse_dovecot_keywords("0 $Junk\n1 $NotJunk\n2 NonJunk\n3 $Forwarded\r\nbad line\n30 toolarge\n4\n");
	CHECK(kw.size() == 4);
	CHECK(kw[0] == "$Junk");
	CHECK(kw[3] == "$Forwarded");
	CHECK(maildir_unique_name("1700000000.M1P2.host,S=123:2,Sa") == "1700000000.M1P2.host,S=123");
	CHECK(maildir_unique_name("1700000000.M1P2.host,S=123") == "1700000000.M1P2.host,S=123");
	CHECK(maildir_flags("x:2,RSab") == "RSab");
	CHECK(maildir_flags("x") == "");
	CHECK(junk_mark_from_keywords("Sa", kw) == JunkMark::junk);
	CHECK(junk_mark_from_keywords("Sb", kw) == JunkMark::notjunk);
	CHECK(junk_mark_from_keywords("c", kw) == JunkMark::notjunk);
	CHECK(junk_mark_from_keywords("Sd", kw) == JunkMark::unknown);
	CHECK(junk_mark_from_keywords("ab", kw) == JunkMark::unknown);  // both: the user has not decided
	CHECK(junk_mark_from_keywords("S", kw) == JunkMark::unknown);   // S is Seen, not keyword 18
	CHECK(junk_mark_from_keywords("e", kw) == JunkMark::unknown);   // keyword without a name
	auto older = parse_dovecot_keywords("0 junk\n1 notjunk\n");
	CHECK(junk_mark_from_keywords("a", older) == JunkMark::junk);
	CHECK(junk_mark_from_keywords("b", older) == JunkMark::notjunk);
}

TEST_CASE("junk marks: folders and moves") {
	CHECK(folder_name_from_dir("") == "INBOX");
	CHECK(folder_name_from_dir(".Junk") == "Junk");
	CHECK(folder_name_from_dir(".Lists.tern") == "Lists.tern");
	// Modified UTF-7 on disk, the IMAP name in the rules; a name that is
	// not modified UTF-7 is taken as it stands.
	CHECK(folder_name_from_dir(".Ind&AOk-sirables") == "Ind\xc3\xa9sirables");
	CHECK(folder_name_from_dir(".R&-D") == "R&D");
	CHECK(folder_name_from_dir(".\xc3\x89t\xc3\xa9") == "\xc3\x89t\xc3\xa9");
	CHECK(folder_name_from_dir(".a&b") == "a&b");
	FolderClassifier rules(FolderRules{});
	CHECK(rules.classify("Junk") == FolderKind::junk);
	CHECK(rules.classify("spam") == FolderKind::junk);
	CHECK(rules.classify("INBOX") == FolderKind::neutral);
	CHECK(rules.classify("Rejects") == FolderKind::neutral);
	CHECK(rules.classify("DMARC") == FolderKind::neutral);  // reports ternd filed
	CHECK(rules.classify("TLSRPT") == FolderKind::neutral);
	CHECK(rules.classify("Archive") == FolderKind::notjunk);
	CHECK_THROWS(FolderClassifier(FolderRules{"(", ""}));

	using M = JunkMark;
	using F = FolderKind;
	CHECK(next_junk_mark(M::unknown, std::nullopt, F::neutral, M::unknown) == M::unknown);
	CHECK(next_junk_mark(M::unknown, F::neutral, F::junk, M::unknown) == M::junk);
	CHECK(next_junk_mark(M::junk, F::junk, F::neutral, M::unknown) == M::notjunk);        // rescued
	CHECK(next_junk_mark(M::unknown, F::neutral, F::notjunk, M::unknown) == M::notjunk);  // archived
	CHECK(next_junk_mark(M::unknown, F::neutral, F::neutral, M::junk) == M::junk);        // keyword wins
	CHECK(next_junk_mark(M::junk, F::junk, F::junk, M::notjunk) == M::notjunk);
	CHECK(next_junk_mark(M::notjunk, F::notjunk, F::neutral, M::unknown) == M::notjunk);
}

TEST_CASE("rejects: one copy per message, tidied after 14 days, at most 1000") {
	int64_t now = 2'000'000'000;
	std::vector<RejectCopy> present = {{"a", "<1@x>", "h1", now - 100}, {"b", "", "h2", now - 15 * 86400}};
	RejectsPlan p = plan_reject(present, "<1@x>", "new", false, now);
	CHECK(p.duplicate);
	CHECK_FALSE(p.store);
	p = plan_reject(present, "<2@x>", "h2", false, now);
	CHECK(p.duplicate);
	p = plan_reject(present, "<2@x>", "h3", false, now);
	CHECK(p.store);
	CHECK(p.remove == std::vector<std::string>{"b"});
	p = plan_reject(present, "<2@x>", "h3", true, now);  // keep_rejects: nothing removed
	CHECK(p.store);
	CHECK(p.remove.empty());

	std::vector<RejectCopy> full;
	for (size_t i = 0; i < 1000; ++i)
		full.push_back({"u" + std::to_string(i), "", "x" + std::to_string(i), now - 10});
	p = plan_reject(full, "<new@x>", "new", false, now);
	CHECK_FALSE(p.store);
	CHECK_FALSE(p.duplicate);
	CHECK(plan_reject(full, "<new@x>", "new", true, now).store);
	full[0].received = now - 15 * 86400;
	p = plan_reject(full, "<new@x>", "new", false, now);
	CHECK(p.store);
	CHECK(p.remove.size() == 1);

	CHECK(rejects_superseded(present, "<1@x>") == std::vector<std::string>{"a"});
	CHECK(rejects_superseded(present, "").empty());
}
