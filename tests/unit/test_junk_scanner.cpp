// The Maildir scanner (store/junk_scanner.h) over a real Maildir and
// environment: keywords, folder moves, deletions, and only changed folders.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <db.h>

#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "store/db.h"
#include "store/files.h"
#include "store/history.h"
#include "store/junk_scanner.h"
#include "util/log.h"
#include "unit/files.h"

using tern::inbound::JunkMark;
using tern::store::HistoryRecord;
using tern::store::MessageHistory;

namespace fs = std::filesystem;

namespace {

void make_folder(const std::string& dir) {
	for (const char* sub : {"cur", "new", "tmp"}) fs::create_directories(dir + "/" + sub);
}

HistoryRecord delivered(const std::string& unique, const std::string& mailbox) {
	HistoryRecord r;
	r.account = "mjl";
	r.mailbox = mailbox;
	r.unique_name = unique;
	r.received = 1800000000;
	r.identity.from_localpart = "x";
	r.identity.from_domain = "sender.example";
	return r;
}

// Moves a file to a new path and makes sure the directory times differ
// from the previous pass even on a coarse clock.
void touch_dirs_later(const std::string& dir) {
	struct timespec later[2];
	clock_gettime(CLOCK_REALTIME, &later[0]);
	later[0].tv_sec += 5;
	later[1] = later[0];
	for (const char* sub : {"cur", "new"}) utimensat(AT_FDCWD, (dir + "/" + sub).c_str(), later, 0);
}

// A config with the one account "mjl" whose Maildir is `maildir`.
tern::config::Config one_account(const std::string& maildir) {
	tern::config::Config cfg;
	tern::config::Account account;
	account.name = "mjl";
	account.maildir = maildir;
	cfg.accounts["mjl"] = account;
	return cfg;
}

// One account's Maildir (its INBOX) and an environment with its history.
struct OneMaildir {
	tern::testing::TempDir dir;
	std::string maildir = dir.path + "/Maildir";
	tern::config::Config cfg = one_account(maildir);
	tern::store::Env env{dir.path};
	MessageHistory history{env};
	OneMaildir() { make_folder(maildir); }

	// A delivered message: its record in `mailbox` and its file at
	// `file_path` under the Maildir root ("cur/<name>", ".Archive/new/<name>").
	void holds(const std::string& unique, const std::string& mailbox, const std::string& file_path) {
		std::vector<HistoryRecord> records{delivered(unique, mailbox)};
		history.add(records);
		tern::testing::write_file(maildir + "/" + file_path, "x");
	}
	// Whether the record of `unique` says its message was expunged.
	bool expunged(const std::string& unique) { return history.find_by_unique_name("mjl", unique)->expunged; }
	// A record of `unique` in `mailbox` for another account than mjl.
	void recorded_for(const std::string& account, const std::string& unique, const std::string& mailbox = "INBOX") {
		HistoryRecord record = delivered(unique, mailbox);
		record.account = account;
		std::vector<HistoryRecord> records{record};
		history.add(records);
	}
	// The next write of the message history fails, as on a database
	// error; the ones after it work.
	void fail_next_history_write() {
		failing_writes = 1;
		env.set_fault_for_testing([this](const char* what) {
			if (std::string_view(what) == "updating message history" && failing_writes > 0) {
				--failing_writes;
				throw tern::store::DbError("updating message history: injected failure");
			}
		});
	}
	int failing_writes = 0;
	// Whether `account`'s record of message 1 was marked expunged.
	bool expunged_for(const std::string& account) {
		return history.find_by_unique_name(account, "1.a.host,S=10")->expunged;
	}
};

// How many lines of the log text `logged` say a folder was not read.
size_t folders_not_read(const std::string& logged) {
	size_t lines = 0;
	for (size_t at = 0; (at = logged.find("maildir folder not read", at)) != std::string::npos; ++at) ++lines;
	return lines;
}

}  // namespace

