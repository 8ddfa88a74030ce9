// Maildir delivery (doc/behaviour.md "Maildir", "Durability and safety promises").
#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <atomic>
#include <string>
#include <vector>

#include <fcntl.h>

#include "store/files.h"
#include "store/maildir.h"
#include "util/storage.h"
#include "util/unique_fd.h"
#include "unit/files.h"

using tern::store::deliver_maildir;
using tern::store::fsync_dir;
using tern::store::mailbox_dir;
using tern::store::MaildirCopy;

namespace {

using tern::UniqueFd;
using tern::testing::read_file;
using tern::testing::TempDir;
using tern::testing::write_file;

std::vector<std::string> list_dir(const std::string& path) {
	std::vector<std::string> names;
	DIR* dir = ::opendir(path.c_str());
	if (!dir) return names;
	while (dirent* e = ::readdir(dir)) {
		std::string name = e->d_name;
		if (name != "." && name != "..") names.push_back(name);
	}
	::closedir(dir);
	return names;
}

bool is_dir(const std::string& path) {
	struct stat st;
	return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
	struct stat st;
	return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

TEST_CASE("maildir: mailbox_dir maps Maildir++ folders") {
	CHECK(mailbox_dir("/m", "INBOX") == "/m");
	CHECK(mailbox_dir("/m", "inbox") == "/m");
	CHECK(mailbox_dir("/m", "InBoX") == "/m");
	CHECK(mailbox_dir("/m", "") == "/m");
	CHECK(mailbox_dir("/m", "Rejects") == "/m/.Rejects");
	CHECK(mailbox_dir("/m", "a/b") == "/m/.a.b");
	CHECK(mailbox_dir("/m", "a/b/c") == "/m/.a.b.c");
	CHECK_THROWS_AS(mailbox_dir("/m", "."), std::runtime_error);
	CHECK_THROWS_AS(mailbox_dir("/m", ".."), std::runtime_error);
	CHECK_THROWS_AS(mailbox_dir("/m", "a/../b"), std::runtime_error);
	CHECK_THROWS_AS(mailbox_dir("/m", "/a"), std::runtime_error);
	CHECK_THROWS_AS(mailbox_dir("/m", "a//b"), std::runtime_error);
	CHECK_THROWS_AS(mailbox_dir("/m", "a/"), std::runtime_error);
	// Non-ASCII names and "&" as Dovecot stores them (RFC 3501 5.1.3).
	CHECK(mailbox_dir("/m", "\xc3\x89pargne") == "/m/.&AMk-pargne");
	CHECK(mailbox_dir("/m", "R&D") == "/m/.R&-D");
	CHECK(mailbox_dir("/m", "Lists/\xc3\x89t\xc3\xa9") == "/m/.Lists.&AMk-t&AOk-");
}

TEST_CASE("maildir: for_each_message_file walks new/ then cur/ and cuts the unique name") {
	TempDir t;
	const std::string folder = t.path + "/.Rejects";
	for (const char* sub : {"", "/new", "/cur", "/tmp"}) REQUIRE(::mkdir((folder + sub).c_str(), 0700) == 0);
	write_file(folder + "/new/1.a.host,S=3", "new");
	write_file(folder + "/cur/2.b.host,S=3:2,S", "cur");
	write_file(folder + "/cur/.hidden", "no message");
	write_file(folder + "/tmp/3.c.host,S=3", "not delivered yet");

	struct Seen {
		std::string path, file_name, unique_name;
		bool in_cur;
	};
	std::vector<Seen> seen;
	auto unlisted = tern::store::for_each_message_file(folder, [&](const tern::store::MessageFile& f) {
		seen.push_back({f.path, std::string(f.file_name), std::string(f.unique_name), f.in_cur});
	});
	CHECK_FALSE(unlisted);
	REQUIRE(seen.size() == 2);
	CHECK(seen[0].path == folder + "/new/1.a.host,S=3");
	CHECK(seen[0].file_name == "1.a.host,S=3");
	CHECK(seen[0].unique_name == "1.a.host,S=3");
	CHECK_FALSE(seen[0].in_cur);
	CHECK(seen[1].path == folder + "/cur/2.b.host,S=3:2,S");
	CHECK(seen[1].file_name == "2.b.host,S=3:2,S");
	CHECK(seen[1].unique_name == "2.b.host,S=3");
	CHECK(seen[1].in_cur);

	// The callback may remove the file it is given.
	unlisted = tern::store::for_each_message_file(
	    folder, [](const tern::store::MessageFile& f) { std::filesystem::remove(f.path); });
	CHECK_FALSE(unlisted);
	CHECK(list_dir(folder + "/new").empty());
	CHECK(list_dir(folder + "/cur") == std::vector<std::string>{".hidden"});
}

// The scanner must not take a folder it could not list for an empty one
// (its records would be marked expunged): the walk says which directory
// failed and why, and still walks the other one.
TEST_CASE("maildir: for_each_message_file reports a directory it cannot list") {
	TempDir t;
	const std::string folder = t.path + "/.Archive";
	for (const char* sub : {"", "/new", "/tmp"}) REQUIRE(::mkdir((folder + sub).c_str(), 0700) == 0);
	write_file(folder + "/new/1.a.host,S=3", "new");
	write_file(folder + "/cur", "a file where the directory belongs");  // ENOTDIR, for root too

	std::vector<std::string> seen;
	auto unlisted = tern::store::for_each_message_file(
	    folder, [&](const tern::store::MessageFile& f) { seen.emplace_back(f.unique_name); });
	CHECK(seen == std::vector<std::string>{"1.a.host,S=3"});
	REQUIRE(unlisted);
	CHECK(unlisted->dir == folder + "/cur");
	CHECK(unlisted->error == std::errc::not_a_directory);
	CHECK(unlisted->text() == "listing " + folder + "/cur: Not a directory");

	// new/ failing: cur/ is still walked, and new/ is the one reported.
	std::filesystem::remove(folder + "/cur");
	REQUIRE(::mkdir((folder + "/cur").c_str(), 0700) == 0);
	write_file(folder + "/cur/2.b.host,S=3:2,S", "cur");
	std::filesystem::remove_all(folder + "/new");
	seen.clear();
	unlisted = tern::store::for_each_message_file(
	    folder, [&](const tern::store::MessageFile& f) { seen.emplace_back(f.unique_name); });
	CHECK(seen == std::vector<std::string>{"2.b.host,S=3"});
	REQUIRE(unlisted);
	CHECK(unlisted->dir == folder + "/new");
	CHECK(unlisted->error == std::errc::no_such_file_or_directory);

	// A folder that is not there: nothing walked, its new/ reported.
	size_t calls = 0;
	unlisted = tern::store::for_each_message_file(t.path + "/.Missing",
	                                              [&](const tern::store::MessageFile&) { ++calls; });
	CHECK(calls == 0);
	REQUIRE(unlisted);
	CHECK(unlisted->dir == t.path + "/.Missing/new");
	CHECK(unlisted->error == std::errc::no_such_file_or_directory);
}

TEST_CASE("maildir: INBOX delivery writes prefix + body into new/ of a new Maildir") {
	TempDir t;
	const std::string body = "Subject: hi\r\n\r\nhello\r\n";
	const std::string prefix = "Received: from x\r\n";
	write_file(t.path + "/body", body);
	const std::string root = t.path + "/accounts/alice/Maildir";  // parents missing too

	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = root;
	copies[0].mailbox = "INBOX";
	copies[0].prefix = prefix;
	deliver_maildir(t.path + "/body", copies, "mx.example.org");

	CHECK(is_dir(root + "/tmp"));
	CHECK(is_dir(root + "/new"));
	CHECK(is_dir(root + "/cur"));
	CHECK_FALSE(is_regular_file(root + "/maildirfolder"));  // only for subfolders
	std::vector<std::string> fresh = list_dir(root + "/new");
	REQUIRE(fresh.size() == 1);
	CHECK(copies[0].final_path == root + "/new/" + fresh[0]);
	CHECK(read_file(copies[0].final_path) == prefix + body);
	CHECK(list_dir(root + "/tmp").empty());
	CHECK(list_dir(root + "/cur").empty());
}

TEST_CASE("maildir: file name format and S= size") {
	TempDir t;
	const std::string body(200000, 'x');  // several 64 KiB rounds
	write_file(t.path + "/body", body);
	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = t.path + "/Maildir";
	copies[0].mailbox = "inbox";
	copies[0].prefix = "X-A: b\r\n";
	deliver_maildir(t.path + "/body", copies, "mx/a:b");

	const std::string name = base_name(copies[0].final_path);
	// <seconds>.M<usec>P<pid>Q<n>.<host>,S=<size>
	size_t first_dot = name.find('.');
	REQUIRE(first_dot != std::string::npos);
	long seconds = std::stol(name.substr(0, first_dot));
	CHECK(std::abs(seconds - static_cast<long>(::time(nullptr))) < 60);
	const std::string unique_start = name.substr(first_dot + 1, 1);
	CHECK(unique_start == "M");
	CHECK(name.find("P" + std::to_string(::getpid()) + "Q") != std::string::npos);
	const std::string expected_tail = ".mx\\057a\\072b,S=" + std::to_string(8 + body.size());
	REQUIRE(name.size() > expected_tail.size());
	CHECK(name.substr(name.size() - expected_tail.size()) == expected_tail);
	CHECK(std::filesystem::file_size(copies[0].final_path) == 8 + body.size());
	CHECK(read_file(copies[0].final_path) == "X-A: b\r\n" + body);
}

TEST_CASE("maildir: a named mailbox is created with maildirfolder") {
	TempDir t;
	write_file(t.path + "/body", "body\r\n");
	const std::string root = t.path + "/Maildir";
	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = root;
	copies[0].mailbox = "Sub";
	deliver_maildir(t.path + "/body", copies, "h");

	CHECK(is_dir(root + "/new"));  // the root is a valid Maildir too
	CHECK(is_dir(root + "/.Sub/tmp"));
	CHECK(is_dir(root + "/.Sub/new"));
	CHECK(is_dir(root + "/.Sub/cur"));
	REQUIRE(is_regular_file(root + "/.Sub/maildirfolder"));
	CHECK(std::filesystem::file_size(root + "/.Sub/maildirfolder") == 0);
	std::vector<std::string> fresh = list_dir(root + "/.Sub/new");
	REQUIRE(fresh.size() == 1);
	CHECK(copies[0].final_path == root + "/.Sub/new/" + fresh[0]);
	CHECK(read_file(copies[0].final_path) == "body\r\n");
	CHECK(list_dir(root + "/new").empty());

	// Nested names flatten; a second delivery reuses the existing folder.
	std::vector<MaildirCopy> more(2);
	more[0].maildir = root;
	more[0].mailbox = "a/b";
	more[1].maildir = root;
	more[1].mailbox = "Sub";
	deliver_maildir(t.path + "/body", more, "h");
	CHECK(is_regular_file(root + "/.a.b/maildirfolder"));
	CHECK(list_dir(root + "/.a.b/new").size() == 1);
	CHECK(list_dir(root + "/.Sub/new").size() == 2);
}

TEST_CASE("maildir: a seen copy goes to cur/ with :2,S") {
	TempDir t;
	write_file(t.path + "/body", "spam\r\n");
	const std::string root = t.path + "/Maildir";
	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = root;
	copies[0].mailbox = "Rejects";
	copies[0].seen = true;
	copies[0].prefix = "P: 1\r\n";
	deliver_maildir(t.path + "/body", copies, "h");

	std::vector<std::string> cur = list_dir(root + "/.Rejects/cur");
	REQUIRE(cur.size() == 1);
	const std::string& name = cur[0];
	const std::string suffix = ",S=12:2,S";
	REQUIRE(name.size() > suffix.size());
	CHECK(name.substr(name.size() - suffix.size()) == suffix);
	CHECK(copies[0].final_path == root + "/.Rejects/cur/" + name);
	CHECK(read_file(copies[0].final_path) == "P: 1\r\nspam\r\n");
	CHECK(list_dir(root + "/.Rejects/new").empty());
	CHECK(list_dir(root + "/.Rejects/tmp").empty());
}

TEST_CASE("maildir: two copies from one call get distinct names") {
	TempDir t;
	write_file(t.path + "/body", "same body\r\n");
	const std::string root = t.path + "/Maildir";
	std::vector<MaildirCopy> copies(2);
	copies[0].maildir = root;
	copies[0].mailbox = "INBOX";
	copies[0].prefix = "Delivered-To: a\r\n";
	copies[1].maildir = root;
	copies[1].mailbox = "INBOX";
	copies[1].prefix = "Delivered-To: bb\r\n";
	deliver_maildir(t.path + "/body", copies, "h");

	std::vector<std::string> fresh = list_dir(root + "/new");
	CHECK(fresh.size() == 2);
	CHECK(copies[0].final_path != copies[1].final_path);
	CHECK(read_file(copies[0].final_path) == "Delivered-To: a\r\nsame body\r\n");
	CHECK(read_file(copies[1].final_path) == "Delivered-To: bb\r\nsame body\r\n");
	CHECK(copies[0].final_path.find(",S=28") != std::string::npos);
	CHECK(copies[1].final_path.find(",S=29") != std::string::npos);
	CHECK(list_dir(root + "/tmp").empty());
}

TEST_CASE("maildir: an empty body and empty prefix give an empty message") {
	TempDir t;
	write_file(t.path + "/body", "");
	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = t.path + "/Maildir";
	copies[0].mailbox = "INBOX";
	deliver_maildir(t.path + "/body", copies, "h");
	CHECK(copies[0].final_path.find(",S=0") != std::string::npos);
	CHECK(std::filesystem::file_size(copies[0].final_path) == 0);
}

TEST_CASE("maildir: a missing body file throws and leaves tmp/ empty") {
	TempDir t;
	const std::string root = t.path + "/Maildir";
	// Make the Maildir exist first, so an empty tmp/ means something.
	write_file(t.path + "/body", "x\r\n");
	std::vector<MaildirCopy> first(1);
	first[0].maildir = root;
	first[0].mailbox = "INBOX";
	deliver_maildir(t.path + "/body", first, "h");
	REQUIRE(list_dir(root + "/new").size() == 1);

	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = root;
	copies[0].mailbox = "INBOX";
	std::string message;
	try {
		deliver_maildir(t.path + "/missing", copies, "h");
	} catch (const std::runtime_error& e) {
		message = e.what();
	}
	CHECK(message.find(t.path + "/missing") != std::string::npos);
	CHECK(message.find("No such file or directory") != std::string::npos);
	CHECK(copies[0].final_path.empty());
	CHECK(list_dir(root + "/tmp").empty());
	CHECK(list_dir(root + "/new").size() == 1);
}

TEST_CASE("maildir: a failure on a later copy removes the earlier tmp files") {
	TempDir t;
	write_file(t.path + "/body", "x\r\n");
	const std::string root = t.path + "/Maildir";
	// The second copy's Maildir root is a regular file: mkdir must fail
	// after the first copy is already written to tmp/.
	write_file(t.path + "/not-a-dir", "");
	std::vector<MaildirCopy> copies(2);
	copies[0].maildir = root;
	copies[0].mailbox = "INBOX";
	copies[1].maildir = t.path + "/not-a-dir/Maildir";
	copies[1].mailbox = "INBOX";
	std::string message;
	try {
		deliver_maildir(t.path + "/body", copies, "h");
	} catch (const std::runtime_error& e) {
		message = e.what();
	}
	CHECK(message.find("not-a-dir") != std::string::npos);
	CHECK(message.find("Not a directory") != std::string::npos);
	// All-or-nothing before the renames: nothing visible, nothing left over.
	CHECK(is_dir(root + "/tmp"));
	CHECK(list_dir(root + "/tmp").empty());
	CHECK(list_dir(root + "/new").empty());
	CHECK(copies[0].final_path.empty());
}

TEST_CASE("maildir: an invalid mailbox name throws without delivering") {
	TempDir t;
	write_file(t.path + "/body", "x\r\n");
	std::vector<MaildirCopy> copies(1);
	copies[0].maildir = t.path + "/Maildir";
	copies[0].mailbox = "..";
	CHECK_THROWS_AS(deliver_maildir(t.path + "/body", copies, "h"), std::runtime_error);
	// The name is checked before any directory is made.
	CHECK_FALSE(is_dir(t.path + "/Maildir"));
	CHECK(list_dir(t.path).size() == 1);  // only the body file
}

TEST_CASE("maildir: fsync_dir reports a missing directory") {
	TempDir t;
	CHECK_NOTHROW(fsync_dir(t.path));
	CHECK_THROWS_AS(fsync_dir(t.path + "/nope"), std::runtime_error);
}

TEST_CASE("maildir: deliveries of several sessions share one directory commit") {
	TempDir t;
	write_file(t.path + "/body1", "one\r\n");
	write_file(t.path + "/body2", "two\r\n");
	const std::string root = t.path + "/Maildir";
	// An existing Maildir: only the rename targets need a commit.
	std::vector<MaildirCopy> setup(1);
	setup[0].maildir = root;
	setup[0].mailbox = "INBOX";
	deliver_maildir(t.path + "/body1", setup, "h");

	std::set<std::string> dirs;
	std::vector<MaildirCopy> session1(1), session2(2);
	session1[0].maildir = root;
	session1[0].mailbox = "INBOX";
	session2[0].maildir = root;
	session2[0].mailbox = "INBOX";
	session2[1].maildir = root;
	session2[1].mailbox = "Junk";
	session2[1].seen = true;
	tern::store::deliver_maildir_unsynced(t.path + "/body1", session1, "h", dirs);
	tern::store::deliver_maildir_unsynced(t.path + "/body2", session2, "h", dirs);
	CHECK(dirs ==
	      std::set<std::string>{root, root + "/new", root + "/.Junk", root + "/.Junk/tmp", root + "/.Junk/new",
	                            root + "/.Junk/cur"});
	CHECK_NOTHROW(tern::store::fsync_dirs(dirs));
	CHECK(list_dir(root + "/new").size() == 3);
	CHECK(read_file(session1[0].final_path) == "one\r\n");
	CHECK(read_file(session2[0].final_path) == "two\r\n");
	CHECK(read_file(session2[1].final_path) == "two\r\n");
	CHECK(session2[1].final_path.find(root + "/.Junk/cur/") == 0);
}

TEST_CASE("maildir: concurrent deliveries never collide on names") {
	TempDir t;
	write_file(t.path + "/body", "b\r\n");
	const std::string root = t.path + "/Maildir";
	constexpr int thread_count = 4, per_thread = 25;
	std::vector<std::thread> threads;
	std::atomic<int> failures{0};
	for (int i = 0; i < thread_count; ++i) {
		threads.emplace_back([&] {
			for (int j = 0; j < per_thread; ++j) {
				// All threads race to create the same new folder first.
				std::vector<MaildirCopy> copies(1);
				copies[0].maildir = root;
				copies[0].mailbox = "Shared";
				try {
					deliver_maildir(t.path + "/body", copies, "h");
				} catch (const std::exception&) {
					++failures;
				}
			}
		});
	}
	for (std::thread& th : threads) th.join();
	CHECK(failures == 0);
	CHECK(list_dir(root + "/.Shared/new").size() == thread_count * per_thread);
	CHECK(list_dir(root + "/.Shared/tmp").empty());
}

// store::copy_file_bytes, the copy behind Maildir and queue files: a
// failure names the file it happened on, the written one for a write (a
// full queue file system was reported as the spool file's), marked when
// the disk is full so the session answers 452 4.3.1.
TEST_CASE("copy_file_bytes: copies a range; a failed write names the output and says the disk is full") {
	TempDir dir;
	const std::string in_path = dir.path + "/in";
	write_file(in_path, "0123456789");
	UniqueFd in(::open(in_path.c_str(), O_RDONLY | O_CLOEXEC));
	REQUIRE(in);
	const std::string out_path = dir.path + "/out";
	UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	REQUIRE(out);
	CHECK(tern::store::copy_file_bytes(in.get(), in_path, out.get(), out_path, 2, 5) == 5);
	CHECK(tern::store::copy_file_bytes(in.get(), in_path, out.get(), out_path, 8, 5) == 2);  // input ends first
	CHECK(read_file(out_path) == "2345689");

	// /dev/full answers every write with ENOSPC.
	UniqueFd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
	REQUIRE(full);
	std::string error;
	try {
		tern::store::copy_file_bytes(in.get(), in_path, full.get(), "/dev/full", 0, 10);
	} catch (const std::runtime_error& e) {
		error = e.what();
	}
	CHECK(error == "insufficient storage: write /dev/full: No space left on device");
	CHECK(tern::is_storage_full_error(error));
}
