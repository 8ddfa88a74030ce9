// SPEC "Durability and safety promises": 250 after DATA means on disk; a
// kill -9 at any moment leaves no partial message visible.
#include "bb.h"

#include <sys/stat.h>

#include <csignal>

TEST_CASE("durability: SIGKILL right after the 250 to DATA; the message is complete in new/") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	std::string body;
	for (int i = 0; i < 2000; i++) body += "durable line " + std::to_string(i) + "\r\n";
	std::vector<std::string> sent;
	for (int round = 0; round < 3; round++) {
		CAPTURE(round);
		if (round > 0) REQUIRE_MESSAGE(d.start(), d.error());
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		std::string message = make_message("durable" + std::to_string(round), body);
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, message);
		REQUIRE(t.reply.plain() == "250 2.2.0 it is done");
		d.kill9();
		sent.push_back(message);

		auto files = maildir_files(d.maildir());
		REQUIRE(files.size() == sent.size());
		for (const std::string& m : sent) {
			int matches = 0;
			for (auto& f : files)
				if (ends_with(read_file(f), m)) matches++;
			CHECK(matches == 1);
		}
	}
}

TEST_CASE("durability: SIGKILL in the middle of DATA leaves nothing in new/, and a restart works") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	std::string message = make_message("partial", std::string(100000, 'p') + "\r\n");
	REQUIRE(c.send(message.substr(0, message.size() / 2)));
	usleep(200000);
	d.kill9();
	CHECK(maildir_files(d.maildir()).empty());

	REQUIRE_MESSAGE(d.start(), d.error());
	CHECK(maildir_files(d.maildir()).empty());
	SmtpClient c2 = connect_and_ehlo(d);
	REQUIRE(c2.connected());
	CHECK(send_mail(c2, test_sender, {"alice@test.example"}, make_message("after restart")).reply.plain() ==
	      "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK(contains(read_file(files[0]), "Subject: after restart\r\n"));
	CHECK_FALSE(contains(read_file(files[0]), "Subject: partial"));
}

TEST_CASE("durability: SIGKILL while the final dot is being processed; new/ holds only complete messages") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	std::string message = make_message("racy", std::string(50000, 'r') + "\r\n");
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(c.cmd("DATA").code == 354);
	REQUIRE(c.send(message + ".\r\n"));
	d.kill9();  // no reply awaited: the daemon may be anywhere in the store path
	for (auto& f : maildir_files(d.maildir())) CHECK(ends_with(read_file(f), message));
}

namespace {

ino_t inode_of(const std::string& path) {
	struct stat st {};
	return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

// man/ternd.8 FILES "data_dir": the first ternd holds data_dir; a second one
// given the same data_dir (on other ports) stops before it clears tmp/ or
// replaces sendmail.tern's socket, and a message in progress is unharmed.
TEST_CASE("durability: a second ternd on the same data_dir stops without touching the first one's files") {
	TernDaemon first;
	REQUIRE_RUNNING(first);
	{
		SmtpClient c = connect_and_ehlo(first);
		REQUIRE(send_mail(c, test_sender, {"alice@test.example"}, make_message("before")).reply.code == 250);
	}
	SmtpClient open = connect_and_ehlo(first);
	REQUIRE(open.cmd("MAIL FROM:<bob@sender.example>").code == 250);
	REQUIRE(open.cmd("RCPT TO:<alice@test.example>").code == 250);
	REQUIRE(open.cmd("DATA").code == 354);
	std::string message = make_message("during");
	open.send(message.substr(0, message.size() / 2));
	usleep(200000);  // the first half reaches the spool file
	std::string tmp = first.data_dir() + "/tmp", socket = first.data_dir() + "/public/sendmail.sock";
	std::vector<std::string> tmp_before = maildir_files(tmp, "");
	ino_t socket_before = inode_of(socket);
	REQUIRE(!tmp_before.empty());
	REQUIRE(socket_before != 0);

	TernDaemon second({.config_patch = R"({"data_dir": ")" + first.data_dir() + R"("})", .start = false});
	CHECK_FALSE(second.start());
	CHECK(contains(second.error(), "another ternd uses " + first.data_dir() + " (data_dir is locked)"));
	CHECK(maildir_files(tmp, "") == tmp_before);
	CHECK(inode_of(socket) == socket_before);
	CHECK(wait_for_unix_socket(socket, 2000));

	open.send(message.substr(message.size() / 2) + ".\r\n");
	CHECK(open.read_reply().plain() == "250 2.2.0 it is done");
	auto files = wait_for_maildir(first.maildir(), 2);
	REQUIRE(files.size() == 2);
	int complete = 0;
	for (const std::string& f : files) complete += ends_with(read_file(f), message) ? 1 : 0;
	CHECK(complete == 1);
	CHECK(first.stop() == 0);
}

// man/sendmail.tern.8 FILES: ternd removes its socket when it stops, also
// when it stops at start after binding it (here: a pid file whose folder
// cannot be made, a file standing where it should be).
TEST_CASE("durability: a start that fails after binding leaves no sendmail.tern socket behind") {
	TernDaemon d({.config_patch = "", .start = false});
	write_file(d.dir() + "/blocker", "");
	d.write_config(R"({"pid_file": ")" + d.dir() + R"(/blocker/ternd.pid"})");
	CHECK_FALSE(d.start());
	CHECK_MESSAGE(contains(d.error(), "writing pid file"), d.error());
	CHECK_FALSE(file_exists(d.data_dir() + "/public/sendmail.sock"));
	// The next start binds it again.
	d.write_config("{}");
	REQUIRE_MESSAGE(d.start(), d.error());
	CHECK(wait_for_unix_socket(d.data_dir() + "/public/sendmail.sock", 5000));
	CHECK(d.stop() == 0);
}
