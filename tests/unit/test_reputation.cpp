// reputation() over a synthetic history: each step, window, threshold and
// conclusiveness rule of doc/behaviour.md §9 "Reputation".
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>

#include "inbound/reputation.h"

using namespace tern::inbound;

namespace {

constexpr int64_t now = 1'800'000'000;
constexpr int64_t day = 24 * 3600;

// A marked message of the history with every identity it matches on.
struct Row {
	int64_t received = now - day;
	bool junk = false;
	std::string from_localpart = "bob", from_domain = "sender.example", from_org = "sender.example";
	bool from_validated = true;
	std::vector<std::string> dkim;
	std::string mailfrom, mailfrom_domain, ehlo, ip1, ip2, ip3;
};

struct Sent {
	std::string localpart, domain, org;
	int64_t at = now - day;
};

class MemoryHistory : public History {
public:
	std::vector<Row> rows;
	std::vector<Sent> sent;
	bool broken = false;
	std::vector<HistoryQuery> asked;

	std::vector<MarkedMessage> marked_messages(const HistoryQuery& q) override {
		if (broken) throw std::runtime_error("db down");
		asked.push_back(q);
		std::vector<Row> match;
		for (const auto& r : rows) {
			if (r.received < q.since) continue;
			if (q.from_validated && r.from_validated != *q.from_validated) continue;
			if (!matches(r, q)) continue;
			match.push_back(r);
		}
		std::sort(match.begin(), match.end(),
		          [](const Row& a, const Row& b) { return a.received > b.received; });
		if (match.size() > q.limit) match.resize(q.limit);
		std::vector<MarkedMessage> out;
		for (const auto& r : match) out.push_back({r.received, r.junk, r.from_localpart});
		return out;
	}
	bool sent_to_address(const std::string& lp, const std::string& d, int64_t since) override {
		return std::any_of(sent.begin(), sent.end(),
		                   [&](const Sent& s) { return s.localpart == lp && s.domain == d && s.at >= since; });
	}
	bool sent_to_domain(const std::string& d, int64_t since) override {
		return std::any_of(sent.begin(), sent.end(),
		                   [&](const Sent& s) { return s.domain == d && s.at >= since; });
	}
	bool sent_to_org_domain(const std::string& o, int64_t since) override {
		return std::any_of(sent.begin(), sent.end(),
		                   [&](const Sent& s) { return s.org == o && s.at >= since; });
	}

private:
	static bool matches(const Row& r, const HistoryQuery& q) {
		switch (q.key) {
		case HistoryKey::from_address: return r.from_localpart + "@" + r.from_domain == q.value;
		case HistoryKey::from_domain: return r.from_domain == q.value;
		case HistoryKey::from_org_domain: return r.from_org == q.value;
		case HistoryKey::dkim_domain: return std::find(r.dkim.begin(), r.dkim.end(), q.value) != r.dkim.end();
		case HistoryKey::mailfrom_address: return r.mailfrom == q.value;
		case HistoryKey::mailfrom_domain: return r.mailfrom_domain == q.value;
		case HistoryKey::ehlo_domain: return r.ehlo == q.value;
		case HistoryKey::ip1: return r.ip1 == q.value;
		case HistoryKey::ip2: return r.ip2 == q.value;
		case HistoryKey::ip3: return r.ip3 == q.value;
		}
		return false;
	}
};

MessageIdentity bob() {
	MessageIdentity m;
	m.from_localpart = "bob";
	m.from_domain = "sender.example";
	m.from_org_domain = "sender.example";
	m.from_validated = true;
	m.ip1 = "192.0.2.7";
	m.ip2 = "192.0.2.0";
	m.ip3 = "192.0.0.0";
	return m;
}

Row from(const std::string& lp, bool junk, int64_t age_days = 1) {
	Row r;
	r.from_localpart = lp;
	r.junk = junk;
	r.received = now - age_days * day;
	return r;
}

}  // namespace

TEST_CASE("reputation: no history at all is method none, inconclusive") {
	MemoryHistory h;
	ReputationAnswer a = reputation(bob(), h, now);
	CHECK_FALSE(a.error);
	CHECK_FALSE(a.conclusive);
	CHECK(a.method == "none");
}

