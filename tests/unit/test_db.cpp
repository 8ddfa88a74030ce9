// The Berkeley DB store (doc/design.md "Storage", doc/behaviour.md §8 and §12).
#include <doctest/doctest.h>

#include <db.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/db.h"
#include "store/records.h"
#include "store/table.h"
#include "unit/files.h"

using tern::store::DbError;
using tern::store::Env;
using tern::store::OutgoingLog;
using tern::store::parse_queue_record;
using tern::store::QueueRecord;
using tern::store::serialize_queue_record;

namespace {

using tern::testing::read_file;
using tern::testing::TempDir;
using tern::testing::write_file;

QueueRecord sample_record(const std::string& to) {
	QueueRecord r;
	r.queued = 1700000000;
	r.sender_account = "alice";
	r.from = "alice@example.org";
	r.to = to;
	r.recipient_domain = to.substr(to.find('@') + 1);
	r.next_attempt = 1700000000;
	r.has_8bit = true;
	r.size = 1234;
	r.message_id = "<abc@example.org>";
	r.prefix = "DKIM-Signature: v=1\r\n";
	r.message_file = "1700000000.abc";
	return r;
}

constexpr int64_t day = 24 * 3600;

}  // namespace

TEST_CASE("db: queue record serialization round-trips and rejects garbage") {
	QueueRecord r = sample_record("bob@example.net");
	r.id = 42;
	r.attempts = 3;
	r.last_attempt = -5;
	r.last_error = "451 4.7.1 try later";
	r.smtputf8 = true;
	r.dsn_utf8 = std::string("dsn\0with nul", 12);
	std::string blob = serialize_queue_record(r);
	auto back = parse_queue_record(blob);
	REQUIRE(back.has_value());
	CHECK(*back == r);

	CHECK_FALSE(parse_queue_record("").has_value());
	CHECK_FALSE(parse_queue_record(std::string(1, '\x02') + blob.substr(1)).has_value());  // unknown version
	CHECK_FALSE(parse_queue_record(blob.substr(0, blob.size() - 3)).has_value());          // truncated value
	// A field from a newer writer (tag 200) is skipped; missing fields keep defaults.
	std::string extended = std::string(1, '\x01') + "\xc8\x03xyz";
	auto minimal = parse_queue_record(extended);
	REQUIRE(minimal.has_value());
	CHECK(*minimal == QueueRecord{});
	// A boolean with a value other than 0/1 is malformed.
	CHECK_FALSE(parse_queue_record(std::string("\x01\x0b\x01\x07", 4)).has_value());
}