TEST_CASE("junk scanner: keywords, moves to and from Junk, and deletions update the history") {
	tern::testing::TempDir dir;
	std::string maildir = dir.path + "/Maildir";
	make_folder(maildir);
	make_folder(maildir + "/.Junk");
	make_folder(maildir + "/.Archive");
	tern::config::Config cfg = one_account(maildir);

	tern::store::Env env(dir.path);
	MessageHistory history(env);
	std::vector<HistoryRecord> records{delivered("1.a.host,S=10", "INBOX"), delivered("2.b.host,S=10", "INBOX"),
	                                   delivered("3.c.host,S=10", "INBOX")};
	history.add(records);
	tern::testing::write_file(maildir + "/new/1.a.host,S=10", "x");
	tern::testing::write_file(maildir + "/new/2.b.host,S=10", "x");
	tern::testing::write_file(maildir + "/new/3.c.host,S=10", "x");

	tern::store::JunkScanner scanner;
	auto stats = scanner.scan(cfg, env, 1800000100);
	CHECK(stats.folders_read == 3);
	CHECK(stats.marks_changed == 0);  // INBOX is neutral: nothing learned yet

	// The user sets $Junk on message 1 (keyword 0 = 'a'), moves message 2
	// to Archive and deletes message 3.
	tern::testing::write_file(maildir + "/dovecot-keywords", "0 $Junk\n1 $Forwarded\n");
	fs::rename(maildir + "/new/1.a.host,S=10", maildir + "/cur/1.a.host,S=10:2,Sa");
	fs::rename(maildir + "/new/2.b.host,S=10", maildir + "/.Archive/cur/2.b.host,S=10:2,S");
	fs::remove(maildir + "/new/3.c.host,S=10");
	touch_dirs_later(maildir);
	touch_dirs_later(maildir + "/.Archive");
	stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_read == 2);  // .Junk did not change
	CHECK(stats.marks_changed == 2);
	CHECK(stats.moved == 1);
	CHECK(stats.expunged == 1);
	CHECK(history.find_by_unique_name("mjl", "1.a.host,S=10")->junk == JunkMark::junk);
	auto archived = history.find_by_unique_name("mjl", "2.b.host,S=10");
	CHECK(archived->junk == JunkMark::notjunk);
	CHECK(archived->mailbox == "Archive");
	CHECK(history.find_by_unique_name("mjl", "3.c.host,S=10")->expunged);

	// Nothing changed: nothing is read.
	CHECK(scanner.scan(cfg, env, 1800000300).folders_read == 0);

	// Moved into Junk, then out of it to INBOX: junk, then not junk.
	fs::rename(maildir + "/.Archive/cur/2.b.host,S=10:2,S", maildir + "/.Junk/cur/2.b.host,S=10:2,S");
	touch_dirs_later(maildir + "/.Archive");
	touch_dirs_later(maildir + "/.Junk");
	scanner.scan(cfg, env, 1800000400);
	CHECK(history.find_by_unique_name("mjl", "2.b.host,S=10")->junk == JunkMark::junk);
	CHECK(history.find_by_unique_name("mjl", "2.b.host,S=10")->mailbox == "Junk");
	fs::rename(maildir + "/.Junk/cur/2.b.host,S=10:2,S", maildir + "/cur/2.b.host,S=10:2,S");
	struct timespec later[2];
	clock_gettime(CLOCK_REALTIME, &later[0]);
	later[0].tv_sec += 10;
	later[1] = later[0];
	for (std::string d : {maildir + "/cur", maildir + "/.Junk/cur"}) utimensat(AT_FDCWD, d.c_str(), later, 0);
	scanner.scan(cfg, env, 1800000500);
	CHECK(history.find_by_unique_name("mjl", "2.b.host,S=10")->junk == JunkMark::notjunk);
	CHECK_FALSE(history.find_by_unique_name("mjl", "2.b.host,S=10")->expunged);
}

TEST_CASE_FIXTURE(OneMaildir,
                  "junk scanner: a folder emptied of more messages than one batch marks every one expunged") {
	// 1203: two full batches of 500 and a partial one.
	std::vector<HistoryRecord> records;
	for (int i = 0; i < 1203; ++i) records.push_back(delivered(std::to_string(i) + ".m.host,S=1", "INBOX"));
	history.add(records);
	for (int i = 0; i < 1203; ++i)
		tern::testing::write_file(maildir + "/new/" + std::to_string(i) + ".m.host,S=1", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 1203);

	// All but one removed.
	for (int i = 1; i < 1203; ++i) fs::remove(maildir + "/new/" + std::to_string(i) + ".m.host,S=1");
	touch_dirs_later(maildir);
	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.expunged == 1202);
	auto left = history.in_mailbox("mjl", "INBOX");
	REQUIRE(left.size() == 1);
	CHECK(left[0].unique_name == "0.m.host,S=1");
	CHECK(history.find_by_unique_name("mjl", "1202.m.host,S=1")->expunged);
	CHECK_FALSE(history.find_by_unique_name("mjl", "0.m.host,S=1")->expunged);
	// A second pass finds nothing more to do.
	touch_dirs_later(maildir);
	CHECK(scanner.scan(cfg, env, 1800000300).expunged == 0);
}

