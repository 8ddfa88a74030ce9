// Message history in Berkeley DB (store/history.h): records, indexes,
// reputation() over a real environment, delivery-rate counts, Rejects
// copies, the outgoing per-domain rows and pruning.
#include <db.h>
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "store/db.h"
#include "store/history.h"
#include "store/records.h"
#include "store/table.h"
#include "unit/files.h"

using tern::inbound::JunkMark;
using tern::store::Env;
using tern::store::HistoryRecord;
using tern::store::MessageHistory;

namespace {

constexpr int64_t now = 1800000000;

HistoryRecord message_from(const std::string& localpart, const std::string& domain, const std::string& ip,
                           int64_t received, const std::string& unique) {
	HistoryRecord r;
	r.account = "mjl";
	r.mailbox = "INBOX";
	r.unique_name = unique;
	r.received = received;
	r.remote_ip = ip;
	auto masks = tern::store::ip_masks(ip);
	r.identity.ip1 = masks[0];
	r.identity.ip2 = masks[1];
	r.identity.ip3 = masks[2];
	r.identity.from_localpart = localpart;
	r.identity.from_domain = domain;
	r.identity.from_org_domain = domain;
	r.identity.from_validated = true;
	r.identity.dkim_domains = {domain};
	r.size = 1000;
	r.message_id = "<" + unique + "@" + domain + ">";
	r.sha256 = "ab" + unique;
	return r;
}

// `records` with the one at `index` made a copy in the Rejects mailbox, as
// a refused message's copy is.
std::vector<HistoryRecord> with_rejects_copy(std::vector<HistoryRecord> records, size_t index) {
	records.at(index).rejected = true;
	records.at(index).mailbox = "Rejects";
	return records;
}

// A fresh environment and its history for one test.
// A test's set-up: `r` in place of its stored record (found by account
// and unique name). false when there is none.
bool replace(MessageHistory& history, const HistoryRecord& r) {
	return history
	    .update_by_unique_name(r.account, r.unique_name,
	                           [&](HistoryRecord& stored) {
					   stored = r;
					   return true;
				   })
	    .has_value();
}

struct HistoryDb {
	tern::testing::TempDir dir;
	Env env{dir.path};
	MessageHistory history{env};
};

}  // namespace

TEST_CASE("history: a record survives serialization, and garbage does not parse") {
	HistoryRecord r = message_from("alice", "example.org", "192.0.2.7", now, "1700.M1P2.host");
	r.id = 42;
	r.junk = JunkMark::notjunk;
	r.rejected = true;
	r.reason = "no-bad-signals";
	r.identity.dkim_domains = {"example.org", "esp.example"};
	auto back = tern::store::parse_history_record(tern::store::serialize_history_record(r));
	REQUIRE(back);
	CHECK(tern::store::serialize_history_record(*back) == tern::store::serialize_history_record(r));
	CHECK(back->identity.dkim_domains == r.identity.dkim_domains);
	CHECK(back->junk == JunkMark::notjunk);
	CHECK(back->rejected);
	CHECK(back->identity.ip2 == r.identity.ip2);
	CHECK_FALSE(tern::store::parse_history_record(""));
	CHECK_FALSE(
	    tern::store::parse_history_record("\x01\x05"
	                                      "ab"));
	CHECK_FALSE(tern::store::parse_history_record("\x09"));
}

TEST_CASE("history: IP masks are the three network widths") {
	auto v4 = tern::store::ip_masks("192.0.2.77");
	CHECK(v4[0] == "192.0.2.77/32");
	CHECK(v4[1] == "192.0.2.64/26");
	CHECK(v4[2] == "192.0.0.0/21");
	auto v6 = tern::store::ip_masks("2001:db8:1:2:3::9");
	CHECK(v6[0] == "2001:db8:1:2::/64");
	CHECK(v6[1] == "2001:db8:1::/48");
	CHECK(v6[2] == "2001:db8::/32");
	CHECK(tern::store::ip_masks("nonsense")[0].empty());
}

