// The self-describing queue file format (src/queue/queue_file.h): round
// trip, in-place updates, and damaged headers refused cleanly; plus the
// rebuild of lost records from files on disk.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include "files.h"
#include "queue/queue_file.h"
#include "store/db.h"

using namespace tern::queue;
using tern::testing::TempDir;

namespace {

QueueFileEnvelope sample_envelope() {
	QueueFileEnvelope e;
	e.queued = 1796270752;
	e.sender_account = "alice";
	e.from = "alice@test.example";
	e.message_id = "m1@test.example";
	e.has_8bit = true;
	e.smtputf8 = false;
	e.dsn_utf8 = "";
	e.data_size = 11;
	// A prefix with CR LF, a colon and digits: values are length-counted.
	e.recipients.push_back(
	    {"carol@remote.example", "remote.example", "Received: from x\r\n\tby y; 1:2\r\n", RecipientState::pending});
	e.recipients.push_back({"dave@other.example", "other.example", "", RecipientState::delivered});
	return e;
}

const std::string data = "Subject: x\n";  // 11 bytes

std::optional<ParsedQueueFile> parse(const std::string& file, std::string& error) {
	return parse_queue_file_header(file, static_cast<int64_t>(file.size()), error);
}

// A queue directory and a message's data file, for the rebuild's tests.
struct QueueDir {
	TempDir tmp;
	std::string qdir = tmp.path + "/queue";
	std::string data_path = tmp.path + "/data";
	QueueDir() {
		REQUIRE(::mkdir(qdir.c_str(), 0700) == 0);
		tern::testing::write_file(data_path, data);
	}
};

}  // namespace

TEST_CASE("queue file: header round trip, data offset and in-place bytes") {
	QueueFileLayout layout;
	QueueFileEnvelope e = sample_envelope();
	std::string header = encode_queue_file_header(e, &layout);
	CHECK(header.compare(0, 13, "tern-queue 1 ") == 0);
	CHECK(layout.data_offset == static_cast<int64_t>(header.size()));
	REQUIRE(layout.state_offsets.size() == 2);
	CHECK(header[layout.acknowledged_offset] == '0');
	CHECK(header[layout.state_offsets[0]] == 'P');
	CHECK(header[layout.state_offsets[1]] == 'D');

	std::string file = header + data;
	std::string error;
	auto parsed = parse(file, error);
	REQUIRE_MESSAGE(parsed, error);
	CHECK(parsed->envelope == e);
	CHECK(parsed->layout.data_offset == layout.data_offset);
	CHECK(parsed->layout.state_offsets == layout.state_offsets);
	CHECK(file.substr(static_cast<size_t>(parsed->layout.data_offset)) == data);

	// The acknowledged flag and states change in place; the checksum holds.
	file[layout.acknowledged_offset] = '1';
	file[layout.state_offsets[0]] = 'F';
	parsed = parse(file, error);
	REQUIRE_MESSAGE(parsed, error);
	CHECK(parsed->envelope.acknowledged);
	CHECK(parsed->envelope.recipients[0].state == RecipientState::failed);
	// A state byte that is none of the known ones is refused.
	file[layout.state_offsets[0]] = 'Q';
	CHECK_FALSE(parse(file, error));
	CHECK(error.find("rcpt-state") != std::string::npos);
}

TEST_CASE("queue file: truncated, garbled or foreign files are refused with a reason") {
	std::string file = encode_queue_file_header(sample_envelope()) + data;
	std::string error;
	SUBCASE("every truncation") {
		for (size_t n = 0; n < file.size(); n++) {
			INFO(n);
			std::string cut = file.substr(0, n);
			CHECK_FALSE(parse(cut, error));
			CHECK(!error.empty());
		}
	}
	SUBCASE("data longer than announced") {
		CHECK_FALSE(parse(file + "x", error));
		CHECK(error == "queue file longer than announced");
	}
	SUBCASE("one garbled byte anywhere in the header") {
		QueueFileLayout layout;
		std::string header = encode_queue_file_header(sample_envelope(), &layout);
		for (size_t i = 0; i < header.size(); i++) {
			if (static_cast<int64_t>(i) == layout.acknowledged_offset ||
			    static_cast<int64_t>(i) == layout.state_offsets[0] ||
			    static_cast<int64_t>(i) == layout.state_offsets[1])
				continue;  // updated in place, checked by value
			std::string bad = file;
			bad[i] = static_cast<char>(bad[i] ^ 0x01);
			INFO(i);
			CHECK_FALSE(parse(bad, error));
		}
	}
	SUBCASE("a message file without a header") {
		std::string plain = "Subject: an old queue file\r\n\r\nbody\r\n";
		CHECK_FALSE(parse(plain, error));
		CHECK(error == "not a queue file (no envelope header)");
	}
	SUBCASE("a huge announced header size") {
		std::string bad = file;
		bad.replace(13, 10, "9999999999");
		CHECK_FALSE(parse(bad, error));
		CHECK(error == "queue file header size is garbled");
	}
}

