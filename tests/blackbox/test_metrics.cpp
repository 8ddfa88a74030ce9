// Prometheus text at metrics.listen /metrics (doc/behaviour.md "Logs, signals,
// metrics", "Metrics (names exact)").
#include <csignal>

#include "bb.h"
#include "helpers/tls_tools.h"
#include "metrics_page.h"

namespace {

// A ternd whose submission port takes AUTH without TLS, /metrics on `port`.
DaemonOptions plain_submission_with_metrics(int port) {
	return {.submission = true,
	        .config_patch = R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
	                            "metrics": {"listen": "127.0.0.1:)" +
	            std::to_string(port) + R"("}})"};
}

// Connected to the submission port, greeted, after EHLO.
SmtpClient submission_after_ehlo(TernDaemon& d) {
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo());
	return c;
}

}  // namespace


TEST_CASE("metrics: /metrics shows connections, command durations, deliveries and gauges") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = R"({"metrics": {"listen": "127.0.0.1:)" + std::to_string(port) + R"("}})"});
	REQUIRE_RUNNING(d);

	{
		SmtpClient c = connect_and_ehlo(d);
		REQUIRE(c.connected());
		CHECK(c.cmd("NOOP").code == 250);
		Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message());
		CHECK(t.step == "END");
		CHECK(t.reply.code == 250);
		c.cmd("QUIT");
	}
	// A connection that stays open while the page is rendered.
	SmtpClient idle = connect_smtp(d);
	REQUIRE(idle.connected());

	std::string full = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	REQUIRE_MESSAGE(starts_with(full, "HTTP/1.1 200 OK\r\n"), full.substr(0, 200));
	CHECK(contains(full, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	std::string page = full.substr(full.find("\r\n\r\n") + 4);
	INFO(page);
	CHECK(contains(full, "\r\nContent-Length: " + std::to_string(page.size()) + "\r\n"));

	for (const char* name : {"tern_smtpserver_connection_total", "tern_smtpserver_command_duration_seconds",
	                         "tern_smtpserver_delivery_total", "tern_smtpserver_submission_total",
	                         "tern_smtpserver_errors_total", "tern_authentication_total", "tern_connections_open",
	                         "tern_queue_messages", "tern_queue_deliveries_total", "tern_worker_jobs_queued"})
		CHECK_MESSAGE(contains("\n" + page, std::string("\n# TYPE ") + name + " "), name);
	CHECK(contains(page, "# TYPE tern_smtpserver_command_duration_seconds histogram\n"));
	CHECK(contains(page, "# TYPE tern_connections_open gauge\n"));

	CHECK(sample(page, "tern_smtpserver_connection_total{kind=\"smtp\"}") == 2);
	const std::string ehlo = "tern_smtpserver_command_duration_seconds";
	const std::string ehlo_labels = "kind=\"smtp\",cmd=\"ehlo\",code=\"250\",ecode=\"\"";
	CHECK(sample(page, ehlo + "_count{" + ehlo_labels + "}") == 1);
	CHECK(sample(page, ehlo + "_bucket{" + ehlo_labels + ",le=\"+Inf\"}") == 1);
	CHECK(sample(page, ehlo + "_bucket{" + ehlo_labels + ",le=\"120\"}") == 1);
	CHECK(sample(page, ehlo + "_count{kind=\"smtp\",cmd=\"noop\",code=\"250\",ecode=\"2.0.0\"}") == 1);
	CHECK(sample(page, ehlo + "_count{kind=\"smtp\",cmd=\"mail\",code=\"250\",ecode=\"2.1.0\"}") == 1);
	CHECK(sample(page, ehlo + "_count{kind=\"smtp\",cmd=\"rcpt\",code=\"250\",ecode=\"2.1.0\"}") == 1);
	// DATA's 354 is a plain line, as in the model; the 250 after the dot counts.
	CHECK(page.find("cmd=\"data\",code=\"354\"") == std::string::npos);
	CHECK(sample(page, ehlo + "_count{kind=\"smtp\",cmd=\"data\",code=\"250\",ecode=\"2.2.0\"}") == 1);
	CHECK(sample(page, "tern_smtpserver_delivery_total{result=\"delivered\",reason=\"no-bad-signals\"}") == 1);
	CHECK(sample(page, "tern_connections_open") == 1);
	// The gauge is back to 0 once the work the delivery and the new
	// connection started has run (on a busy machine not yet when the page
	// above was rendered).
	CHECK(sample_within(port, "tern_worker_jobs_queued", 0, 5000) == 0);
	CHECK(sample(page, "tern_queue_messages") == 0);
	CHECK(sample(page, "tern_queue_deliveries_total{result=\"delivered\"}") == 0);
}

// doc/behaviour.md D30: a reply tern sends on its own, here the idle
// timeout's 421, answers no command; the EHLO before it was observed once,
// by its own 250.
TEST_CASE("metrics: the idle timeout's 421 is no second observation of the last command") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = R"({"timeouts_s": {"command": 1}, "metrics": {"listen": "127.0.0.1:)" +
	                  std::to_string(port) + R"("}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Reply timeout = c.read_reply();
	CHECK(timeout.code == 421);
	CHECK(c.expect_closed());

	std::string page = get_metrics(port);
	INFO(page);
	const std::string duration = "tern_smtpserver_command_duration_seconds_count";
	CHECK(sample(page, duration + "{kind=\"smtp\",cmd=\"ehlo\",code=\"250\",ecode=\"\"}") == 1);
	CHECK(page.find("code=\"421\"") == std::string::npos);
}