TEST_CASE("db: environment folder, reopen keeps data") {
	TempDir dir;
	{
		Env env(dir.path);
		CHECK(env.path() == dir.path + "/db");
		env.set_password_secrets("alice", "secret-1");
		QueueRecord r = sample_record("bob@example.net");
		CHECK(env.queue_add(r) == 1);
	}
	struct stat st {};
	REQUIRE(stat((dir.path + "/db").c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0700);
	CHECK(std::filesystem::exists(dir.path + "/db/passwords.db"));
	CHECK(std::filesystem::exists(dir.path + "/db/queue.db"));
	{
		Env env(dir.path);
		CHECK(env.password_secrets("alice") == std::optional<std::string>("secret-1"));
		auto list = env.queue_list();
		REQUIRE(list.size() == 1);
		CHECK(list[0].id == 1);
		CHECK(list[0].to == "bob@example.net");
		// The id counter survives the reopen: ids are never reused.
		QueueRecord r = sample_record("carol@example.net");
		CHECK(env.queue_add(r) == 2);
	}
}

TEST_CASE("db: data_dir that does not exist yet is created") {
	TempDir dir;
	Env env(dir.path + "/deeper/data");
	env.set_password_secrets("a", "b");
	CHECK(env.password_secrets("a") == std::optional<std::string>("b"));
}

TEST_CASE("db: passwords round-trip") {
	TempDir dir;
	Env env(dir.path);
	CHECK_FALSE(env.password_secrets("alice").has_value());
	std::string blob("\x01\x00binary\xff", 9);
	env.set_password_secrets("alice", blob);
	env.set_password_secrets("bob", "bob-secrets");
	CHECK(env.password_secrets("alice") == std::optional<std::string>(blob));
	CHECK(env.password_secrets("bob") == std::optional<std::string>("bob-secrets"));
	env.set_password_secrets("alice", "replaced");
	CHECK(env.password_secrets("alice") == std::optional<std::string>("replaced"));
	CHECK(env.remove_password_secrets("alice"));
	CHECK_FALSE(env.remove_password_secrets("alice"));
	CHECK_FALSE(env.password_secrets("alice").has_value());
	CHECK_FALSE(env.password_secrets("ali").has_value());
}

// The database upkeep asks for checkpoints only after transactions that
// wrote: read-only ones (an idle server's scans) leave the library alone.
TEST_CASE("db: only transactions that put or deleted count as written") {
	TempDir dir;
	Env env(dir.path);
	const uint64_t at_open = env.writes_committed();
	CHECK_FALSE(env.password_secrets("alice").has_value());
	CHECK_FALSE(env.remove_password_secrets("alice"));
	env.in_table("extra.db", [](tern::store::TableTxn& t) { CHECK_FALSE(t.get("k")); });
	CHECK(env.writes_committed() == at_open);
	env.set_password_secrets("alice", "secrets");
	CHECK(env.writes_committed() == at_open + 1);
	CHECK(env.remove_password_secrets("alice"));
	CHECK(env.writes_committed() == at_open + 2);
	env.in_table("extra.db", [](tern::store::TableTxn& t) { t.put("k", "v"); });
	CHECK(env.writes_committed() == at_open + 3);
	env.in_table("extra.db",
	             [](tern::store::TableTxn& t) { CHECK(t.get("k") == std::optional<std::string>("v")); });
	CHECK(env.writes_committed() == at_open + 3);
}

TEST_CASE("db: outgoing message counts over time") {
	TempDir dir;
	Env env(dir.path);
	env.record_outgoing("alice", {"a@x.org", "b@x.org"}, 1000);
	env.record_outgoing("alice", {"c@x.org"}, 2000);
	env.record_outgoing("alicia", {"d@x.org"}, 1500);  // another account, same prefix letters
	CHECK(env.count_outgoing_since("alice", 0) == 3);
	CHECK(env.count_outgoing_since("alice", 999) == 3);
	CHECK(env.count_outgoing_since("alice", 1000) == 1);  // strictly after
	CHECK(env.count_outgoing_since("alice", 1999) == 1);
	CHECK(env.count_outgoing_since("alice", 2000) == 0);
	CHECK(env.count_outgoing_since("alicia", 0) == 1);
	CHECK(env.count_outgoing_since("ali", 0) == 0);
	CHECK(env.count_outgoing_since("bob", -100) == 0);
	CHECK_THROWS_AS(env.count_outgoing_since("", 0), DbError);
}

TEST_CASE("db: first-time recipients follow the model's rules") {
	TempDir dir;
	Env env(dir.path);
	env.record_outgoing("alice", {"old@x.org"}, 100);
	env.record_outgoing("alice", {"old@x.org", "fresh@x.org"}, 10000);
	env.record_outgoing("alice", {"fresh@x.org"}, 10500);
	const int64_t since = 5000;
	// New message: never-seen new@ counts; old@ and fresh@ were sent to before.
	// Window {old@, fresh@}: old@ was used before the window (no), fresh@ first
	// appeared inside it (yes, once though it has two rows).
	CHECK(env.count_first_time_recipients("alice", {"old@x.org", "new@x.org", "fresh@x.org"}, since) == 2);
	CHECK(env.count_first_time_recipients("alice", {}, since) == 1);
	// Duplicates in the new message count per entry, as in the model.
	CHECK(env.count_first_time_recipients("alice", {"n1@x.org", "n1@x.org"}, since) == 3);
	// A window starting before everything: both old@ and fresh@ are first-time.
	CHECK(env.count_first_time_recipients("alice", {}, 0) == 2);
	// A window after everything: only the new message matters.
	CHECK(env.count_first_time_recipients("alice", {"old@x.org", "z@x.org"}, 20000) == 1);
	// Other accounts have their own history.
	CHECK(env.count_first_time_recipients("bob", {"old@x.org"}, since) == 1);
}

TEST_CASE("db: history rows older than 30 days are pruned, recipients stay known") {
	TempDir dir;
	Env env(dir.path);
	const int64_t t0 = 1700000000;
	env.record_outgoing("alice", {"r1@x.org", "r2@x.org"}, t0);
	env.record_outgoing("alice", {"r3@x.org"}, t0 + 10 * day);
	CHECK(env.count_outgoing_since("alice", 0) == 3);
	env.record_outgoing("alice", {"r4@x.org"}, t0 + 31 * day);
	// The t0 rows are gone, the t0+10d row (21 days old) stays.
	CHECK(env.count_outgoing_since("alice", 0) == 2);
	// r1@ is still known: not first-time.
	CHECK(env.count_first_time_recipients("alice", {"r1@x.org"}, t0 + 30 * day) == 1);  // r4@ in window only
}

TEST_CASE("db: send limit verdicts") {
	TempDir dir;
	Env env(dir.path);
	const int64_t now = 1700000000;
	env.record_outgoing("alice", {"a@x.org", "b@x.org", "c@x.org"}, now - 2 * day);  // outside the window
	env.record_outgoing("alice", {"a@x.org", "d@x.org"}, now - 3600);

	auto v = env.check_send_limits("alice", {"e@x.org"}, now, 3, 10);
	CHECK_FALSE(v.messages_reached);
	CHECK(v.messages == 2);
	CHECK(v.first_time == -1);  // 2 + 1 < 10: not evaluated

	v = env.check_send_limits("alice", {"e@x.org", "f@x.org"}, now, 3, 10);
	CHECK(v.messages_reached);  // 2 + 2 > 3

	// Evaluated once logged + recipients >= max_first_time: d@ (first use in
	// window) + e@ + f@ (never) = 3 first-time; a@ was used 2 days ago.
	v = env.check_send_limits("alice", {"e@x.org", "f@x.org"}, now, 100, 4);
	CHECK_FALSE(v.messages_reached);
	CHECK(v.first_time == 3);
	CHECK_FALSE(v.first_time_reached);
	v = env.check_send_limits("alice", {"e@x.org", "f@x.org"}, now, 100, 2);
	CHECK(v.first_time == 3);
	CHECK(v.first_time_reached);
}

TEST_CASE("db: queue add, get, list, update, remove") {
	TempDir dir;
	Env env(dir.path);
	CHECK(env.queue_list().empty());
	CHECK_FALSE(env.queue_get(1).has_value());

	QueueRecord a = sample_record("a@x.org");
	a.next_attempt = 500;
	QueueRecord b = sample_record("b@y.org");
	b.next_attempt = 300;
	uint64_t ida = env.queue_add(a);
	uint64_t idb = env.queue_add(b);
	CHECK(ida == 1);
	CHECK(a.id == 1);
	CHECK(idb == 2);

	std::vector<QueueRecord> many{sample_record("c@x.org"), sample_record("d@x.org"), sample_record("e@x.org")};
	for (auto& r : many) r.next_attempt = 700;
	env.queue_add_many(many);
	CHECK(many[0].id == 3);
	CHECK(many[1].id == 4);
	CHECK(many[2].id == 5);

	auto list = env.queue_list();
	REQUIRE(list.size() == 5);
	for (size_t i = 0; i < list.size(); ++i) CHECK(list[i].id == i + 1);
	CHECK(list[1] == b);
	CHECK(list[3].to == "d@x.org");
	// The scan sees the same records one by one, after one restart call.
	int restarts = 0;
	std::vector<std::string> visited;
	env.queue_scan([&] { restarts++; },
	               [&](const QueueRecord& r) {
			       CHECK(restarts == 1);
			       visited.push_back(std::to_string(r.id) + " " + r.to);
		       });
	CHECK(restarts == 1);
	CHECK(visited == std::vector<std::string>{"1 a@x.org", "2 b@y.org", "3 c@x.org", "4 d@x.org", "5 e@x.org"});

	auto got = env.queue_get(1);
	REQUIRE(got.has_value());
	CHECK(*got == a);

	b.attempts = 1;
	b.last_attempt = 310;
	b.next_attempt = 900;
	b.last_error = "421 busy";
	CHECK(env.queue_update(b));
	CHECK(*env.queue_get(2) == b);

	CHECK(env.queue_remove(1));
	CHECK_FALSE(env.queue_remove(1));
	CHECK_FALSE(env.queue_get(1).has_value());
	CHECK_FALSE(env.queue_update(a));  // gone: not resurrected
	CHECK_FALSE(env.queue_get(1).has_value());
	CHECK(env.queue_list().size() == 4);

	// Ids are never reused, even after removing the highest.
	CHECK(env.queue_remove(5));
	QueueRecord f = sample_record("f@x.org");
	CHECK(env.queue_add(f) == 6);
}

// One damaged record (disk damage, a newer tern's format) must not stop
// the queue: the scans pass it over, the others load and are due.
TEST_CASE("db: a queue record that does not decode is passed over by the scans") {
	TempDir dir;
	Env env(dir.path);
	QueueRecord a = sample_record("a@x.org");
	a.next_attempt = 500;
	QueueRecord b = sample_record("b@y.org");
	b.next_attempt = 300;
	env.queue_add(a);
	const uint64_t damaged = env.queue_add(b);
	env.in_table("queue.db",
	             [&](tern::store::TableTxn& t) { t.put(tern::store::be64(damaged), "not a queue record"); });
	auto listed = env.queue_list();
	REQUIRE(listed.size() == 1);
	CHECK(listed[0].to == "a@x.org");
	CHECK_THROWS_AS(env.queue_get(damaged), DbError);  // asked for by id: an error, as before
	// The rebuild's first step takes it out (then makes a record from its file).
	CHECK(env.queue_remove_undecodable() == 1);
	CHECK_FALSE(env.queue_get(damaged).has_value());
	CHECK(env.queue_list().size() == 1);
	CHECK(env.queue_remove_undecodable() == 0);
}

TEST_CASE("db: queue_add_many is atomic with its outgoing rows") {
	TempDir dir;
	Env env(dir.path);
	std::vector<QueueRecord> batch{sample_record("a@x.org"), sample_record("b@x.org")};
	OutgoingLog log{"alice", {"a@x.org", "b@x.org"}, 1000};
	env.queue_add_many(batch, &log);
	CHECK(batch[0].id == 1);
	CHECK(batch[1].id == 2);
	CHECK(env.count_outgoing_since("alice", 0) == 2);

	// The outgoing part fails (invalid account) after the queue rows were
	// written: nothing of the transaction remains and no ids are handed out.
	std::vector<QueueRecord> failing{sample_record("c@x.org"), sample_record("d@x.org")};
	OutgoingLog bad{"", {"c@x.org"}, 1000};
	CHECK_THROWS_AS(env.queue_add_many(failing, &bad), DbError);
	CHECK(failing[0].id == 0);
	CHECK(failing[1].id == 0);
	CHECK(env.queue_list().size() == 2);
	CHECK(env.count_outgoing_since("alice", 0) == 2);
	// The aborted transaction's counter increment rolled back as well.
	QueueRecord next = sample_record("e@x.org");
	CHECK(env.queue_add(next) == 3);
}

TEST_CASE("db: concurrent writers on one Env get unique ids") {
	TempDir dir;
	Env env(dir.path);
	constexpr int threads = 4, per_thread = 25;
	std::vector<std::thread> workers;
	std::atomic<int> failures{0};
	for (int t = 0; t < threads; ++t) {
		workers.emplace_back([&, t] {
			try {
				for (int i = 0; i < per_thread; ++i) {
					QueueRecord r = sample_record("t" + std::to_string(t) + "@x.org");
					env.queue_add(r);
					env.record_outgoing("alice", {"r" + std::to_string(i) + "@x.org"}, 1000 + i);
				}
			} catch (...) {
				++failures;
			}
		});
	}
	for (auto& w : workers) w.join();
	CHECK(failures == 0);
	auto list = env.queue_list();
	REQUIRE(list.size() == threads * per_thread);
	for (size_t i = 0; i < list.size(); ++i) CHECK(list[i].id == i + 1);
	CHECK(env.count_outgoing_since("alice", 0) == threads * per_thread);
}

TEST_CASE("db: a second process joins the environment while the first has it open") {
	TempDir dir;
	Env env(dir.path);
	env.set_password_secrets("parent", "p");
	constexpr int per_process = 30;

	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		// The child (standing in for ternctl) opens its own handle; it must
		// not touch the parent's and must leave without running destructors
		// or doctest's exit path.
		int code = 0;
		try {
			Env child(dir.path);
			if (child.password_secrets("parent") != std::optional<std::string>("p")) code = 3;
			for (int i = 0; i < per_process; ++i) {
				QueueRecord r = sample_record("child@x.org");
				child.queue_add(r);
			}
			child.set_password_secrets("child", "c");
		} catch (...) {
			code = 4;
		}
		_exit(code);
	}
	// Meanwhile the parent writes and reads through its own handle.
	for (int i = 0; i < per_process; ++i) {
		QueueRecord r = sample_record("parent@x.org");
		env.queue_add(r);
		(void)env.queue_list();
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 0);

	CHECK(env.password_secrets("child") == std::optional<std::string>("c"));
	auto list = env.queue_list();
	REQUIRE(list.size() == 2 * per_process);
	std::set<uint64_t> ids;
	int from_child = 0;
	for (const auto& r : list) {
		ids.insert(r.id);
		if (r.to == "child@x.org") ++from_child;
	}
	CHECK(ids.size() == 2 * per_process);
	CHECK(*ids.rbegin() == 2 * per_process);
	CHECK(from_child == per_process);
	// The parent's handle still works for writes after the child left.
	env.set_password_secrets("parent", "p2");
	CHECK(env.password_secrets("parent") == std::optional<std::string>("p2"));
}