// A move between two folders can be missed by both listings of a pass
// (the destination listed before the file came, the source after it left),
// which marks its record expunged; the destination changed, so the next
// pass lists the file there and the record comes back.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a record marked expunged whose file is listed again comes back") {
	make_folder(maildir + "/.Archive");
	std::vector<HistoryRecord> records{delivered("1.a.host,S=10", "INBOX")};
	history.add(records);
	tern::testing::write_file(maildir + "/cur/1.a.host,S=10:2,S", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "INBOX").size() == 1);

	// The missed move: the record says expunged, the file is in Archive.
	CHECK(history.mark_expunged("mjl", {"1.a.host,S=10"}) == 1);
	fs::rename(maildir + "/cur/1.a.host,S=10:2,S", maildir + "/.Archive/cur/1.a.host,S=10:2,S");
	touch_dirs_later(maildir);
	touch_dirs_later(maildir + "/.Archive");
	scanner.scan(cfg, env, 1800000200);
	auto record = history.find_by_unique_name("mjl", "1.a.host,S=10");
	REQUIRE(record);
	CHECK_FALSE(record->expunged);
	CHECK(record->mailbox == "Archive");
	CHECK(history.in_mailbox("mjl", "Archive").size() == 1);
	CHECK(history.in_mailbox("mjl", "INBOX").empty());
}

// A refused message kept in Rejects that the user moves to INBOX is no
// Rejects copy any more: the clean-up must not take it.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a copy moved out of Rejects is no Rejects copy any more") {
	make_folder(maildir + "/.Rejects");
	HistoryRecord kept = delivered("1.r.host,S=10", "Rejects");
	kept.rejected = true;
	std::vector<HistoryRecord> records{kept};
	history.add(records);
	tern::testing::write_file(maildir + "/.Rejects/cur/1.r.host,S=10:2,S", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.rejects("mjl").size() == 1);

	fs::rename(maildir + "/.Rejects/cur/1.r.host,S=10:2,S", maildir + "/cur/1.r.host,S=10:2,S");
	touch_dirs_later(maildir);
	touch_dirs_later(maildir + "/.Rejects");
	scanner.scan(cfg, env, 1800000200);
	CHECK(history.rejects("mjl").empty());
	auto record = history.find_by_unique_name("mjl", "1.r.host,S=10");
	REQUIRE(record);
	CHECK_FALSE(record->rejected);
	CHECK_FALSE(record->expunged);
	CHECK(record->mailbox == "INBOX");
}

TEST_CASE_FIXTURE(OneMaildir,
                  "junk scanner: a dovecot-keywords that is a FIFO, endless or huge neither blocks nor fills memory") {
	std::vector<HistoryRecord> records{delivered("1.a.host,S=10", "INBOX")};
	history.add(records);
	tern::testing::write_file(maildir + "/cur/1.a.host,S=10:2,Sa", "x");
	const std::string keywords = maildir + "/dovecot-keywords";

	// A scan that blocks ends the test run (SIGALRM) instead of hanging it.
	auto scan_finishes = [&](int64_t now) {
		alarm(20);
		tern::store::JunkScanner scanner;
		scanner.scan(cfg, env, now);
		alarm(0);
		return true;
	};
	REQUIRE(mkfifo(keywords.c_str(), 0600) == 0);
	CHECK(scan_finishes(1800000100));
	fs::remove(keywords);
	fs::create_symlink("/dev/zero", keywords);
	CHECK(scan_finishes(1800000200));
	fs::remove(keywords);

	// A huge file: only its head is read, and the keyword there counts.
	{
		std::ofstream out(keywords);
		out << "0 $Junk\n";
	}
	REQUIRE(truncate(keywords.c_str(), 1ll << 30) == 0);  // sparse: 1 GiB of NULs after the line
	touch_dirs_later(maildir);
	CHECK(scan_finishes(1800000300));
	CHECK(history.find_by_unique_name("mjl", "1.a.host,S=10")->junk == JunkMark::junk);
}

TEST_CASE("read_file_head: only regular files, never blocking on a FIFO") {
	tern::testing::TempDir dir;
	const std::string fifo = dir.path + "/fifo";
	REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
	CHECK_THROWS_WITH(tern::store::read_file_head(fifo, 100), doctest::Contains("not a regular file"));
	CHECK_THROWS_WITH(tern::store::read_file_head(std::string("/dev/zero"), 100),
	                  doctest::Contains("not a regular file"));
	tern::testing::write_file(dir.path + "/plain", "0123456789");
	CHECK(tern::store::read_file_head(dir.path + "/plain", 4) == "0123");
	CHECK(tern::store::read_file_head(dir.path + "/plain", 100) == "0123456789");
	CHECK_THROWS(tern::store::read_file_head(dir.path + "/missing", 100));
}