TEST_CASE_FIXTURE(HistoryDb, "history: a sender the user marked junk is refused by reputation, a kept one accepted") {
	std::vector<HistoryRecord> records{message_from("spam", "bad.example", "198.51.100.1", now - 3600, "u1"),
	                                   message_from("friend", "good.example", "203.0.113.5", now - 3600, "u2")};
	history.add(records);
	CHECK(records[0].id != 0);
	CHECK(records[1].id == records[0].id + 1);

	tern::inbound::MessageIdentity spam = records[0].identity;
	// Unmarked messages say nothing.
	CHECK(history.reputation("mjl", spam, now).method == "none");

	auto found = history.find_by_unique_name("mjl", "u1");
	REQUIRE(found);
	found->junk = JunkMark::junk;
	found->mailbox = "Junk";
	CHECK(replace(history, *found));
	auto answer = history.reputation("mjl", spam, now);
	CHECK(answer.method == "msgfromfull");
	CHECK(answer.conclusive);
	CHECK(answer.junk);

	auto kept = history.find_by_unique_name("mjl", "u2");
	kept->junk = JunkMark::notjunk;
	replace(history, *kept);
	answer = history.reputation("mjl", records[1].identity, now);
	CHECK(answer.method == "msgfromfull");
	CHECK_FALSE(answer.junk);

	// Another account's history is not consulted.
	CHECK(history.reputation("other", spam, now).method == "none");

	// Once expunged, the marked message no longer counts.
	found->expunged = true;
	replace(history, *found);
	CHECK(history.reputation("mjl", spam, now).method == "none");
	CHECK(history.in_mailbox("mjl", "Junk").empty());
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 1);
}

// The history writes through its own table handles: its changes count as
// written (the database upkeep checkpoints after them), its reads do not.
TEST_CASE_FIXTURE(HistoryDb, "history: adding and updating count as database writes, reading and counting do not") {
	std::vector<HistoryRecord> records{message_from("friend", "good.example", "203.0.113.5", now - 3600, "u1")};
	uint64_t before = env.writes_committed();
	// The scanner counts the records at start: a table never written to
	// has none, and stays unwritten.
	CHECK(history.record_count() == 0);
	CHECK(env.writes_committed() == before);
	history.add(records);
	CHECK(history.record_count() == 1);
	CHECK(env.writes_committed() > before);
	before = env.writes_committed();
	auto found = history.find_by_unique_name("mjl", "u1");
	REQUIRE(found);
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 1);
	CHECK(env.writes_committed() == before);
	found->junk = JunkMark::junk;
	CHECK(replace(history, *found));
	CHECK(env.writes_committed() > before);
}

TEST_CASE_FIXTURE(HistoryDb, "history: the newest marked messages come first and old ones fall out of the window") {
	// An old not-junk message, then a newer junk one from the same address.
	std::vector<HistoryRecord> records{message_from("x", "mixed.example", "198.51.100.9", now - 86400 * 10, "old"),
	                                   message_from("x", "mixed.example", "198.51.100.9", now - 60, "new")};
	records[0].junk = JunkMark::notjunk;
	records[1].junk = JunkMark::junk;
	history.add(records);
	env.with_tables("test", false, [&](const Env::Tables& t) {
		tern::store::TxnHistory h(t, "mjl");
		auto msgs = h.marked_messages(
		    {tern::inbound::HistoryKey::from_address, "x@mixed.example", std::nullopt, now - 86400 * 30, 1});
		REQUIRE(msgs.size() == 1);
		CHECK(msgs[0].junk);
		CHECK(msgs[0].received == now - 60);
		msgs = h.marked_messages(
		    {tern::inbound::HistoryKey::ip1, records[0].identity.ip1, std::nullopt, now - 86400 * 30, 0});
		CHECK(msgs.size() == 2);
		msgs = h.marked_messages(
		    {tern::inbound::HistoryKey::from_domain, "mixed.example", std::nullopt, now - 3600, 0});
		CHECK(msgs.size() == 1);
		msgs = h.marked_messages(
		    {tern::inbound::HistoryKey::from_domain, "mixed.example", false, now - 86400 * 30, 0});
		CHECK(msgs.empty());  // both From addresses validated
	});
}

