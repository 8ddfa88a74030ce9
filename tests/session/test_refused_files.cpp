// A refused message leaves nothing behind: its temp file is removed (on a
// worker, server/message_file.h) although the session goes on.
#include <doctest/doctest.h>

#include <filesystem>

#include "session/harness.h"

using namespace tern;
using namespace tern::session_test;

namespace {

// Files in data_dir/tmp that hold message data; spool files kept empty for
// reuse (core/spool_pool.h) hold none and do not count.
std::vector<std::string> message_files(const SessionHarness& h) {
	std::vector<std::string> names;
	std::error_code ec;
	for (std::filesystem::directory_iterator it(h.data_dir() + "/tmp", ec), end; !ec && it != end;
	     it.increment(ec)) {
		std::string name = it->path().filename().string();
		if (name.rfind("data-spool-", 0) == 0 && std::filesystem::file_size(it->path(), ec) == 0) continue;
		names.push_back(name);
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