namespace {

// Gives `to` the modification time of `from` (access time too).
void copy_mtime(const std::string& from, const std::string& to) {
	struct stat st {};
	REQUIRE(::stat(from.c_str(), &st) == 0);
	struct timespec times[2] = {st.st_mtim, st.st_mtim};
	REQUIRE(utimensat(AT_FDCWD, to.c_str(), times, 0) == 0);
}

}  // namespace

// A folder whose cur/ cannot be listed (here a regular file in its place:
// ENOTDIR even for root, who passes over permissions) is no empty folder:
// its records keep their state, and the next pass reads it again although
// its directories' times are the ones this pass saw. A folder missing its
// cur/ (deleted while the pass runs) is left alone as well, and the other
// folders are read as always.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a folder that cannot be listed keeps its records for a later pass") {
	make_folder(maildir + "/.Archive");
	make_folder(maildir + "/.Old");
	std::vector<HistoryRecord> records{delivered("1.a.host,S=10", "INBOX"), delivered("2.b.host,S=10", "INBOX"),
	                                   delivered("3.c.host,S=10", "Archive"), delivered("4.d.host,S=10", "Old")};
	history.add(records);
	tern::testing::write_file(maildir + "/cur/1.a.host,S=10:2,S", "x");
	tern::testing::write_file(maildir + "/new/2.b.host,S=10", "x");
	tern::testing::write_file(maildir + "/.Archive/cur/3.c.host,S=10:2,S", "x");
	tern::testing::write_file(maildir + "/.Old/cur/4.d.host,S=10:2,S", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "INBOX").size() == 2);

	// INBOX: message 2 deleted (new/ changed) and cur/ not listable, with
	// the time the directory had. Archive: message 3 deleted. Old: cur/ gone.
	fs::remove(maildir + "/new/2.b.host,S=10");
	touch_dirs_later(maildir);
	fs::rename(maildir + "/cur", maildir + "/cur.aside");
	tern::testing::write_file(maildir + "/cur", "no directory");
	copy_mtime(maildir + "/cur.aside", maildir + "/cur");
	fs::remove(maildir + "/.Archive/cur/3.c.host,S=10:2,S");
	touch_dirs_later(maildir + "/.Archive");
	fs::remove_all(maildir + "/.Old/cur");
	// Each folder is logged at error level once while it stays so (the
	// scanner tries it at every pass).
	tern::testing::TempLog temp_log;
	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_read == 1);
	CHECK(stats.folders_skipped == 2);
	CHECK(stats.expunged == 1);
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK_FALSE(expunged("2.b.host,S=10"));
	CHECK(expunged("3.c.host,S=10"));
	CHECK_FALSE(expunged("4.d.host,S=10"));
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 2);

	// cur/ back as it was: the next pass lists INBOX (its times are the
	// ones the failed pass saw) and finds message 2 gone, message 1 there.
	fs::remove(maildir + "/cur");
	fs::rename(maildir + "/cur.aside", maildir + "/cur");
	copy_mtime(maildir + "/cur", maildir + "/cur");
	stats = scanner.scan(cfg, env, 1800000300);
	const std::string logged = temp_log.text();
	CHECK_MESSAGE(folders_not_read(logged) == 2, logged);  // INBOX and Old, once each
	CHECK(stats.folders_read == 1);
	CHECK(stats.folders_skipped == 1);  // Old, still without its cur/
	CHECK(stats.expunged == 1);
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK(expunged("2.b.host,S=10"));
}

// A pass that a database error stops loses the changes it had not yet
// committed: the folders it was reading are read again by the next pass,
// although their directories' times are the ones the failed pass saw.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a folder whose changes a database error lost is read again") {
	make_folder(maildir + "/.Archive");
	holds("1.a.host,S=10", "INBOX", "cur/1.a.host,S=10:2,S");
	holds("2.b.host,S=10", "INBOX", "new/2.b.host,S=10");
	holds("3.c.host,S=10", "INBOX", "new/3.c.host,S=10");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "INBOX").size() == 3);

	// Message 2 deleted, message 3 moved to Archive; every write fails.
	fs::remove(maildir + "/new/2.b.host,S=10");
	fs::rename(maildir + "/new/3.c.host,S=10", maildir + "/.Archive/cur/3.c.host,S=10:2,S");
	touch_dirs_later(maildir);
	touch_dirs_later(maildir + "/.Archive");
	env.set_fault_for_testing([](const char* what) {
		if (std::string_view(what) == "updating message history")
			throw tern::store::DbError("updating message history: injected failure");
	});
	CHECK(scanner.scan(cfg, env, 1800000200).accounts_failed == 1);
	env.set_fault_for_testing(nullptr);
	CHECK_FALSE(expunged("2.b.host,S=10"));
	CHECK(history.find_by_unique_name("mjl", "3.c.host,S=10")->mailbox == "INBOX");

	auto stats = scanner.scan(cfg, env, 1800000300);
	CHECK(stats.folders_read == 2);
	CHECK(stats.expunged == 1);
	CHECK(stats.moved == 1);
	CHECK(expunged("2.b.host,S=10"));
	CHECK(history.find_by_unique_name("mjl", "3.c.host,S=10")->mailbox == "Archive");
	CHECK_FALSE(expunged("1.a.host,S=10"));
	// Committed now: the next pass reads nothing.
	CHECK(scanner.scan(cfg, env, 1800000400).folders_read == 0);
}