TEST_CASE_FIXTURE(HistoryDb, "history: delivery counts per network over the last minute and day") {
	std::vector<HistoryRecord> records{message_from("a", "x.example", "192.0.2.1", now - 10, "m1"),
	                                   message_from("a", "x.example", "192.0.2.2", now - 120, "m2"),
	                                   message_from("a", "x.example", "192.0.2.1", now - 90000, "m3")};
	records[1].size = 5000;
	history.add(records);
	auto counts = history.delivery_counts("mjl", tern::store::ip_masks("192.0.2.1"), now);
	CHECK(counts[0].messages_minute == 1);
	CHECK(counts[0].messages_day == 1);
	CHECK(counts[1].messages_day == 2);
	CHECK(counts[1].bytes_day == 6000);
	CHECK(counts[2].messages_minute == 1);
	CHECK(history.delivery_counts("other", tern::store::ip_masks("192.0.2.1"), now)[0].messages_day == 0);
	auto limits = tern::inbound::default_delivery_rate_limits();
	limits[1].messages_per_day = 2;
	CHECK(tern::inbound::delivery_rate_refusal(counts, 10, limits) ==
	      "more than 2 messages in past 24h0m0s from your ip/network");
	// Copies added after the counts were first read count too.
	std::vector<HistoryRecord> more{message_from("a", "x.example", "192.0.2.1", now - 1, "m4")};
	history.add(more);
	counts = history.delivery_counts("mjl", tern::store::ip_masks("192.0.2.1"), now);
	CHECK(counts[0].messages_minute == 2);
	CHECK(counts[1].messages_day == 3);
}

// A record that does not decode (damage, a newer tern's format) is passed
// over by every reader: one damaged record must neither refuse an account's
// mail (delivery-rate counts, Rejects copies) nor stop the pruning.
TEST_CASE_FIXTURE(HistoryDb, "history: a record that does not decode is passed over, and pruned") {
	auto records = with_rejects_copy({message_from("a", "x.example", "192.0.2.1", now - 10, "m1"),
	                                  message_from("a", "x.example", "192.0.2.1", now - 5, "r1")},
	                                 1);
	history.add(records);
	env.in_table("history.db", [&](tern::store::TableTxn& t) {
		t.put(tern::store::be64(records[1].id), "not a history record");
	});
	// The counts are built afresh at the next use, as after a start.
	env.history_rates().built = false;
	std::array<tern::inbound::NetworkHistoryCount, 3> counts{};
	CHECK_NOTHROW(counts = history.delivery_counts("mjl", tern::store::ip_masks("192.0.2.1"), now));
	CHECK(counts[0].messages_minute == 1);
	std::vector<tern::inbound::RejectCopy> rejects{{"x", "", "", 0}};
	CHECK_NOTHROW(rejects = history.rejects("mjl"));
	CHECK(rejects.empty());
	CHECK(history.count() == 2);
	CHECK(history.prune(now + 1) == 1);  // the record that decodes; the other is dropped too
	CHECK(history.count() == 0);
}

TEST_CASE("history: delivery counts follow expunges and scanner updates, and survive a restart") {
	tern::testing::TempDir dir;
	auto masks = tern::store::ip_masks("192.0.2.1");
	{
		Env env(dir.path);
		MessageHistory history(env);
		std::vector<HistoryRecord> records{message_from("a", "x.example", "192.0.2.1", now - 10, "e1"),
		                                   message_from("a", "x.example", "192.0.2.1", now - 20, "e2"),
		                                   message_from("a", "x.example", "192.0.2.1", now - 3600, "e3"),
		                                   message_from("a", "x.example", "192.0.2.1", now - 7200, "e4")};
		history.add(records);
		CHECK(history.delivery_counts("mjl", masks, now)[0].messages_day == 4);
		history.mark_expunged("mjl", {"e1"});
		auto counts = history.delivery_counts("mjl", masks, now);
		CHECK(counts[0].messages_day == 3);
		CHECK(counts[0].messages_minute == 1);
		// The scanner finds e2 gone from every folder, then e3 moved to Junk.
		auto e2 = *history.find_by_unique_name("mjl", "e2");
		e2.expunged = true;
		CHECK(replace(history, e2));
		auto e3 = *history.find_by_unique_name("mjl", "e3");
		e3.mailbox = "Junk";
		e3.junk = JunkMark::junk;
		CHECK(replace(history, e3));
		counts = history.delivery_counts("mjl", masks, now);
		CHECK(counts[0].messages_day == 2);
		CHECK(counts[0].messages_minute == 0);
		CHECK(counts[0].bytes_day == 2000);
	}
	{
		// A restarted ternd builds the same counts from the tables.
		Env env(dir.path);
		auto counts = MessageHistory(env).delivery_counts("mjl", masks, now);
		CHECK(counts[0].messages_day == 2);
		CHECK(counts[2].bytes_day == 2000);
	}
	{
		// Changes made before the first read are in the counts it builds.
		Env env(dir.path);
		MessageHistory(env).mark_expunged("mjl", {"e3"});
		CHECK(MessageHistory(env).delivery_counts("mjl", masks, now)[0].messages_day == 1);
	}
}

