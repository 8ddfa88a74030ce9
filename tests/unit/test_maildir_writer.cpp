// MaildirWriter: parallel Maildir writes, shared directory fsyncs, answers
// on the loop thread only once a message is durable.
#include <doctest/doctest.h>

#include <ev.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/maildir_writer.h"
#include "files.h"

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

size_t files_in(const std::string& dir) {
	size_t n = 0;
	std::error_code ec;
	for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
	     ++it)
		n++;
	return n;
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
		MaildirWriter writer(l.loop, 4);
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
		MaildirWriter writer(l.loop, 2);
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