// A reply to a line the client sent is observed under a command: a line
// too long under "(unknown)", as it names none.
TEST_CASE("metrics: a line too long is observed as cmd=\"(unknown)\"") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = R"({"metrics": {"listen": "127.0.0.1:)" + std::to_string(port) + R"("}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	Reply r = c.cmd("NOOP " + std::string(3000, 'x'));
	CHECK(r.code == 500);
	CHECK(c.expect_closed());
	std::string page = get_metrics(port);
	INFO(page);
	CHECK(sample(page,
	             "tern_smtpserver_command_duration_seconds_count{kind=\"smtp\",cmd=\"(unknown)\",code=\"500\","
	             "ecode=\"5.5.0\"}") == 1);
}

TEST_CASE("metrics: other paths 404, other methods 405, HEAD has no body") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = R"({"metrics": {"listen": "127.0.0.1:)" + std::to_string(port) + R"("}})"});
	REQUIRE_RUNNING(d);
	std::string r = http_exchange(port, "GET / HTTP/1.0\r\n\r\n");
	CHECK(starts_with(r, "HTTP/1.1 404 Not Found\r\n"));
	r = http_exchange(port, "GET /metricsx HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(starts_with(r, "HTTP/1.1 404 Not Found\r\n"));
	r = http_exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	CHECK(starts_with(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
	CHECK(contains(r, "\r\nAllow: GET, HEAD\r\n"));
	r = http_exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	CHECK(starts_with(r, "HTTP/1.1 200 OK\r\n"));
	CHECK(ends_with(r, "\r\n\r\n"));
	// A head larger than 8 KiB is refused, not buffered without bound.
	r = http_exchange(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n");
	CHECK_MESSAGE(starts_with(r, "HTTP/1.1 431 "), r);
	// Still serving after all that; the daemon also stops cleanly with the listener open.
	CHECK(contains(get_metrics(port), "# TYPE tern_queue_messages gauge\n"));
	CHECK(d.stop() == 0);
}

TEST_CASE("metrics: AUTH results by mechanism") {
	int port = free_tcp_port();
	TernDaemon d(plain_submission_with_metrics(port));
	REQUIRE_RUNNING(d);
	SmtpClient c = submission_after_ehlo(d);
	// alice@test.example with a wrong password, twice; then an aborted exchange.
	CHECK(c.cmd("AUTH PLAIN AGFsaWNlQHRlc3QuZXhhbXBsZQB3cm9uZw==").code == 535);
	CHECK(c.cmd("AUTH PLAIN AGFsaWNlQHRlc3QuZXhhbXBsZQB3cm9uZw==").code == 535);
	CHECK(c.cmd("AUTH SCRAM-SHA-256").code == 334);
	CHECK(c.cmd("*").code == 501);
	// Refused before the mechanism ran: counted under its name, as the
	// model does; an unknown mechanism has none.
	CHECK(c.cmd("AUTH PLAIN !!!!").code == 501);
	CHECK(c.cmd("AUTH FOO").code == 504);
	std::string page = get_metrics(port);
	INFO(page);
	CHECK(sample(page, "tern_smtpserver_connection_total{kind=\"submission\"}") == 1);
	CHECK(sample(page, "tern_authentication_total{kind=\"submission\",variant=\"plain\",result=\"badcreds\"}") ==
	      2);
	CHECK(sample(page,
	             "tern_authentication_total{kind=\"submission\",variant=\"scram-sha-256\",result=\"aborted\"}") ==
	      1);
	CHECK(sample(page, "tern_authentication_total{kind=\"submission\",variant=\"plain\",result=\"error\"}") == 1);
	CHECK(sample(page, "tern_authentication_total{kind=\"submission\",variant=\"\",result=\"error\"}") == 1);
	// Each command's time is measured from its line to its reply, so even
	// one answered at once takes more than nothing.
	CHECK(sample(page,
	             "tern_smtpserver_command_duration_seconds_sum{kind=\"submission\",cmd=\"ehlo\",code=\"250\","
	             "ecode=\"\"}") > 0);
	CHECK(
	    sample(
		page,
		"tern_smtpserver_command_duration_seconds_count{kind=\"submission\",cmd=\"auth\",code=\"535\",ecode=\"5.7.8\"}") ==
	    2);
}

// A client that hangs up inside the exchange failed its login, as in the
// model: counted as an error under its mechanism (and against its address).
TEST_CASE("metrics: AUTH cut off by the client's hang-up counts as an error") {
	int port = free_tcp_port();
	TernDaemon d(plain_submission_with_metrics(port));
	REQUIRE_RUNNING(d);
	{
		SmtpClient c = submission_after_ehlo(d);
		CHECK(c.cmd("AUTH LOGIN").code == 334);
		CHECK(c.cmd("YWxpY2VAdGVzdC5leGFtcGxl").code == 334);  // alice@test.example
	}
	const std::string login_error =
	    "tern_authentication_total{kind=\"submission\",variant=\"login\",result=\"error\"}";
	CHECK(sample_within(port, login_error, 1, 2500) == 1);
}

TEST_CASE("metrics: submission refusals are counted by the check that refused them") {
	int port = free_tcp_port();
	DaemonOptions options = plain_submission_with_metrics(port);
	options.start = false;
	TernDaemon d(options);
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", "submission secret 42", &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	SmtpClient c = submission_after_ehlo(d);
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response("alice@test.example", "submission secret 42")).code == 235);
	// Another account's From, then a message that brings its own Return-Path.
	Transaction t = send_mail(c, "alice@test.example", {"dave@sender.example"},
	                          make_message("not mine", "x\r\n", "bob@test.example", "dave@sender.example"));
	CHECK(t.reply.code == 550);
	t = send_mail(c, "alice@test.example", {"dave@sender.example"},
	              "Return-Path: <alice@test.example>\r\n" +
	                  make_message("own return path", "x\r\n", "alice@test.example", "dave@sender.example"));
	CHECK(t.reply.code == 550);
	std::string page = get_metrics(port);
	INFO(page);
	CHECK(sample(page, "tern_smtpserver_submission_total{result=\"badfrom\"}") == 1);
	CHECK(sample(page, "tern_smtpserver_submission_total{result=\"badheader\"}") == 1);
}

TEST_CASE("metrics: unhealthy DNSBL zones, junk filter verdicts and kept reports") {
	int port = free_tcp_port();
	TernDaemon d(
	    {.config_patch = R"({"metrics": {"listen": "127.0.0.1:)" + std::to_string(port) +
	         R"("}, "listeners": {"test": {"smtp": {"dnsbl_zones": ["dead.example", "good.example"]}}}})"});
	REQUIRE_RUNNING(d);
	d.dns().add("2.0.0.127.good.example", "A", "127.0.0.2");
	std::string page = get_metrics(port);
	CHECK(sample(page, "tern_dnsbl_zones_unhealthy") == 0);  // not tested before the first message
	CHECK(sample(page, "tern_junkfilter_verdicts_total{verdict=\"junk\"}") == 0);
	CHECK(sample(page, "tern_reports_stored_total{kind=\"dmarc\"}") == 0);
	CHECK(sample(page, "tern_reports_stored_total{kind=\"tlsrpt\"}") == 0);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message()).reply.code == 250);
	page = get_metrics(port);
	CHECK(sample(page, "tern_dnsbl_zones_unhealthy") == 1);
	CHECK(contains(page, "# TYPE tern_junkfilter_verdicts_total counter\n"));
	CHECK(contains(page, "# TYPE tern_reports_stored_total counter\n"));
}