TEST_CASE_FIXTURE(HistoryDb,
                  "history: the record count is kept by add and prune, and counted once for an old history") {
	CHECK(history.record_count() == 0);
	std::vector<HistoryRecord> records{message_from("a", "x.example", "192.0.2.1", now - 1000, "c1"),
	                                   message_from("a", "x.example", "192.0.2.1", now - 10, "c2"),
	                                   message_from("a", "x.example", "192.0.2.1", now - 5, "c3")};
	history.add(records);
	CHECK(history.record_count() == 3);
	CHECK(history.prune(now - 500) == 1);
	CHECK(history.record_count() == 2);
	// A history written before the count was kept: the first call walks it.
	env.with_tables("test", false, [&](const Env::Tables& t) {
		DBT key{};
		key.data = const_cast<char*>("count");
		key.size = 5;
		REQUIRE(t.history->del(t.history, t.txn, &key, 0) == 0);
	});
	std::vector<HistoryRecord> later{message_from("a", "x.example", "192.0.2.1", now - 1, "c4")};
	history.add(later);  // leaves the missing count alone
	CHECK(history.record_count() == 3);
	CHECK(history.record_count() == history.count());
	history.add(later);
	CHECK(history.record_count() == 4);
}

TEST_CASE_FIXTURE(HistoryDb, "history: Rejects copies are listed until expunged") {
	auto records = with_rejects_copy({message_from("a", "x.example", "192.0.2.1", now - 10, "r1"),
	                                  message_from("a", "x.example", "192.0.2.1", now - 5, "i1")},
	                                 0);
	history.add(records);
	auto rejects = history.rejects("mjl");
	REQUIRE(rejects.size() == 1);
	CHECK(rejects[0].unique_name == "r1");
	CHECK(rejects[0].message_id == "<r1@x.example>");
	history.mark_expunged("mjl", {"r1"});
	CHECK(history.rejects("mjl").empty());
	CHECK(history.find_by_unique_name("mjl", "r1")->expunged);
}

// The scanner's look for deleted folders: each mailbox that holds a
// non-expunged record once, a name that begins another ("A", "A.b") as its
// own, and neither expunged records nor another account's mailboxes.
TEST_CASE_FIXTURE(HistoryDb, "history: the mailboxes with records are listed once each, per account") {
	auto in = [](std::string mailbox, const std::string& unique, const std::string& account = "mjl") {
		HistoryRecord r = message_from("a", "x.example", "192.0.2.1", now - 10, unique);
		r.mailbox = std::move(mailbox);
		r.account = account;
		return r;
	};
	std::vector<HistoryRecord> records{
	    in("INBOX", "i1"), in("INBOX", "i2"), in("A", "a1"),    in("A.b", "ab1"),           in("A.b", "ab2"),
	    in("Ab", "ab3"),   in("Gone", "g1"),  in("Gone", "g2"), in("Other", "o1", "other"), in("Z", "z1", "other")};
	history.add(records);
	CHECK(history.mailboxes_with_records("mjl") == std::vector<std::string>{"A", "A.b", "Ab", "Gone", "INBOX"});
	CHECK(history.mailboxes_with_records("other") == std::vector<std::string>{"Other", "Z"});
	CHECK(history.mailboxes_with_records("mj").empty());  // a prefix of an account's name is no account
	CHECK(history.mailboxes_with_records("nobody").empty());

	// Expunged records are in no mailbox.
	CHECK(history.mark_expunged("mjl", {"g1", "g2", "a1"}) == 3);
	CHECK(history.mailboxes_with_records("mjl") == std::vector<std::string>{"A.b", "Ab", "INBOX"});
}

