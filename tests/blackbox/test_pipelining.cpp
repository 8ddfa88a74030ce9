// PIPELINING (RFC 2920): replies in order, and a batch's replies leave in
// one write (doc/behaviour.md §0 "Output is buffered").
#include "bb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

namespace {

// Splits complete replies off the front of bytes.
std::vector<std::string> split_replies(const std::string& bytes) {
	std::vector<std::string> replies;
	std::string current;
	size_t start = 0;
	while (start < bytes.size()) {
		size_t eol = bytes.find("\r\n", start);
		if (eol == std::string::npos) break;
		std::string line = bytes.substr(start, eol - start);
		start = eol + 2;
		current += line + "\n";
		if (line.size() == 3 || (line.size() > 3 && line[3] == ' ')) {
			replies.push_back(strip_received_id(line));
			current.clear();
		}
	}
	return replies;
}

}  // namespace

TEST_CASE("pipelining: MAIL, RCPT, DATA in one write get three replies in order, together") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(c.send("MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nDATA\r\n"));
	// One read: the three replies were flushed as one batch.
	std::string first = c.recv_once();
	CHECK(split_replies(first) ==
	      std::vector<std::string>{"250 2.1.0 looking good", "250 2.1.0 now on the list",
	                               "354 see you at the bare dot"});
	std::string message = make_message("pipelined");
	REQUIRE(c.send(message + ".\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);
}

TEST_CASE("pipelining: whole transactions and QUIT in one write") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_smtp(d);
	REQUIRE(c.read_reply().code == 220);
	std::string batch = "EHLO client.sender.example\r\n";
	REQUIRE(c.send(batch));
	REQUIRE(c.read_reply().code == 250);
	std::string all =
	    "MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nRCPT TO:<other@elsewhere.example>\r\n"
	    "DATA\r\n";
	REQUIRE(c.send(all));
	CHECK(c.read_reply().plain() == "250 2.1.0 looking good");
	CHECK(c.read_reply().plain() == "250 2.1.0 now on the list");
	CHECK(c.read_reply().plain() == "550 5.1.1 not accepting email for domain");
	CHECK(c.read_reply().plain() == "354 see you at the bare dot");
	REQUIRE(c.send(make_message("p2") + ".\r\nRSET\r\nNOOP\r\nQUIT\r\n"));
	CHECK(c.read_reply().plain() == "250 2.2.0 it is done");
	CHECK(c.read_reply().plain() == "250 2.0.0 all clear");
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
	CHECK(c.read_reply().plain() == "221 2.0.0 okay thanks bye");
	CHECK(c.expect_closed());
}

TEST_CASE("pipelining: a failing command in a batch does not disturb the following ones") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	REQUIRE(
	    c.send("RCPT TO:<alice@test.example>\r\nMAIL FROM:<bob@sender.example> FOO=1\r\n"
	           "MAIL FROM:<bob@sender.example>\r\nRCPT TO:<alice@test.example>\r\nNOOP\r\n"));
	CHECK(c.read_reply().plain() == "503 5.5.1 missing MAIL FROM");
	CHECK(c.read_reply().plain() == "555 5.3.3 unrecognized parameter \"FOO\"");
	CHECK(c.read_reply().plain() == "250 2.1.0 looking good");
	CHECK(c.read_reply().plain() == "250 2.1.0 now on the list");
	CHECK(c.read_reply().plain() == "250 2.0.0 alrighty");
}

TEST_CASE("pipelining: commands split across many small writes") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string line = "MAIL FROM:<bob@sender.example>\r\n";
	for (char ch : line) {
		REQUIRE(c.send(std::string(1, ch)));
		usleep(1000);
	}
	CHECK(c.read_reply().plain() == "250 2.1.0 looking good");
}

// A client that writes its commands and half-closes (e.g. commands piped
// into nc) still gets every reply before the server closes.
TEST_CASE("pipelining: replies still arrive when the client half-closes after its commands") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	int fd = ::socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_port = htons(static_cast<uint16_t>(d.smtp_port()));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
	std::string cmds = "EHLO client.sender.example\r\nNOOP\r\nRSET\r\n";
	REQUIRE(::write(fd, cmds.data(), cmds.size()) == static_cast<ssize_t>(cmds.size()));
	::shutdown(fd, SHUT_WR);
	std::string got;
	char buf[4096];
	timeval tv{5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	for (;;) {
		ssize_t n = ::read(fd, buf, sizeof buf);
		if (n <= 0) break;
		got.append(buf, static_cast<size_t>(n));
	}
	::close(fd);
	std::vector<std::string> replies = split_replies(got);
	REQUIRE(replies.size() == 4);
	CHECK(replies[0].rfind("220 ", 0) == 0);
	CHECK(replies[1] == "250 SMTPUTF8");
	CHECK(replies[2] == "250 2.0.0 alrighty");
	CHECK(replies[3] == "250 2.0.0 all clear");
}
