// SPEC "Bad input … 10k idle connections … never a hang of the loop";
// per-IP limits from doc/behaviour.md §1 and §10.
#include "bb.h"

#include <sys/resource.h>

#include <filesystem>
#include <sstream>

TEST_CASE("connections: 2000 idle clients after EHLO while another completes a delivery") {
	rlimit limit{};
	getrlimit(RLIMIT_NOFILE, &limit);
	if (limit.rlim_cur < 2200) {
		MESSAGE("skipped: RLIMIT_NOFILE " << limit.rlim_cur << " is below 2200");
		return;
	}
	TernDaemon d({.config_patch = R"({"limits": {"connections": [5000, 5000, 5000],
		"connection_rate_per_min": [10000, 10000, 10000]}})"});
	REQUIRE_RUNNING(d);
	const int count = 2000;
	std::vector<SmtpClient> idle;
	idle.reserve(count);
	int64_t start = now_ms();
	for (int i = 0; i < count; i++) {
		SmtpClient c;
		REQUIRE_MESSAGE(c.connect("127.0.0.1", d.smtp_port()), "connection " << i << ": " << c.last_error);
		Reply g = c.read_reply();
		REQUIRE_MESSAGE(g.code == 220, "connection " << i << ": " << g.plain());
		Reply e = c.cmd("EHLO idle" + std::to_string(i) + ".sender.example");
		REQUIRE_MESSAGE(e.code == 250, "connection " << i << ": " << e.plain());
		idle.push_back(std::move(c));
	}
	MESSAGE("opened " << count << " connections in " << (now_ms() - start) << " ms");

	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	std::string message = make_message("among idle ones");
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, message).reply.plain() == "250 2.2.0 it is done");
	CHECK(wait_for_maildir(d.maildir(), 1).size() == 1);

	// The idle ones are all still served.
	for (int i : {0, 1, count / 2, count - 1}) CHECK(idle[size_t(i)].cmd("NOOP").plain() == "250 2.0.0 alrighty");
	idle.clear();
	CHECK(d.running());
}

TEST_CASE("connections: the 31st concurrent connection from one IP gets 421 4.7.0 (default limit 30)") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	std::vector<SmtpClient> open;
	for (int i = 0; i < 30; i++) {
		SmtpClient c = connect_smtp(d);
		REQUIRE(c.connected());
		REQUIRE_MESSAGE(c.read_reply().code == 220, "connection " << i);
		open.push_back(std::move(c));
	}
	SmtpClient extra = connect_smtp(d);
	REQUIRE(extra.connected());
	Reply r = extra.read_reply();
	CHECK(r.plain() == "421 4.7.0 too many open connections from your ip or network");
	CHECK_FALSE(r.has_id());
	CHECK(extra.expect_closed());
	// Closing one frees a slot.
	open.pop_back();
	usleep(200000);
	SmtpClient again = connect_smtp(d);
	REQUIRE(again.connected());
	CHECK(again.read_reply().code == 220);
}

TEST_CASE("connections: a client that disconnects mid-command or mid-DATA does not disturb others") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	{
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		c.send("MAIL FROM:<bob@sen");
	}
	{
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		REQUIRE(c.cmd("MAIL FROM:<bob@sender.example>").code == 250);
		REQUIRE(c.cmd("RCPT TO:<alice@test.example>").code == 250);
		REQUIRE(c.cmd("DATA").code == 354);
		c.send("Subject: cut\r\n\r\nhalf a mess");
	}
	usleep(200000);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("whole")).reply.plain() ==
	      "250 2.2.0 it is done");
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK_FALSE(contains(read_file(files[0]), "half a mess"));
}

TEST_CASE("connections: NUL bytes and binary garbage get replies or a clean close, never a crash") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	{
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		c.send(std::string("NOOP \0\0\0\r\n", 10));
		Reply r = c.read_reply();
		CHECK((r.code >= 200 || !r.error.empty()));
	}
	{
		SmtpClient c = connect_smtp(d);
		REQUIRE(c.connected());
		std::string garbage;
		for (int i = 0; i < 5000; i++) garbage += char((i * 37) & 0xff);
		c.send(garbage);
		c.expect_closed();
	}
	SmtpClient c = connect_and_ehlo(d);
	CHECK(c.connected());
	CHECK(d.running());
}

TEST_CASE("connections: out of descriptors, ternd pauses accepting, says so once, and serves again after") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	sleep(1);  // the start-up steps that open descriptors are over
	auto open_descriptors = [&] {
		size_t n = 0;
		for ([[maybe_unused]] const auto& e :
		     std::filesystem::directory_iterator("/proc/" + std::to_string(d.pid()) + "/fd"))
			n++;
		return n;
	};
	// Room for two more descriptors: the third waiting client finds none.
	rlimit before{};
	REQUIRE(prlimit(d.pid(), RLIMIT_NOFILE, nullptr, &before) == 0);
	rlimit low{open_descriptors() + 2, before.rlim_max};
	REQUIRE(prlimit(d.pid(), RLIMIT_NOFILE, &low, nullptr) == 0);
	std::vector<SmtpClient> waiting(6);
	for (auto& c : waiting) REQUIRE(c.connect("127.0.0.1", d.smtp_port()));
	usleep(1500 * 1000);  // about fifteen pauses of a tenth of a second
	REQUIRE(prlimit(d.pid(), RLIMIT_NOFILE, &before, nullptr) == 0);
	waiting.clear();

	SmtpClient after = connect_smtp(d);
	CHECK(after.read_reply().code == 220);
	std::string log = d.log_text();
	INFO(log_tail(d));
	size_t errors = 0, debugs = 0;
	std::istringstream lines(log);
	for (std::string line; std::getline(lines, line);) {
		if (line.find("msg=\"accept failed, pausing\"") == std::string::npos) continue;
		if (line.find("level=error") != std::string::npos) errors++;
		if (line.find("level=debug") != std::string::npos) debugs++;
	}
	// One error line a minute; the other pauses at debug level.
	CHECK(errors == 1);
	CHECK(debugs >= 1);
}