TEST_CASE("db: commits of a process that died without closing survive (recovery)") {
	TempDir dir;
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int code = 0;
		try {
			// Leaked on purpose: the process "crashes" with the environment
			// open, no checkpoint, no close.
			auto* env = new Env(dir.path);
			QueueRecord r = sample_record("survivor@x.org");
			if (env->queue_add(r) != 1) code = 3;
			env->set_password_secrets("alice", "committed");
		} catch (...) {
			code = 4;
		}
		_exit(code);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);

	Env env(dir.path);  // DB_REGISTER sees the dead process and recovers
	CHECK(env.password_secrets("alice") == std::optional<std::string>("committed"));
	auto list = env.queue_list();
	REQUIRE(list.size() == 1);
	CHECK(list[0].to == "survivor@x.org");
	QueueRecord next = sample_record("next@x.org");
	CHECK(env.queue_add(next) == 2);
}

TEST_CASE("db: a panicked environment is reopened with recovery, data kept") {
	TempDir dir;
	Env env(dir.path);
	env.set_password_secrets("alice", "secrets-1");
	// Another process joins and panics the environment, as one that dies
	// inside a write can leave it: every call then answers DB_RUNRECOVERY.
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		DB_ENV* other = nullptr;
		if (db_env_create(&other, 0) != 0) _exit(2);
		other->set_errcall(other, [](const DB_ENV*, const char*, const char*) {});
		if (other->open(other, (dir.path + "/db").c_str(), DB_JOINENV, 0) != 0) _exit(3);
		other->set_flags(other, DB_PANIC_ENVIRONMENT, 1);
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	REQUIRE(WIFEXITED(status));
	REQUIRE(WEXITSTATUS(status) == 0);

	// The call that meets the panic fails with DB_RUNRECOVERY (its caller
	// answers with a temporary error) and reopens the environment …
	bool failed_with_runrecovery = false;
	try {
		env.password_secrets("alice");
	} catch (const DbError& e) {
		failed_with_runrecovery = e.code() == DB_RUNRECOVERY;
	}
	CHECK(failed_with_runrecovery);
	// … so the next calls work, with the committed data.
	CHECK(env.password_secrets("alice") == std::optional<std::string>("secrets-1"));
	env.set_password_secrets("alice", "secrets-2");
	CHECK(env.password_secrets("alice") == std::optional<std::string>("secrets-2"));
	env.check_dead_processes();
}