// The call the scanner updates a record with applies its change to the
// record as stored when the call runs: an expunge made after the scanner's
// listing is what the change sees, and it stays. (This checks the call;
// the race it closes, a write between a read and the write-back inside
// the old two-transaction update, has no point a test could stop at.)
TEST_CASE_FIXTURE(HistoryDb, "history: update_by_unique_name changes the record as stored, not as read before") {
	auto records = with_rejects_copy({message_from("a", "x.example", "192.0.2.1", now - 10, "r1")}, 0);
	history.add(records);
	// The scanner's listing: the record as the pass first read it.
	REQUIRE(history.in_mailbox("mjl", "Rejects").size() == 1);
	// Another writer, before the scanner's update.
	CHECK(history.mark_expunged("mjl", {"r1"}) == 1);
	// The scanner's update: a junk mark from the file's keywords.
	bool saw_expunged = false;
	auto changed = history.update_by_unique_name("mjl", "r1", [&](HistoryRecord& r) {
		saw_expunged = r.expunged;
		r.junk = JunkMark::junk;
		return true;
	});
	CHECK(saw_expunged);
	REQUIRE(changed);
	CHECK(changed->before.junk == JunkMark::unknown);
	CHECK(changed->after.expunged);
	auto stored = history.find_by_unique_name("mjl", "r1");
	REQUIRE(stored);
	CHECK(stored->expunged);
	CHECK(stored->junk == JunkMark::junk);
	CHECK(history.rejects("mjl").empty());
	CHECK(history.in_mailbox("mjl", "Rejects").empty());
	// A change that changes nothing writes nothing; no record, no change.
	const uint64_t writes = env.writes_committed();
	CHECK_FALSE(history.update_by_unique_name("mjl", "r1", [](HistoryRecord&) { return false; }));
	CHECK_FALSE(history.update_by_unique_name("mjl", "absent", [](HistoryRecord&) { return true; }));
	CHECK(env.writes_committed() == writes);
}

TEST_CASE_FIXTURE(HistoryDb, "history: the delivery's combined lookup answers as reputation() and rejects() do") {
	auto records = with_rejects_copy({message_from("spam", "bad.example", "198.51.100.1", now - 30, "r1"),
	                                  message_from("spam", "bad.example", "198.51.100.1", now - 20, "j1")},
	                                 0);
	records[1].junk = JunkMark::junk;
	records[1].mailbox = "Junk";
	history.add(records);
	const tern::inbound::MessageIdentity& sender = records[1].identity;
	auto both = history.reputation_and_rejects("mjl", sender, now);
	auto alone = history.reputation("mjl", sender, now);
	CHECK(both.reputation.method == "msgfromfull");
	CHECK(both.reputation.method == alone.method);
	CHECK(both.reputation.conclusive == alone.conclusive);
	CHECK(both.reputation.junk == alone.junk);
	REQUIRE(both.rejects.size() == 1);
	CHECK(both.rejects[0].unique_name == "r1");
	CHECK(both.rejects[0].sha256 == history.rejects("mjl")[0].sha256);
	// Another account: nothing known, no copies.
	auto other = history.reputation_and_rejects("other", sender, now);
	CHECK(other.reputation.method == "none");
	CHECK(other.rejects.empty());
}

TEST_CASE("history: mail the account sent decides by address, domain and organizational domain") {
	tern::testing::TempDir dir;
	Env env(dir.path);
	env.record_outgoing("mjl", {"Bob@Mail.Partner.example"}, now - 100);
	env.with_tables("test", false, [&](const Env::Tables& t) {
		tern::store::TxnHistory h(t, "mjl");
		CHECK(h.sent_to_address("Bob", "Mail.Partner.example", now - 1000));
		CHECK_FALSE(h.sent_to_address("Bob", "Mail.Partner.example", now));
		CHECK_FALSE(h.sent_to_address("carol", "mail.partner.example", now - 1000));
		CHECK(h.sent_to_domain("mail.partner.example", now - 1000));
		CHECK_FALSE(h.sent_to_domain("partner.example", now - 1000));
		CHECK(h.sent_to_org_domain("partner.example", now - 1000));
		CHECK_FALSE(h.sent_to_org_domain("artner.example", now - 1000));
		CHECK_FALSE(h.sent_to_org_domain("partner.example", now));
		tern::store::TxnHistory other(t, "someone");
		CHECK_FALSE(other.sent_to_domain("mail.partner.example", now - 1000));
	});
	// And reputation() concludes from it.
	MessageHistory history(env);
	tern::inbound::MessageIdentity m;
	m.from_localpart = "Bob";
	m.from_domain = "Mail.Partner.example";
	CHECK(history.reputation("mjl", m, now).method == "msgtofull");
}