// A database error in one account's part of a pass does not keep the
// other accounts from theirs, nor the pruning: an error that stays (one
// record's write failing every time) would otherwise leave every account
// after it unscanned for good. The pass still ends in the error.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a database error in one account leaves the others scanned") {
	const std::string zed_maildir = dir.path + "/Zed";
	make_folder(zed_maildir);
	cfg.accounts["zed"] = one_account(zed_maildir).accounts.at("mjl");
	cfg.accounts["zed"].name = "zed";
	holds("1.a.host,S=10", "INBOX", "new/1.a.host,S=10");
	recorded_for("zed", "2.b.host,S=10");
	tern::testing::write_file(zed_maildir + "/new/2.b.host,S=10", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);

	// Both accounts' messages deleted; the first write fails (mjl's). A
	// record past the age limit is pruned all the same.
	HistoryRecord old_record = delivered("9.z.host,S=10", "INBOX");
	old_record.account = "zed";
	old_record.received = 1800000200 - (cfg.message_history.max_age_days + 1) * 24 * 3600;
	std::vector<HistoryRecord> old_records{old_record};
	history.add(old_records);
	REQUIRE(history.find_by_unique_name("zed", "9.z.host,S=10"));
	fs::remove(maildir + "/new/1.a.host,S=10");
	fs::remove(zed_maildir + "/new/2.b.host,S=10");
	touch_dirs_later(maildir);
	touch_dirs_later(zed_maildir);
	fail_next_history_write();
	tern::testing::TempLog temp_log;
	CHECK(scanner.scan(cfg, env, 1800000200).accounts_failed == 1);
	env.set_fault_for_testing(nullptr);
	CHECK(failing_writes == 0);
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK(history.find_by_unique_name("zed", "2.b.host,S=10")->expunged);
	CHECK_FALSE(history.find_by_unique_name("zed", "9.z.host,S=10"));
	CHECK(temp_log.text().find("msg=\"maildir scan of an account failed, the others go on\" account=mjl") !=
	      std::string::npos);

	// mjl's folder is read again by the next pass.
	auto stats = scanner.scan(cfg, env, 1800000300);
	CHECK(stats.folders_read == 1);
	CHECK(expunged("1.a.host,S=10"));
}

// Two accounts may name one Maildir: each has its own records of it, so a
// change one pass read for the first account is read for the second too,
// and one the first lost to a database error is read for it again, though
// the second stored its part.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: two accounts on one Maildir each learn its changes") {
	cfg.accounts["zed"] = cfg.accounts.at("mjl");
	cfg.accounts["zed"].name = "zed";
	holds("1.a.host,S=10", "INBOX", "new/1.a.host,S=10");
	recorded_for("zed", "1.a.host,S=10");
	holds("2.b.host,S=10", "INBOX", "new/2.b.host,S=10");
	recorded_for("zed", "2.b.host,S=10");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	auto zed_expunged = [&](const std::string& unique) {
		return history.find_by_unique_name("zed", unique)->expunged;
	};

	fs::remove(maildir + "/new/1.a.host,S=10");
	touch_dirs_later(maildir);
	scanner.scan(cfg, env, 1800000200);
	CHECK(expunged("1.a.host,S=10"));
	CHECK(zed_expunged("1.a.host,S=10"));

	// mjl's part fails, zed's is stored: mjl's is read again next pass.
	fs::remove(maildir + "/new/2.b.host,S=10");
	touch_dirs_later(maildir);
	fail_next_history_write();
	tern::testing::TempLog temp_log;
	CHECK(scanner.scan(cfg, env, 1800000300).accounts_failed == 1);
	env.set_fault_for_testing(nullptr);
	CHECK_FALSE(expunged("2.b.host,S=10"));
	CHECK(zed_expunged("2.b.host,S=10"));
	scanner.scan(cfg, env, 1800000400);
	CHECK(expunged("2.b.host,S=10"));
}