TEST_CASE("queue file: link and temp names") {
	CHECK(queue_link_index("1796270752-abcd.0") == size_t(0));
	CHECK(queue_link_index("1796270752-abcd.12") == size_t(12));
	CHECK_FALSE(queue_link_index("1796270752-abcd"));
	CHECK_FALSE(queue_link_index("1796270752-abcd.x"));
	CHECK_FALSE(queue_link_index(".1796270752-abcd.new"));
	CHECK(queue_link_base("1796270752-abcd.3") == "1796270752-abcd");
	CHECK(queue_temp_name("b-1") == ".b-1.new");
	CHECK(queue_temp_base(".b-1.new") == "b-1");
	CHECK(queue_temp_base("b-1.0") == "");
}

// Two rebuilds at once (SIGUSR2 twice, start-up and `ternctl queue
// rebuild`) must not both make a record for the same link.
TEST_CASE_FIXTURE(QueueDir, "queue file: rebuilds at the same time make one record per link") {
	QueueFileEnvelope e = sample_envelope();
	e.recipients.resize(1);
	constexpr int files = 200;
	for (int i = 0; i < files; ++i) {
		const std::string path = qdir + "/m" + std::to_string(i) + ".0";
		QueueFileLayout layout = write_queue_file(path, e, data_path);
		REQUIRE(poke_queue_file(path, layout.acknowledged_offset, '1'));
	}
	tern::store::Env env(tmp.path);
	std::atomic<int> ready{0};
	auto rebuild = [&] {
		ready.fetch_add(1);
		while (ready.load() < 2) std::this_thread::yield();
		rebuild_queue(env, qdir, 1796270800, nullptr);
	};
	std::thread a(rebuild), b(rebuild);
	a.join();
	b.join();
	auto records = env.queue_list();
	std::set<std::string> linked;
	for (const auto& r : records) linked.insert(r.message_file);
	CHECK(records.size() == files);
	CHECK(linked.size() == files);
}

TEST_CASE_FIXTURE(QueueDir, "queue file: rebuild restores pending recipients of acknowledged files only") {
	QueueFileEnvelope e = sample_envelope();
	e.recipients[1].state = RecipientState::pending;
	// Acknowledged, two recipients: recipient 1 is then delivered.
	QueueFileLayout layout = write_queue_file(qdir + "/m1.0", e, data_path);
	REQUIRE(::link((qdir + "/m1.0").c_str(), (qdir + "/m1.1").c_str()) == 0);
	REQUIRE(poke_queue_file(qdir + "/m1.0", layout.acknowledged_offset, '1'));
	REQUIRE(mark_recipient(qdir, "m1.1", RecipientState::delivered));
	// Never acknowledged (its enqueue died before the commit).
	write_queue_file(qdir + "/m2.0", e, data_path);
	// A temp file of an interrupted enqueue, a damaged file, and one being
	// enqueued right now.
	tern::testing::write_file(qdir + "/" + queue_temp_name("m3"), "partial");
	tern::testing::write_file(qdir + "/m4.0", "tern-queue 1 00000");
	write_queue_file(qdir + "/m5.0", e, data_path);

	tern::store::Env env(tmp.path);
	RebuildReport r = rebuild_queue(env, qdir, 1796270800, [](const std::string& base) { return base == "m5"; });
	CHECK(r.rebuilt == 1);
	CHECK(r.removed == 3);  // m1.1 (delivered), m2.0 (unacknowledged), the temp file
	CHECK(r.unreadable == 1);
	auto records = env.queue_list();
	REQUIRE(records.size() == 1);
	CHECK(records[0].message_file == "m1.0");
	CHECK(records[0].to == "carol@remote.example");
	CHECK(records[0].from == "alice@test.example");
	CHECK(records[0].sender_account == "alice");
	CHECK(records[0].prefix == e.recipients[0].prefix);
	CHECK(records[0].size == static_cast<int64_t>(e.recipients[0].prefix.size() + data.size()));
	CHECK(records[0].data_offset == layout.data_offset);
	CHECK(records[0].next_attempt == 1796270800);
	CHECK(records[0].has_8bit);
	CHECK(::access((qdir + "/m1.1").c_str(), F_OK) != 0);
	CHECK(::access((qdir + "/m2.0").c_str(), F_OK) != 0);
	CHECK(::access((qdir + "/m4.0").c_str(), F_OK) == 0);
	CHECK(::access((qdir + "/m5.0").c_str(), F_OK) == 0);

	// Referenced now: a second rebuild adds nothing.
	RebuildReport again = rebuild_queue(env, qdir, 1796270800,
	                                    [](const std::string& base) { return base == "m5"; });
	CHECK(again.rebuilt == 0);
	CHECK(env.queue_list().size() == 1);

	// The copy is delivered and marked, but its record's removal failed (a
	// database error, a crash right after the mark): the record goes now,
	// with its link, or the copy would be sent a second time.
	REQUIRE(mark_recipient(qdir, "m1.0", RecipientState::delivered));
	RebuildReport finished = rebuild_queue(env, qdir, 1796270800,
	                                       [](const std::string& base) { return base == "m5"; });
	CHECK(finished.removed == 1);
	CHECK(env.queue_list().empty());
	CHECK(::access((qdir + "/m1.0").c_str(), F_OK) != 0);
}