TEST_CASE_FIXTURE(HistoryDb, "history: pruning removes records older than the cutoff with their indexes") {
	std::vector<HistoryRecord> records{message_from("a", "x.example", "192.0.2.1", now - 1000, "p1"),
	                                   message_from("a", "x.example", "192.0.2.1", now - 10, "p2")};
	records[0].junk = JunkMark::junk;
	history.add(records);
	CHECK(history.count() == 2);
	CHECK(history.prune(now - 500) == 1);
	CHECK(history.count() == 1);
	CHECK_FALSE(history.find_by_unique_name("mjl", "p1"));
	CHECK(history.reputation("mjl", records[0].identity, now).method == "none");
	CHECK(history.delivery_counts("mjl", tern::store::ip_masks("192.0.2.1"), now)[0].messages_day == 1);
	// Pruning within the day (a short max age) takes the copies out of the
	// counts already read.
	CHECK(history.prune(now) == 1);
	CHECK(history.delivery_counts("mjl", tern::store::ip_masks("192.0.2.1"), now)[0].messages_day == 0);
}

namespace {

// A raw write in a transaction of Env::with_tables.
void put_raw(DB* table, DB_TXN* txn, const std::string& key, const std::string& value) {
	DBT k, v;
	std::memset(&k, 0, sizeof k);
	std::memset(&v, 0, sizeof v);
	k.data = const_cast<char*>(key.data());
	k.size = static_cast<u_int32_t>(key.size());
	v.data = const_cast<char*>(value.data());
	v.size = static_cast<u_int32_t>(value.size());
	int rc = table->put(table, txn, &k, &v, 0);
	if (rc != 0) throw tern::store::DbError(std::string("test write: ") + db_strerror(rc), rc);
}

}  // namespace

// A reputation lookup reads the history index, then the outgoing table; a
// writer that holds the outgoing page and then writes the index closes a
// cycle, and the database makes one of the two its deadlock victim. The
// victim's transaction must run again: the writer's rows land and the
// lookup answers without error. A lookup that turned the deadlock into an
// answer (451 reputation-error for clean mail) went on in the dead
// transaction, and its commit failed ("previous transaction deadlock
// return not resolved").
TEST_CASE_FIXTURE(HistoryDb,
                  "history: a reputation lookup that a deadlock stops is run again, not answered as an error") {
	std::vector<HistoryRecord> records{message_from("new", "sender.example", "198.51.100.1", now - 3600, "u1")};
	history.add(records);
	const tern::inbound::MessageIdentity identity = records[0].identity;
	for (int round = 0; round < 8; round++) {
		const std::string key = "zz-writer-" + std::to_string(round);
		std::atomic<bool> writer_holds_outgoing{false};
		std::string writer_error;
		std::thread writer([&] {
			try {
				env.with_tables("test writer", false, [&](const Env::Tables& t) {
					put_raw(t.outgoing, t.txn, key, "x");
					writer_holds_outgoing = true;
					// Time for the lookup to read the index and wait on the
					// outgoing page.
					std::this_thread::sleep_for(std::chrono::milliseconds(100));
					put_raw(t.history_index, t.txn, key, "x");
				});
			} catch (const std::exception& e) {
				writer_error = e.what();
				writer_holds_outgoing = true;
			}
		});
		while (!writer_holds_outgoing) std::this_thread::yield();
		tern::inbound::ReputationAnswer answer;
		std::string lookup_error;
		try {
			answer = history.reputation("mjl", identity, now);
		} catch (const std::exception& e) {
			lookup_error = e.what();
		}
		writer.join();
		INFO("round " << round);
		CHECK(writer_error == "");
		CHECK(lookup_error == "");
		CHECK_FALSE(answer.error);
		CHECK(answer.method == "none");
	}
}