namespace {

// A daemon's config patch: /metrics on `port`, the Maildir scanner every
// `scan_interval_s` seconds.
std::string metrics_and_scan_patch(int port, int scan_interval_s) {
	return R"({"metrics": {"listen": "127.0.0.1:)" + std::to_string(port) +
	    R"("}, "message_history": {"scan_interval_s": )" + std::to_string(scan_interval_s) + "}}";
}


}  // namespace

TEST_CASE("metrics: the message history's size and the Maildir scanner's lag") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = metrics_and_scan_patch(port, 1)});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("one")).reply.code == 250);
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("two")).reply.code == 250);
	// The scanner counts the records after its next pass (every second here).
	CHECK(sample_within(port, "tern_history_records", 2, 10000) == 2);
	std::string page = get_metrics(port);
	INFO(page);
	double lag = sample(page, "tern_maildir_scan_lag_seconds");
	CHECK(lag >= 0);
	CHECK(lag <= 3);
}

TEST_CASE("SIGHUP: a shorter message_history.scan_interval_s counts from the last pass, not after the old one") {
	int port = free_tcp_port();
	TernDaemon d({.config_patch = metrics_and_scan_patch(port, 3600)});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(c.connected());
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("one")).reply.code == 250);
	// The first pass runs a second after the start (it counts the first
	// message when it came before); the next would come an hour later.
	sample_within(port, "tern_history_records", 1, 3000);
	CHECK(send_mail(c, test_sender, {"alice@test.example"}, make_message("two")).reply.code == 250);
	d.write_config(R"({"message_history": {"scan_interval_s": 1}})");
	REQUIRE(d.signal(SIGHUP));
	CHECK(sample_within(port, "tern_history_records", 2, 10000) == 2);
}
