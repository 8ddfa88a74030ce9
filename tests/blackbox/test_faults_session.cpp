// Session faults found from outside (issue 8): each test reproduces one
// fault as a client sees it, then holds the fix in place.
#include "bb.h"

#include <unistd.h>

namespace {

// Counts complete reply lines equal to `wanted` in bytes.
size_t count_lines(const std::string& bytes, const std::string& wanted) {
	size_t n = 0, start = 0;
	for (size_t eol; (eol = bytes.find("\r\n", start)) != std::string::npos; start = eol + 2)
		if (bytes.compare(start, eol - start, wanted) == 0)
			++n;
	return n;
}

}  // namespace

TEST_CASE("faults: 5000 NOOPs in one write all get their reply, past the output backpressure") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	const size_t count = 5000;
	std::string batch;
	for (size_t i = 0; i < count; ++i)
		batch += "NOOP\r\n";
	REQUIRE(c.send(batch));
	// Far more than 64 KiB of replies: the daemon must come back to the
	// buffered commands once its output has drained.
	std::string received;
	int64_t deadline = now_ms() + 20000;
	while (count_lines(received, "250 2.0.0 alrighty") < count && now_ms() < deadline) {
		std::string more = c.recv_once();
		if (more.empty())
			break;
		received += more;
	}
	CHECK(count_lines(received, "250 2.0.0 alrighty") == count);
	CHECK(c.cmd("QUIT").code == 221);
}