// An account whose part fails the same way at every pass is logged at
// error level once. A panic of the environment is one account's failure
// (it is reopened at once); one that cannot be reopened ends the pass,
// leaving the later accounts and the pruning for the next.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a failing account is logged once; an unusable database ends the pass") {
	for (const char* name : {"nat", "zed"}) {
		cfg.accounts[name] = cfg.accounts.at("mjl");
		cfg.accounts[name].name = name;
	}
	for (const char* name : {"mjl", "nat", "zed"}) recorded_for(name, "1.a.host,S=10");
	tern::testing::write_file(maildir + "/new/1.a.host,S=10", "x");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	HistoryRecord old_record = delivered("9.z.host,S=10", "INBOX");
	old_record.received = 1800000200 - (cfg.message_history.max_age_days + 1) * 24 * 3600;
	std::vector<HistoryRecord> old_records{old_record};
	history.add(old_records);
	fs::remove(maildir + "/new/1.a.host,S=10");
	touch_dirs_later(maildir);
	auto failures_logged = [](const std::string& logged) {
		size_t lines = 0;
		for (size_t at = 0; (at = logged.find("maildir scan of an account failed", at)) != std::string::npos;
		     ++at)
			++lines;
		return lines;
	};

	// The first write of each pass fails: mjl's, twice alike (the others'
	// folders are read once). One line at error level.
	{
		tern::testing::TempLog temp_log;
		fail_next_history_write();
		CHECK(scanner.scan(cfg, env, 1800000200).accounts_failed == 1);
		fail_next_history_write();
		CHECK(scanner.scan(cfg, env, 1800000300).accounts_failed == 1);
		CHECK(failures_logged(temp_log.text()) == 1);
	}
	CHECK_FALSE(expunged_for("mjl"));
	CHECK(expunged_for("nat"));
	CHECK(expunged_for("zed"));

	// Every write panics, and the environment is reopened each time: each
	// account fails on its own, the pruning is done.
	for (const char* name : {"mjl", "nat", "zed"}) recorded_for(name, "2.b.host,S=10");
	history.add(old_records);
	touch_dirs_later(maildir);
	env.set_fault_for_testing([](const char* what) {
		if (std::string_view(what) == "updating message history")
			throw tern::store::DbError("updating message history: injected panic", DB_RUNRECOVERY);
	});
	CHECK(scanner.scan(cfg, env, 1800000400).accounts_failed == 3);
	CHECK_FALSE(history.find_by_unique_name("mjl", "9.z.host,S=10"));

	// An environment that cannot be reopened (its schema check fails):
	// mjl's failure ends the pass; nat, zed and the pruning wait.
	history.add(old_records);
	env.set_fault_for_testing([](const char* what) {
		if (std::string_view(what) == "updating message history")
			throw tern::store::DbError("updating message history: injected panic", DB_RUNRECOVERY);
		if (std::string_view(what) == "checking the schema version")
			throw tern::store::DbError("injected: the disk is full");
	});
	{
		tern::testing::TempLog temp_log;
		CHECK_THROWS_AS(scanner.scan(cfg, env, 1800000500), tern::store::DbError);
		const std::string logged = temp_log.text();
		CHECK(logged.find("account=nat") == std::string::npos);
		CHECK(logged.find("account=zed") == std::string::npos);
	}
	env.set_fault_for_testing(nullptr);
	CHECK(history.find_by_unique_name("mjl", "9.z.host,S=10"));
	// The next pass does what this one left.
	CHECK(scanner.scan(cfg, env, 1800000600).accounts_failed == 0);
	CHECK_FALSE(history.find_by_unique_name("mjl", "9.z.host,S=10"));
	for (const char* name : {"mjl", "nat", "zed"})
		CHECK(history.find_by_unique_name(name, "2.b.host,S=10")->expunged);
}

// A folder the user deleted (Dovecot removes its directory) is listed by
// no pass again: its records are marked expunged at the first pass that
// finds it gone from a Maildir root listed whole, or they would count in
// reputation() and the delivery rates for years. A folder made again later
// with the same directory times is read, not taken for one already seen.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: the records of a deleted folder are marked expunged") {
	make_folder(maildir + "/.Archive");
	holds("1.a.host,S=10", "INBOX", "cur/1.a.host,S=10:2,S");
	holds("2.b.host,S=10", "Archive", ".Archive/cur/2.b.host,S=10:2,S");
	holds("3.c.host,S=10", "Archive", ".Archive/new/3.c.host,S=10");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "Archive").size() == 2);
	const std::string aside = dir.path + "/Archive.aside";
	fs::rename(maildir + "/.Archive", aside);

	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_gone == 1);
	CHECK(stats.expunged == 2);
	CHECK(expunged("2.b.host,S=10"));
	CHECK(expunged("3.c.host,S=10"));
	CHECK(history.in_mailbox("mjl", "Archive").empty());
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 1);
	CHECK(scanner.scan(cfg, env, 1800000300).expunged == 0);

	// The folder back as it was, directory times and all: read again, its
	// records present again.
	fs::rename(aside, maildir + "/.Archive");
	stats = scanner.scan(cfg, env, 1800000400);
	CHECK(stats.folders_read == 1);
	CHECK(history.in_mailbox("mjl", "Archive").size() == 2);
}