// A panicked environment that cannot be reopened (say, the disk is full)
// fails every call as unusable, each trying to reopen it; the first call
// whose reopening works runs, as any call after it.
TEST_CASE("db: an environment that cannot be reopened is unusable until a call reopens it") {
	TempDir dir;
	Env env(dir.path);
	env.set_password_secrets("alice", "secrets-1");
	bool panic_next_write = true, reopening_fails = true;
	env.set_fault_for_testing([&](const char* what) {
		if (std::string_view(what) == "checking the schema version") {
			if (reopening_fails) throw DbError("injected: the disk is full");
		} else if (std::exchange(panic_next_write, false)) {
			throw DbError("injected panic", DB_RUNRECOVERY);
		}
	});
	auto unusable = [&] {
		try {
			env.set_password_secrets("alice", "secrets-2");
		} catch (const DbError& e) {
			return e.code() == DB_RUNRECOVERY && e.environment_unusable();
		}
		return false;
	};
	CHECK(unusable());  // the panic, and its reopening failed
	CHECK(unusable());  // no environment, and reopening fails again
	reopening_fails = false;
	CHECK_NOTHROW(env.set_password_secrets("alice", "secrets-3"));
	env.set_fault_for_testing(nullptr);
	CHECK(env.password_secrets("alice") == std::optional<std::string>("secrets-3"));
}

TEST_CASE("db: region files scribbled while nobody had the environment open are rebuilt") {
	TempDir dir;
	{
		Env env(dir.path);
		env.set_password_secrets("alice", "secrets-1");
	}
	std::string region = dir.path + "/db/__db.001";
	REQUIRE(std::filesystem::exists(region));
	write_file(region, std::string(std::filesystem::file_size(region), '\x5a'));
	Env env(dir.path);
	CHECK(env.password_secrets("alice") == std::optional<std::string>("secrets-1"));
}
