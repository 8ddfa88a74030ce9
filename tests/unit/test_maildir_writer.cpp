// MaildirWriter: parallel Maildir writes, shared directory fsyncs, answers
// on the loop thread only once a message is durable.
#include <doctest/doctest.h>

#include <ev.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/maildir_writer.h"
#include "core/spool_pool.h"
#include "files.h"
#include "helpers/dir_entries.h"

using tern::core::MaildirWriter;
using tern::store::MaildirCopy;
using tern::testing::read_file;
using tern::testing::TempDir;
using tern::testing::write_file;

namespace {

struct Loop {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	~Loop() { ev_loop_destroy(loop); }
};

size_t files_in(const std::string& dir) { return tern::testing::dir_entries(dir).size(); }

// As the disk threads do it (core/maildir_writer.cpp): the files, then their
// directories.
std::vector<std::string> commit_and_sync(tern::store::MaildirBatch& batch) {
	std::set<std::string> dirs;
	std::vector<std::string> errors = batch.commit_files(dirs);
	tern::store::fsync_dirs(dirs);
	return errors;
}

}  // namespace

TEST_CASE("maildir_writer: many messages at once all land in new/, each answered once, bodies removed") {
	Loop l;
	TempDir tmp;
	const std::string maildir = tmp.path + "/Maildir";
	constexpr int count = 60;
	std::vector<int> answers(count, 0);
	std::vector<std::string> errors(count);
	{
		MaildirWriter writer(l.loop, nullptr, 4);
		for (int i = 0; i < count; ++i) {
			std::string body = tmp.path + "/body-" + std::to_string(i);
			write_file(body, "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
			MaildirCopy copy;
			copy.maildir = maildir;
			copy.mailbox = "INBOX";
			copy.prefix = "Return-Path: <a@b.example>\r\n";
			writer.deliver(body, {copy}, "mx.test.example", [&, i](const std::string& error) {
				answers[size_t(i)]++;
				errors[size_t(i)] = error;
			});
		}
		CHECK(writer.pending() == count);
		writer.drain();
		CHECK(writer.pending() == 0);
	}
	for (int i = 0; i < count; ++i) {
		CHECK(answers[size_t(i)] == 1);
		CHECK(errors[size_t(i)] == "");
		CHECK(access((tmp.path + "/body-" + std::to_string(i)).c_str(), F_OK) != 0);
	}
	CHECK(files_in(maildir + "/new") == count);
	CHECK(files_in(maildir + "/tmp") == 0);
	for (const auto& e : std::filesystem::directory_iterator(maildir + "/new"))
		CHECK(read_file(e.path()).starts_with("Return-Path: <a@b.example>\r\nSubject: "));
}

TEST_CASE("maildir_writer: a copy that cannot be written fails its message only, with the reason") {
	Loop l;
	TempDir tmp;
	std::string good_error = "unset", bad_error;
	{
		MaildirWriter writer(l.loop, nullptr, 2);
		write_file(tmp.path + "/good", "Subject: ok\r\n\r\nx\r\n");
		write_file(tmp.path + "/bad", "Subject: bad\r\n\r\nx\r\n");
		MaildirCopy good{tmp.path + "/Maildir", "INBOX", "", false, ""};
		MaildirCopy bad{tmp.path + "/Maildir", "../escape", "", false, ""};
		writer.deliver(tmp.path + "/good", {good}, "mx", [&](const std::string& e) { good_error = e; });
		writer.deliver(tmp.path + "/bad", {bad}, "mx", [&](const std::string& e) { bad_error = e; });
		writer.drain();
	}
	CHECK(good_error == "");
	CHECK(bad_error.find("invalid mailbox name") != std::string::npos);
	CHECK(files_in(tmp.path + "/Maildir/new") == 1);
	// The body of a failed message is removed too: the session answers 4xx
	// and the client sends it again.
	CHECK(access((tmp.path + "/bad").c_str(), F_OK) != 0);
}

TEST_CASE("maildir_writer: `renamed` runs on a disk thread once the copy is in new/, before the answer") {
	Loop l;
	TempDir tmp;
	std::atomic<bool> answered{false}, renamed_before_answer{false}, renamed_on_loop_thread{true},
	    file_there{false}, bad_renamed{false};
	std::string renamed_path, final_path, bad_error;
	const auto loop_thread = std::this_thread::get_id();
	{
		MaildirWriter writer(l.loop, nullptr, 2);
		write_file(tmp.path + "/good", "Subject: ok\r\n\r\nx\r\n");
		write_file(tmp.path + "/bad", "Subject: bad\r\n\r\nx\r\n");
		MaildirCopy good{tmp.path + "/Maildir", "INBOX", "", false, ""};
		MaildirCopy bad{tmp.path + "/Maildir", "../escape", "", false, ""};
		writer.deliver_noting_copies(
		    tmp.path + "/good", {}, {good}, "mx",
		    [&](const std::string&, std::vector<MaildirCopy>& copies) {
			    answered = true;
			    final_path = copies.at(0).final_path;
		    },
		    [&](const std::vector<MaildirCopy>& copies) {
			    renamed_on_loop_thread = std::this_thread::get_id() == loop_thread;
			    renamed_before_answer = !answered;
			    renamed_path = copies.at(0).final_path;
			    file_there = access(renamed_path.c_str(), F_OK) == 0;
		    });
		writer.deliver_noting_copies(
		    tmp.path + "/bad", {}, {bad}, "mx",
		    [&](const std::string& e, std::vector<MaildirCopy>&) { bad_error = e; },
		    [&](const std::vector<MaildirCopy>&) { bad_renamed = true; });
		writer.drain();
	}
	CHECK(answered);
	CHECK(renamed_before_answer);
	CHECK_FALSE(renamed_on_loop_thread);
	CHECK(file_there);
	CHECK(renamed_path == final_path);
	CHECK(renamed_path.find("/Maildir/new/") != std::string::npos);
	// A message whose copies did not all land gets no such call.
	CHECK(bad_error.find("invalid mailbox name") != std::string::npos);
	CHECK_FALSE(bad_renamed);
}

TEST_CASE("maildir_writer: a step that throws on the disk thread fails its message, never answers it as stored") {
	// The worker pool logs a job's exception and still runs its answer: the
	// answer must then carry an error, or the session would say 250 for a
	// copy whose directory was never synced.
	Loop l;
	TempDir tmp;
	std::string error = "unset";
	int answers = 0;
	{
		MaildirWriter writer(l.loop, nullptr, 2);
		write_file(tmp.path + "/body", "Subject: ok\r\n\r\nx\r\n");
		MaildirCopy copy{tmp.path + "/Maildir", "INBOX", "", false, ""};
		writer.deliver_noting_copies(
		    tmp.path + "/body", {}, {copy}, "mx",
		    [&](const std::string& e, std::vector<MaildirCopy>&) {
			    answers++;
			    error = e;
		    },
		    [](const std::vector<MaildirCopy>&) { throw std::runtime_error("out of memory"); });
		writer.drain();
	}
	CHECK(answers == 1);
	CHECK(error == "internal error while storing: out of memory");
	// The copy renamed before the throw is taken back: the client's retry
	// must not deliver it twice. The body is removed all the same.
	CHECK(files_in(tmp.path + "/Maildir/new") == 0);
	CHECK(files_in(tmp.path + "/Maildir/tmp") == 0);
	CHECK(access((tmp.path + "/body").c_str(), F_OK) != 0);
}

TEST_CASE("maildir_writer: a directory sync that fails fails the message and takes its renamed copies back") {
	// The 4xx makes the client send the message again: a copy left in new/
	// would be delivered twice.
	Loop l;
	TempDir tmp;
	std::string error = "unset";
	{
		MaildirWriter writer(l.loop, nullptr, 2, [](const std::string& dir) {
			throw std::runtime_error("fsync " + dir + ": Input/output error");
		});
		write_file(tmp.path + "/body", "Subject: ok\r\n\r\nx\r\n");
		MaildirCopy inbox{tmp.path + "/Maildir", "INBOX", "", false, ""};
		MaildirCopy other{tmp.path + "/Maildir", "Other", "", false, ""};
		writer.deliver(tmp.path + "/body", {inbox, other}, "mx", [&](const std::string& e) { error = e; });
		writer.drain();
	}
	CHECK(error.find("Input/output error") != std::string::npos);
	CHECK(files_in(tmp.path + "/Maildir/new") == 0);
	CHECK(files_in(tmp.path + "/Maildir/.Other/new") == 0);
	CHECK(files_in(tmp.path + "/Maildir/tmp") == 0);
}

TEST_CASE("spool_pool: a released file is handed out again, empty; a file left with bytes is not") {
	TempDir tmp;
	tern::core::SpoolPool pool(tmp.path);
	std::string first;
	tern::UniqueFd fd = pool.acquire(first);
	REQUIRE(fd.valid());
	CHECK(pool.is_spool(first));
	CHECK_FALSE(pool.is_spool(tmp.path + "/data-1-1"));
	// Named data-*, so a restart removes it like any leftover transfer.
	CHECK(first.rfind(tmp.path + "/data-", 0) == 0);
	REQUIRE(write(fd.get(), "message", 7) == 7);
	fd.reset();
	REQUIRE(truncate(first.c_str(), 0) == 0);
	pool.release(first);
	CHECK(pool.spare() == 1);

	std::string again;
	fd = pool.acquire(again);
	REQUIRE(fd.valid());
	CHECK(again == first);
	CHECK(pool.spare() == 0);
	REQUIRE(write(fd.get(), "second", 6) == 6);
	fd.reset();
	// Given back without the truncate: its bytes must not reach the next
	// message, so the pool drops it and makes a new file.
	pool.release(again);
	std::string third;
	fd = pool.acquire(third);
	REQUIRE(fd.valid());
	fd.reset();
	CHECK(third != first);
	CHECK(access(first.c_str(), F_OK) != 0);
	CHECK(std::filesystem::file_size(third) == 0);
}

TEST_CASE("spool_pool: a file given back with its descriptor is handed out on that descriptor") {
	TempDir tmp;
	tern::core::SpoolPool pool(tmp.path);
	std::string first;
	tern::UniqueFd fd = pool.acquire(first);
	REQUIRE(fd.valid());
	int number = fd.get();
	pool.release(first, std::move(fd));
	CHECK(pool.spare() == 1);
	std::string again;
	fd = pool.acquire(again);
	CHECK(again == first);
	CHECK(fd.get() == number);  // the same descriptor, not a new open
	REQUIRE(write(fd.get(), "bytes", 5) == 5);
	CHECK(std::filesystem::file_size(first) == 5);
}

TEST_CASE("spool_pool: with a filler, spare files are created on a worker before the loop needs them") {
	Loop l;
	TempDir tmp;
	tern::core::WorkerPool filler(l.loop, 1);
	tern::core::SpoolPool pool(tmp.path, &filler);
	// None spare at first: the loop creates this one and asks for more.
	std::string first;
	tern::UniqueFd fd = pool.acquire(first);
	REQUIRE(fd);
	fd.reset();
	CHECK(pool.spare() == 0);
	filler.drain();
	CHECK(pool.spare() == tern::core::SpoolPool::fill_batch);
	CHECK(files_in(tmp.path) == 1 + tern::core::SpoolPool::fill_batch);
	// The next ones come from the spares, empty and named like the rest.
	std::string next;
	fd = pool.acquire(next);
	REQUIRE(fd);
	fd.reset();
	CHECK(next != first);
	CHECK(pool.is_spool(next));
	CHECK(std::filesystem::file_size(next) == 0);
	CHECK(pool.spare() == tern::core::SpoolPool::fill_batch - 1);
	// Down to the low-water mark: one more top-up, not one per acquire.
	while (pool.spare() >= tern::core::SpoolPool::low_water) {
		fd = pool.acquire(next);
		REQUIRE(fd);
		fd.reset();
	}
	fd = pool.acquire(next);
	REQUIRE(fd);
	fd.reset();
	filler.drain();
	CHECK(pool.spare() == tern::core::SpoolPool::low_water - 2 + tern::core::SpoolPool::fill_batch);
}

TEST_CASE(
    "maildir_writer: a spool body handed over open is truncated and returned to the pool; bodies by path are removed") {
	Loop l;
	TempDir tmp;
	tern::core::SpoolPool pool(tmp.path);
	std::string spool_path;
	tern::UniqueFd fd = pool.acquire(spool_path);
	REQUIRE(fd.valid());
	const std::string text = "Subject: spooled\r\n\r\nbody\r\n";
	REQUIRE(write(fd.get(), text.data(), text.size()) == ssize_t(text.size()));
	// A spool file given by path only (as when an LMTP client still reads
	// it) is removed, never emptied for reuse.
	std::string by_path;
	tern::UniqueFd by_path_fd = pool.acquire(by_path);
	REQUIRE(by_path_fd.valid());
	REQUIRE(write(by_path_fd.get(), text.data(), text.size()) == ssize_t(text.size()));
	by_path_fd.reset();
	std::string other = tmp.path + "/sendmail-1";
	write_file(other, "Subject: other\r\n\r\nbody\r\n");
	std::vector<std::string> errors;
	std::vector<std::string> landed;
	{
		MaildirWriter writer(l.loop, &pool, 2);
		MaildirCopy copy{tmp.path + "/Maildir", "INBOX", "X-Prefix: 1\r\n", false, ""};
		writer.deliver_noting_copies(spool_path, tern::core::SpoolFile{std::move(fd), text.size()}, {copy},
		                             "mx", [&](const std::string& e, std::vector<MaildirCopy>& copies) {
						     errors.push_back(e);
						     for (const auto& c : copies) landed.push_back(c.final_path);
					     });
		writer.deliver(by_path, {copy}, "mx", [&](const std::string& e) { errors.push_back(e); });
		writer.deliver(other, {copy}, "mx", [&](const std::string& e) { errors.push_back(e); });
		writer.drain();
	}
	CHECK(errors == std::vector<std::string>{"", "", ""});
	REQUIRE(landed.size() == 1);
	CHECK(read_file(landed[0]) == "X-Prefix: 1\r\n" + text);
	CHECK(pool.spare() == 1);
	CHECK(std::filesystem::file_size(spool_path) == 0);
	CHECK(access(by_path.c_str(), F_OK) != 0);
	CHECK(access(other.c_str(), F_OK) != 0);
	// Handed out again on the descriptor the session wrote, and the next
	// message starts at offset 0 (O_APPEND after the truncate).
	std::string reused;
	fd = pool.acquire(reused);
	REQUIRE(fd.valid());
	CHECK(reused == spool_path);
	REQUIRE(write(fd.get(), "next", 4) == 4);
	CHECK(read_file(spool_path) == "next");
	fd.reset();
	CHECK(files_in(tmp.path + "/Maildir/new") == 3);
}

namespace {

// One batch delivering `body` as `copy`, its prepared folders remembered
// as the writer remembers them; the copy's error ("" when delivered).
std::string deliver_in_batch(const std::string& body, const MaildirCopy& copy) {
	tern::store::MaildirBatch batch("mx", true);
	batch.stage(body, {copy});
	std::vector<std::string> errors = commit_and_sync(batch);
	tern::store::remember_durable_folders(batch.prepared_folders());
	return errors[0];
}

}  // namespace

TEST_CASE("maildir batch: a copy whose rename fails fails its message, and the copies renamed before it go again") {
	TempDir tmp;
	write_file(tmp.path + "/body", "Subject: two\r\n\r\nx\r\n");
	MaildirCopy first{tmp.path + "/A", "INBOX", "", false, ""};
	MaildirCopy second{tmp.path + "/B", "INBOX", "", false, ""};
	tern::store::MaildirBatch batch("mx");
	batch.stage(tmp.path + "/body", {first, second});
	// B's new/ turns into a file between staging and the renames.
	std::filesystem::remove(tmp.path + "/B/new");
	write_file(tmp.path + "/B/new", "not a directory");
	std::set<std::string> dirs;
	std::vector<std::string> errors = batch.commit_files(dirs);
	CHECK(errors[0].find("rename to") != std::string::npos);
	CHECK(files_in(tmp.path + "/A/new") == 0);
	CHECK(files_in(tmp.path + "/A/tmp") == 0);
	CHECK(files_in(tmp.path + "/B/tmp") == 0);
	for (const MaildirCopy& c : batch.delivered(0)) CHECK(c.final_path.empty());
}

TEST_CASE("maildir batch: a remembered folder removed by hand fails one delivery, then is prepared again") {
	TempDir tmp;
	const std::string maildir = tmp.path + "/acct/Maildir";
	write_file(tmp.path + "/body", "Subject: x\r\n\r\nx\r\n");
	MaildirCopy copy{maildir, "INBOX", "", false, ""};
	auto deliver = [&] { return deliver_in_batch(tmp.path + "/body", copy); };
	CHECK(deliver() == "");
	// Known now: the next batch prepares nothing.
	{
		tern::store::MaildirBatch batch("mx", true);
		batch.stage(tmp.path + "/body", {copy});
		CHECK(commit_and_sync(batch)[0] == "");
		CHECK(batch.prepared_folders().empty());
	}
	std::filesystem::remove_all(tmp.path + "/acct");
	CHECK(deliver().find("No such file") != std::string::npos);
	CHECK(deliver() == "");
	CHECK(files_in(maildir + "/new") == 1);
}

TEST_CASE("maildir batch: new/ removed by hand from a remembered folder is made again, the delivery succeeds") {
	TempDir tmp;
	const std::string maildir = tmp.path + "/acct/Maildir";
	write_file(tmp.path + "/body", "Subject: x\r\n\r\nx\r\n");
	MaildirCopy copy{maildir, "INBOX", "", false, ""};
	auto deliver = [&] { return deliver_in_batch(tmp.path + "/body", copy); };
	CHECK(deliver() == "");
	// tmp/ is still there, so the copy is written; only its rename needs new/.
	std::filesystem::remove_all(maildir + "/new");
	CHECK(deliver() == "");
	CHECK(files_in(maildir + "/new") == 1);
	CHECK(deliver() == "");
	CHECK(files_in(maildir + "/new") == 2);
}