// What a gone folder's records are checked against: every folder on disk,
// changed or not (its files moved to a folder whose times this scanner saw
// already: a clock too coarse, another account's pass on the same
// Maildir), and never while a folder cannot be listed (it may hold them).
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a gone folder's records are checked against every folder, all listed") {
	make_folder(maildir + "/.Old");
	make_folder(maildir + "/.New");
	holds("1.a.host,S=10", "Old", ".Old/cur/1.a.host,S=10:2,S");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "Old").size() == 1);

	SUBCASE("the folder the files went to has the times the last pass saw") {
		struct stat new_cur {};
		REQUIRE(::stat((maildir + "/.New/cur").c_str(), &new_cur) == 0);
		fs::rename(maildir + "/.Old/cur/1.a.host,S=10:2,S", maildir + "/.New/cur/1.a.host,S=10:2,S");
		struct timespec times[2] = {new_cur.st_mtim, new_cur.st_mtim};
		REQUIRE(utimensat(AT_FDCWD, (maildir + "/.New/cur").c_str(), times, 0) == 0);
		fs::remove_all(maildir + "/.Old");
		auto stats = scanner.scan(cfg, env, 1800000200);
		CHECK(stats.folders_gone == 1);
		CHECK(stats.expunged == 0);
		CHECK(history.in_mailbox("mjl", "New").size() == 1);
	}
	SUBCASE("the folder the files went to cannot be listed") {
		fs::remove_all(maildir + "/.New");
		fs::rename(maildir + "/.Old", maildir + "/.New");
		fs::rename(maildir + "/.New/new", maildir + "/.New/new.aside");  // no new/: not listed
		auto stats = scanner.scan(cfg, env, 1800000200);
		CHECK(stats.folders_skipped == 1);
		CHECK(stats.expunged == 0);
		CHECK_FALSE(expunged("1.a.host,S=10"));
		fs::rename(maildir + "/.New/new.aside", maildir + "/.New/new");
		stats = scanner.scan(cfg, env, 1800000300);
		CHECK(stats.expunged == 0);
		CHECK(history.in_mailbox("mjl", "New").size() == 1);
	}
	SUBCASE("a folder that stays unlistable the same way holds a gone folder back for one pass only") {
		fs::rename(maildir + "/.New/new", maildir + "/.New/new.aside");  // for good
		fs::remove_all(maildir + "/.Old");
		auto stats = scanner.scan(cfg, env, 1800000200);
		CHECK(stats.expunged == 0);
		stats = scanner.scan(cfg, env, 1800000300);
		CHECK(stats.folders_gone == 1);
		CHECK(stats.expunged == 1);
		// Handled: later passes list only what changed.
		stats = scanner.scan(cfg, env, 1800000400);
		CHECK(stats.folders_gone == 0);
		CHECK(stats.folders_read == 0);
	}
}

// A name the root holds is never a gone folder's, whatever it is now: a
// symbolic link to a disk not mounted is still the user's folder. Nor is
// one missing from a root that is no Maildir (no cur/, no new/: an empty
// mount point, a copy in progress).
TEST_CASE_FIXTURE(OneMaildir,
                  "junk scanner: a dangling folder link or a root without cur/ and new/ is no gone folder") {
	make_folder(dir.path + "/archive-disk");
	fs::create_directory_symlink(dir.path + "/archive-disk", maildir + "/.Archive");
	holds("1.a.host,S=10", "Archive", ".Archive/cur/1.a.host,S=10:2,S");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "Archive").size() == 1);

	fs::rename(dir.path + "/archive-disk", dir.path + "/archive-disk.unmounted");
	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_gone == 0);
	CHECK(stats.expunged == 0);
	CHECK(stats.folders_skipped == 0);  // nothing there to list: not logged as a folder that failed

	fs::remove(maildir + "/.Archive");
	fs::rename(maildir, dir.path + "/Maildir.aside");
	fs::create_directory(maildir);  // empty, as an unmounted disk's mount point
	stats = scanner.scan(cfg, env, 1800000300);
	CHECK(stats.folders_gone == 0);
	CHECK(stats.expunged == 0);
	CHECK(history.in_mailbox("mjl", "Archive").size() == 1);
}

