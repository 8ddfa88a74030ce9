// Self-tests of the black-box harness (helpers/), so a failing daemon test
// is never a broken helper in disguise. No ternd involved.
#include "bb.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers/smtp_sink.h"

namespace {

// Sends one query to the test DNS server; returns the raw response ("" on timeout).
std::string dns_query(uint16_t port, const std::string& name, uint16_t type) {
	std::string q = {'\x12', '\x34', '\x01', '\x00', '\x00', '\x01',
	                 '\x00', '\x00', '\x00', '\x00', '\x00', '\x00'};
	size_t start = 0;
	while (start < name.size()) {
		size_t dot = name.find('.', start);
		if (dot == std::string::npos) dot = name.size();
		q.push_back(char(dot - start));
		q += name.substr(start, dot - start);
		start = dot + 1;
	}
	q.push_back('\0');
	q.push_back(char(type >> 8));
	q.push_back(char(type & 0xff));
	q += std::string("\x00\x01", 2);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&sin), sizeof(sin));
	pollfd pfd{fd, POLLIN, 0};
	std::string out;
	if (poll(&pfd, 1, 500) == 1) {
		char buf[2048];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0) out.assign(buf, size_t(n));
	}
	close(fd);
	return out;
}

int rcode(const std::string& response) { return response.size() >= 4 ? response[3] & 0x0f : -1; }
int answer_count(const std::string& response) {
	return response.size() >= 8 ? (uint8_t(response[6]) << 8) | uint8_t(response[7]) : -1;
}

}  // namespace

TEST_CASE("harness: DNS server answers, says NXDOMAIN, no-data, SERVFAIL, and can stay silent") {
	DnsServer dns;
	dns.add_standard_zone();
	dns.add("alias.example", "CNAME", "sender.example");
	dns.add_silent_name("silent.example");
	dns.add_servfail_name("fail.example");

	std::string a = dns_query(dns.port(), "Sender.Example", 1);
	CHECK(rcode(a) == 0);
	CHECK(answer_count(a) == 1);
	CHECK(a.substr(a.size() - 4) == std::string("\x7f\x00\x00\x01", 4));
	CHECK(answer_count(dns_query(dns.port(), "sender.example", 15)) == 1);
	CHECK(answer_count(dns_query(dns.port(), "sender.example", 16)) == 1);
	std::string nodata = dns_query(dns.port(), "sender.example", 28);
	CHECK(rcode(nodata) == 0);
	CHECK(answer_count(nodata) == 0);
	CHECK(rcode(dns_query(dns.port(), "unknown.example", 1)) == 3);
	CHECK(rcode(dns_query(dns.port(), "fail.example", 1)) == 2);
	CHECK(answer_count(dns_query(dns.port(), "alias.example", 1)) == 2);  // CNAME + A
	CHECK(dns_query(dns.port(), "silent.example", 1).empty());
	dns.set_silent(true);
	CHECK(dns_query(dns.port(), "sender.example", 1).empty());
	auto seen = dns.queries();
	REQUIRE(seen.size() == 9);
	CHECK(seen[0] == "sender.example A");
	CHECK(seen[3] == "sender.example AAAA");
}

TEST_CASE("harness: SMTP sink records a message; SmtpClient parses replies and ids") {
	SmtpSink sink;
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", sink.port()));
	Reply g = c.read_reply();
	CHECK(g.code == 220);
	Reply e = c.cmd("EHLO me.example");
	CHECK(e.lines.size() == 4);
	CHECK(e.lines.front() == "250-sink.test.example");
	CHECK(send_mail(c, "a@b.example", {"c@d.example"}, "Subject: x\r\n\r\n.dot\r\nend\r\n").reply.plain() ==
	      "250 2.0.0 queued");
	REQUIRE(sink.wait_for_messages(1));
	auto msgs = sink.messages();
	CHECK(msgs[0].mail_from == "a@b.example");
	CHECK(msgs[0].rcpt_to == std::vector<std::string>{"c@d.example"});
	CHECK(msgs[0].data == "Subject: x\r\n\r\n.dot\r\nend\r\n");
	Reply q = c.cmd("QUIT");
	CHECK(q.code == 221);
	CHECK(q.ecode == "2.0.0");
	CHECK(q.message() == "bye");
	CHECK(c.expect_closed());

	CHECK(strip_received_id("503 5.5.1 x (abcdefghijklmnopqrstuv)") == "503 5.5.1 x");
	CHECK(strip_received_id("503 5.5.1 x (short)") == "503 5.5.1 x (short)");
	CHECK(ends_with_received_id("x (A-_bcdefghijklmnopqrst)"));
}

TEST_CASE("harness: a read against a silent server times out instead of hanging") {
	// A listening socket that never accepts: the kernel completes the
	// handshake, nobody ever writes.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in sin{};
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0);
	REQUIRE(listen(fd, 4) == 0);
	socklen_t len = sizeof(sin);
	getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
	SmtpClient c;
	c.timeout_ms = 300;
	REQUIRE(c.connect("127.0.0.1", ntohs(sin.sin_port)));
	int64_t start = now_ms();
	Reply r = c.read_reply();
	CHECK(r.code == 0);
	CHECK(r.error == "timeout");
	CHECK(r.plain() == "<error: timeout>");
	CHECK_FALSE(c.expect_closed());
	CHECK(now_ms() - start < 2000);
	close(fd);
}