TEST_CASE("reputation: a history error is an error answer") {
	MemoryHistory h;
	h.broken = true;
	CHECK(reputation(bob(), h, now).error);
}

TEST_CASE("reputation step 1: the same validated From address decides on the newest one or two") {
	MemoryHistory h;
	h.rows = {from("bob", true, 1)};
	ReputationAnswer a = reputation(bob(), h, now);
	CHECK(a.method == "msgfromfull");
	CHECK(a.conclusive);
	CHECK(a.junk);
	SUBCASE("newest junk, the one before not: not junk") {
		h.rows.push_back(from("bob", false, 2));
		CHECK_FALSE(reputation(bob(), h, now).junk);
	}
	SUBCASE("newest not junk: not junk, whatever came before") {
		h.rows = {from("bob", false, 1), from("bob", true, 2), from("bob", true, 3)};
		a = reputation(bob(), h, now);
		CHECK(a.conclusive);
		CHECK_FALSE(a.junk);
	}
	SUBCASE("older than three years does not count") {
		h.rows = {from("bob", true, 3 * 365 + 1)};
		CHECK(reputation(bob(), h, now).method == "none");
	}
}

TEST_CASE("reputation step 1: an unvalidated From only leans") {
	MemoryHistory h;
	MessageIdentity m = bob();
	m.from_validated = false;
	Row r = from("bob", false);
	r.from_validated = false;
	h.rows = {r};
	ReputationAnswer a = reputation(m, h, now);
	CHECK(a.method == "msgfromfull");
	CHECK_FALSE(a.conclusive);
	CHECK_FALSE(a.junk);
	SUBCASE("an address that validated before: likely forged, conclusive when it was junk") {
		h.rows = {from("bob", false)};  // validated, not junk
		a = reputation(m, h, now);
		CHECK(a.junk);
		CHECK_FALSE(a.conclusive);
		h.rows = {from("bob", true)};
		a = reputation(m, h, now);
		CHECK(a.junk);
		CHECK(a.conclusive);
	}
}

TEST_CASE("reputation step 2: the user wrote to the From address") {
	MemoryHistory h;
	h.sent = {{"bob", "sender.example", "sender.example", now - 100 * day}};
	ReputationAnswer a = reputation(bob(), h, now);
	CHECK(a.method == "msgtofull");
	CHECK(a.conclusive);
	CHECK_FALSE(a.junk);
	SUBCASE("more than three years ago no longer counts") {
		h.sent[0].at = now - 3 * 365 * day - day;
		CHECK(reputation(bob(), h, now).method == "none");
	}
}

TEST_CASE("reputation step 3: the From domain by share of not-junk") {
	MemoryHistory h;
	for (int i = 0; i < 5; ++i) h.rows.push_back(from("other" + std::to_string(i), i == 0, i + 1));
	ReputationAnswer a = reputation(bob(), h, now);  // 4 of 5 = 80 %: not more than 80
	CHECK(a.method == "msgfromdomain");
	CHECK_FALSE(a.conclusive);
	h.rows.push_back(from("other9", false, 10));  // 5 of 6 = 83 %
	a = reputation(bob(), h, now);
	CHECK(a.conclusive);
	CHECK_FALSE(a.junk);
	SUBCASE("all junk: conclusive only with three different localparts") {
		h.rows = {from("x", true), from("x", true, 2)};
		a = reputation(bob(), h, now);
		CHECK(a.junk);
		CHECK_FALSE(a.conclusive);
		h.rows = {from("x", true), from("y", true, 2), from("z", true, 3)};
		a = reputation(bob(), h, now);
		CHECK(a.junk);
		CHECK(a.conclusive);
	}
	SUBCASE("the window is two years, at most 20 messages") {
		h.rows = {from("x", false, 2 * 365 + 1)};
		CHECK(reputation(bob(), h, now).method == "none");
	}
}