// A root entry whose type cannot be known (a link that loops: ELOOP even
// for root; a link whose target's parent may not be searched: EACCES) may
// be a folder holding the gone one's files, as for a folder whose new/ or
// cur/ cannot be listed: its records wait, it is logged once, and a
// folder gone in the same pass is not taken for gone.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a folder link that cannot be followed is a folder that cannot be listed") {
	make_folder(maildir + "/.Old");
	make_folder(maildir + "/.Archive");
	holds("1.a.host,S=10", "Old", ".Old/cur/1.a.host,S=10:2,S");
	holds("2.b.host,S=10", "Archive", ".Archive/cur/2.b.host,S=10:2,S");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "Old").size() == 1);

	// Old's files may have gone to Archive, which is now a link to itself.
	fs::remove_all(maildir + "/.Old");
	fs::rename(maildir + "/.Archive", dir.path + "/archive-disk");
	fs::create_directory_symlink(".Archive", maildir + "/.Archive");
	tern::testing::TempLog temp_log;
	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_skipped == 1);
	CHECK(stats.folders_gone == 0);
	CHECK(stats.expunged == 0);
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK_FALSE(expunged("2.b.host,S=10"));
	// Staying so, it is tried again and not logged again.
	stats = scanner.scan(cfg, env, 1800000300);
	CHECK(stats.folders_skipped == 1);
	CHECK_FALSE(expunged("2.b.host,S=10"));
	const std::string logged = temp_log.text();
	CHECK_MESSAGE(folders_not_read(logged) == 1, logged);
	CHECK_MESSAGE(logged.find("folder=Archive") != std::string::npos, logged);
}

// Dovecot renames a folder's directory (.Old to .New): the new name is a
// folder the scanner has not seen, listed in the same pass that finds the
// old one gone, so its records move with it.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: the records of a renamed folder move to its new name") {
	make_folder(maildir + "/.Old");
	holds("1.a.host,S=10", "Old", ".Old/cur/1.a.host,S=10:2,S");
	holds("2.b.host,S=10", "Old", ".Old/new/2.b.host,S=10");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);
	REQUIRE(history.in_mailbox("mjl", "Old").size() == 2);

	fs::rename(maildir + "/.Old", maildir + "/.New");
	auto stats = scanner.scan(cfg, env, 1800000200);
	CHECK(stats.folders_gone == 1);
	CHECK(stats.expunged == 0);
	CHECK(stats.moved == 2);
	CHECK(history.in_mailbox("mjl", "Old").empty());
	CHECK(history.in_mailbox("mjl", "New").size() == 2);
	CHECK_FALSE(expunged("1.a.host,S=10"));
	CHECK_FALSE(expunged("2.b.host,S=10"));
}

// A Maildir root that cannot be listed (here too many open files, then
// the root gone, then a regular file in its place) says nothing of which
// folders went: no record is marked expunged, or one failed listing would
// take an account's whole history.
TEST_CASE_FIXTURE(OneMaildir, "junk scanner: a Maildir root that cannot be listed marks no folder's records expunged") {
	make_folder(maildir + "/.Archive");
	holds("1.a.host,S=10", "INBOX", "cur/1.a.host,S=10:2,S");
	holds("2.b.host,S=10", "Archive", ".Archive/cur/2.b.host,S=10:2,S");
	tern::store::JunkScanner scanner;
	scanner.scan(cfg, env, 1800000100);

	// No descriptor left to open the root with (the lowest free one as the
	// limit); nothing changed, so nothing else needs one.
	struct rlimit saved {};
	REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
	const int lowest_free = dup(0);
	REQUIRE(lowest_free >= 0);
	close(lowest_free);
	struct rlimit no_more = saved;
	no_more.rlim_cur = static_cast<rlim_t>(lowest_free);
	REQUIRE(setrlimit(RLIMIT_NOFILE, &no_more) == 0);
	auto stats = scanner.scan(cfg, env, 1800000150);
	REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
	CHECK(stats.folders_gone == 0);
	CHECK(stats.expunged == 0);
	CHECK(history.in_mailbox("mjl", "Archive").size() == 1);

	const std::string aside = dir.path + "/Maildir.aside";
	fs::rename(maildir, aside);
	CHECK(scanner.scan(cfg, env, 1800000200).expunged == 0);
	tern::testing::write_file(maildir, "no directory");
	CHECK(scanner.scan(cfg, env, 1800000300).expunged == 0);
	CHECK(history.in_mailbox("mjl", "INBOX").size() == 1);
	CHECK(history.in_mailbox("mjl", "Archive").size() == 1);
	fs::remove(maildir);
	fs::rename(aside, maildir);
	CHECK(scanner.scan(cfg, env, 1800000400).expunged == 0);
	CHECK(history.in_mailbox("mjl", "Archive").size() == 1);
}