TEST_CASE("queue file: DSN parameters and REQUIRETLS round trip; files without them read with defaults") {
	QueueFileEnvelope e = sample_envelope();
	std::string error;
	// An envelope without the optional fields writes none of them: such a
	// file is what an older tern wrote, and it reads with the defaults.
	std::string old_style = encode_queue_file_header(e) + data;
	CHECK(old_style.find("dsn-ret") == std::string::npos);
	CHECK(old_style.find("rcpt-notify") == std::string::npos);
	auto parsed = parse(old_style, error);
	REQUIRE_MESSAGE(parsed, error);
	CHECK(parsed->envelope.dsn_ret.empty());
	CHECK_FALSE(parsed->envelope.requiretls);
	CHECK(parsed->envelope.recipients[0].notify == 0);

	e.dsn_ret = "HDRS";
	e.envid = "QQ 3.14";
	e.requiretls = true;
	e.recipients[0].notify = 1 | 4;
	e.recipients[0].orcpt = "utf-8;j\xc3\xb6rg@example.com";
	std::string file = encode_queue_file_header(e) + data;
	parsed = parse(file, error);
	REQUIRE_MESSAGE(parsed, error);
	CHECK(parsed->envelope == e);

	// The queue record a rebuild makes carries them.
	tern::store::QueueRecord r = queue_record_for(parsed->envelope, 0, "b.0", parsed->layout.data_offset, 5);
	CHECK(r.dsn_ret == "HDRS");
	CHECK(r.envid == "QQ 3.14");
	CHECK(r.requiretls);
	CHECK(r.notify == 5);
	CHECK(r.orcpt == "utf-8;j\xc3\xb6rg@example.com");
	CHECK(queue_record_for(parsed->envelope, 1, "b.1", parsed->layout.data_offset, 5).notify == 0);

	// And the database record keeps them too.
	auto back = tern::store::parse_queue_record(tern::store::serialize_queue_record(r));
	REQUIRE(back);
	CHECK(*back == r);

	// A bad value is refused like any other.
	e.dsn_ret = "ALL";
	CHECK_FALSE(parse(encode_queue_file_header(e) + data, error));
	CHECK(error.find("dsn-ret") != std::string::npos);
}

// The header announces the data's size: a spool file of another size is
// refused before anything is copied, and no partial queue file stays.
TEST_CASE("queue file: write_queue_file refuses data of another size than announced") {
	TempDir tmp;
	std::string data_path = tmp.path + "/data";
	tern::testing::write_file(data_path, data);
	for (int64_t announced : {int64_t(10), int64_t(12)}) {
		QueueFileEnvelope e = sample_envelope();
		e.data_size = announced;
		std::string error;
		try {
			write_queue_file(tmp.path + "/q", e, data_path);
		} catch (const std::runtime_error& ex) {
			error = ex.what();
		}
		CHECK(error == "message file " + data_path + " has 11 bytes, expected " + std::to_string(announced));
		CHECK(::access((tmp.path + "/q").c_str(), F_OK) != 0);
	}
	QueueFileEnvelope e = sample_envelope();
	write_queue_file(tmp.path + "/q", e, data_path);
	std::string error;
	auto parsed = read_queue_file(tmp.path + "/q", error);
	REQUIRE_MESSAGE(parsed, error);
}
