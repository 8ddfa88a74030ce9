// A refused message leaves nothing behind: its temp file is removed (on a
// worker, server/message_file.h) although the session goes on.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "helpers/dir_entries.h"
#include "sasl/secrets.h"
#include "session/harness.h"
#include "util/base64.h"

using namespace tern;
using namespace tern::session_test;

namespace {

// Files in data_dir/tmp that hold message data; spool files kept empty for
// reuse (core/spool_pool.h) hold none and do not count.
std::vector<std::string> message_files(const SessionHarness& h) {
	std::vector<std::string> names;
	for (std::string& name : tern::testing::dir_entries(h.data_dir() + "/tmp")) {
		std::error_code ec;
		if (name.rfind("data-spool-", 0) == 0 &&
		    std::filesystem::file_size(h.data_dir() + "/tmp/" + name, ec) == 0)
			continue;
		names.push_back(std::move(name));
	}
	return names;
}

}  // namespace

TEST_CASE("refused message: a loop's 550 after DATA, then its temp file is gone and the session goes on") {
	SessionHarness h;
	REQUIRE(h.replies().rfind("220 ", 0) == 0);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	std::string received;
	for (int i = 0; i < 101; ++i)
		received += "Received: from hop" + std::to_string(i) +
		    ".example by mx.example; Thu, 3 Dec 2026 12:00:00 +0000\r\n";
	h.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n" + received +
	       "Subject: looping\r\n\r\nround and round\r\n.\r\n");
	std::string replies = h.replies(4, 10);
	INFO(replies);
	// RFC 5321 6.3: too many Received fields is a loop.
	CHECK(replies.find("\r\n550 5.4.6 loop detected, more than 100 Received headers") != std::string::npos);
	CHECK(h.run_until([&] { return message_files(h).empty(); }, 5));
	CHECK(h.maildir_files("alice").empty());
	CHECK(h.exchange("NOOP") == "250 2.0.0 alrighty\r\n");
}

// A submission's message goes to a worker for its checks and signature
// (prepare_submission); a session that ends before the result (here the
// wait for the busy workers outlasts timeouts_s.data_total) leaves no file.
TEST_CASE("refused message: a submission that times out waiting for its checks on a worker leaves no file") {
	HarnessOptions o;
	o.service = net::Service::submission;
	o.config_patch = R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	                     "timeouts_s": {"data_total": 1}})";
	SessionHarness h(o);
	h.env().set_password_secrets("alice", sasl::StoredSecrets::derive("right one").serialize());
	REQUIRE(h.replies().rfind("220 ", 0) == 0);
	REQUIRE(h.exchange("EHLO client.sender.example").rfind("250-", 0) == 0);
	const std::string plain = std::string(1, '\0') + "alice@test.example" + std::string(1, '\0') + "right one";
	REQUIRE(h.exchange("AUTH PLAIN " + base64_encode(plain)).rfind("235 ", 0) == 0);
	// Every worker busy until released (at the latest when the test ends).
	std::atomic<bool> release{false};
	struct Release {
		std::atomic<bool>& flag;
		~Release() { flag = true; }
	} release_at_end{release};
	for (int i = 0; i < 8; ++i)
		h.server().workers().submit(
		    [&release] {
			    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(5));
		    },
		    [] {});
	h.send("MAIL FROM:<alice@test.example>\r\nRCPT TO:<bob@remote.example>\r\nDATA\r\n");
	REQUIRE(h.replies(3).find("354 ") != std::string::npos);
	h.send("From: <alice@test.example>\r\nTo: <bob@remote.example>\r\nSubject: never sent\r\n\r\nx\r\n.\r\n");
	CHECK(h.replies(1, 5).rfind("421 ", 0) == 0);
	REQUIRE(h.run_until([&] { return !h.session_open(); }, 5));
	CHECK_FALSE(message_files(h).empty());  // the job still has it
	release = true;
	CHECK(h.run_until([&] { return message_files(h).empty() && h.server().workers().pending() == 0; }, 5));
	CHECK(message_files(h).empty());
}

// Localserve's "timeout" localpart at delivery: no answer for an hour, and
// nothing of the message kept meanwhile.
TEST_CASE("refused message: localserve's timeout localpart at delivery stalls without keeping the message file") {
	HarnessOptions o;
	o.localserve = true;
	SessionHarness h(o);
	REQUIRE(h.replies().rfind("220 ", 0) == 0);
	REQUIRE(h.exchange("EHLO client.example").rfind("250-", 0) == 0);
	h.send("MAIL FROM:<app@example.org>\r\nRCPT TO:<x-timeout@localhost>\r\nDATA\r\n");
	REQUIRE(h.replies(3).find("354 ") != std::string::npos);
	h.send("Subject: stalls\r\n\r\nx\r\n.\r\n");
	CHECK(h.run_until([&] { return message_files(h).empty(); }, 5));
	CHECK(h.received().empty());  // the reply waits for the hour
	CHECK(h.session_open());
}