TEST_CASE("reputation step 3: the organizational domain, and mail the user sent to a domain") {
	MemoryHistory h;
	MessageIdentity m = bob();
	m.from_domain = "news.sender.example";
	Row r = from("x", false);
	r.from_domain = "shop.sender.example";
	h.rows = {r};
	ReputationAnswer a = reputation(m, h, now);
	CHECK(a.method == "msgfromorgdomain");
	CHECK(a.conclusive);
	h.rows.clear();
	h.sent = {{"alice", "news.sender.example", "sender.example"}};
	CHECK(reputation(m, h, now).method == "msgtodomain");
	h.sent = {{"alice", "other.sender.example", "sender.example"}};
	CHECK(reputation(m, h, now).method == "msgtoorgdomain");
}

TEST_CASE("reputation step 4: DKIM and SPF identities") {
	MemoryHistory h;
	MessageIdentity m = bob();
	m.from_domain = "new.example";
	m.from_org_domain = "new.example";
	m.dkim_domains = {"esp.example"};
	Row r = from("x", false);
	r.from_domain = r.from_org = "elsewhere.example";
	r.dkim = {"esp.example"};
	h.rows = {r};
	ReputationAnswer a = reputation(m, h, now);
	CHECK(a.method == "dkimspf");
	CHECK(a.conclusive);
	CHECK_FALSE(a.junk);
	SUBCASE("spam only: conclusive with more than one message") {
		h.rows[0].junk = true;
		a = reputation(m, h, now);
		CHECK(a.junk);
		CHECK_FALSE(a.conclusive);
		h.rows.push_back(h.rows[0]);
		a = reputation(m, h, now);
		CHECK(a.conclusive);
	}
	SUBCASE("a validated MAIL FROM with a spam history mixes with the ham DKIM signal") {
		m.mailfrom_localpart = "bounce";
		m.mailfrom_domain = "esp.example";
		m.mailfrom_validated = true;
		Row s = r;
		s.dkim.clear();
		s.junk = true;
		s.mailfrom = "bounce@esp.example";
		h.rows.push_back(s);
		a = reputation(m, h, now);
		CHECK(a.method == "dkimspf");
		CHECK_FALSE(a.conclusive);
	}
	SUBCASE("older than half a year does not count") {
		h.rows[0].received = now - 183 * day;
		CHECK(reputation(m, h, now).method == "none");  // falls through; no IP history either
	}
}

TEST_CASE("reputation step 5: IP networks need 2, 5, 10 messages and a strong share") {
	MemoryHistory h;
	MessageIdentity m = bob();
	m.from_domain = "";  // no From: the address steps are skipped
	Row r;
	r.ip1 = "192.0.2.7";
	r.ip2 = "192.0.2.0";
	r.ip3 = "192.0.0.0";
	r.from_domain = r.from_org = "";
	h.rows = {r};
	ReputationAnswer a = reputation(m, h, now);
	CHECK(a.method == "ip1");
	CHECK_FALSE(a.conclusive);  // needs 2
	h.rows.push_back(r);
	a = reputation(m, h, now);
	CHECK(a.conclusive);
	CHECK_FALSE(a.junk);
	SUBCASE("a /26 neighbour needs 5") {
		Row n = r;
		n.ip1 = "192.0.2.8";
		h.rows = {n, n, n, n};
		a = reputation(m, h, now);
		CHECK(a.method == "ip2");
		CHECK_FALSE(a.conclusive);
		h.rows.push_back(n);
		CHECK(reputation(m, h, now).conclusive);
	}
	SUBCASE("a /21 neighbour needs 10, and a mixed share only leans") {
		Row n = r;
		n.ip1 = "192.0.3.8";
		n.ip2 = "192.0.3.0";
		for (int i = 0; i < 10; ++i) {
			n.junk = i < 8;
			h.rows.push_back(n);
		}
		h.rows.erase(h.rows.begin(), h.rows.begin() + 2);
		a = reputation(m, h, now);
		CHECK(a.method == "ip3");
		CHECK(a.junk);              // 80 % junk leans junk
		CHECK_FALSE(a.conclusive);  // but is not ≥ 90 %
	}
	SUBCASE("older than a quarter year does not count") {
		for (auto& row : h.rows) row.received = now - 92 * day;
		CHECK(reputation(m, h, now).method == "none");
	}
}
