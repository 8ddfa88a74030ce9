// Prometheus text exposition (format 0.0.4) of the /metrics page, the
// counters behind it, and the HTTP answers of the responder.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "core/stats.h"
#include "metrics/http.h"
#include "metrics/metrics.h"

using namespace tern;

namespace {

// The lines of `text` that start with `prefix`, joined with "\n".
std::string lines_with(const std::string& text, const std::string& prefix) {
	std::string out;
	size_t pos = 0;
	while (pos < text.size()) {
		size_t eol = text.find('\n', pos);
		std::string line = text.substr(pos, eol - pos);
		if (line.compare(0, prefix.size(), prefix) == 0) out += line + "\n";
		if (eol == std::string::npos) break;
		pos = eol + 1;
	}
	return out;
}

}  // namespace

TEST_CASE("metrics: empty stats show every family's HELP and TYPE, unlabelled gauges as 0") {
	core::Stats s;
	std::string text = metrics::render(s);
	CHECK(lines_with(text, "# TYPE ") ==
	      "# TYPE tern_authentication_total counter\n"
	      "# TYPE tern_connections_open gauge\n"
	      "# TYPE tern_dnsbl_zones_unhealthy gauge\n"
	      "# TYPE tern_history_records gauge\n"
	      "# TYPE tern_junkfilter_verdicts_total counter\n"
	      "# TYPE tern_maildir_scan_lag_seconds gauge\n"
	      "# TYPE tern_queue_deliveries_total counter\n"
	      "# TYPE tern_queue_messages gauge\n"
	      "# TYPE tern_reports_stored_total counter\n"
	      "# TYPE tern_smtpserver_command_duration_seconds histogram\n"
	      "# TYPE tern_smtpserver_connection_total counter\n"
	      "# TYPE tern_smtpserver_delivery_total counter\n"
	      "# TYPE tern_smtpserver_errors_total counter\n"
	      "# TYPE tern_smtpserver_submission_total counter\n"
	      "# TYPE tern_worker_jobs_queued gauge\n");
	CHECK(lines_with(text, "tern_") ==
	      "tern_connections_open 0\n"
	      "tern_dnsbl_zones_unhealthy 0\n"
	      "tern_history_records 0\n"
	      "tern_maildir_scan_lag_seconds 0\n"
	      "tern_queue_messages 0\n"
	      "tern_worker_jobs_queued 0\n");
	CHECK(lines_with(text, "# HELP tern_smtpserver_connection_total") ==
	      "# HELP tern_smtpserver_connection_total Incoming SMTP connections.\n");
}

TEST_CASE("metrics: counters render sorted by label values, with exact text") {
	core::Stats s;
	s.count_connection("submission");
	s.count_connection("smtp");
	s.count_connection("smtp");
	s.count_delivery("delivered", "no-bad-signals", 3);
	s.count_delivery("reject", "dmarc-policy");
	s.count_delivery("unknownuser", "", 0);  // nothing counted, no series
	s.count_submission("ok", 2);
	s.count_submission("");  // a refusal the model does not count
	s.count_auth("submission", "SCRAM-SHA-256", "ok");
	s.count_auth("submission", "PLAIN", "badcreds");
	s.count_error("dkimsign");
	std::string text = metrics::render(s);
	std::string expected =
	    "# HELP tern_authentication_total Authentication attempts and results. Variant is the SASL mechanism, lower "
	    "case; results: ok, badcreds, aborted, error.\n"
	    "# TYPE tern_authentication_total counter\n"
	    "tern_authentication_total{kind=\"submission\",variant=\"plain\",result=\"badcreds\"} 1\n"
	    "tern_authentication_total{kind=\"submission\",variant=\"scram-sha-256\",result=\"ok\"} 1\n";
	CHECK(text.substr(0, expected.size()) == expected);
	CHECK(lines_with(text, "tern_smtpserver_connection_total") ==
	      "tern_smtpserver_connection_total{kind=\"smtp\"} 2\n"
	      "tern_smtpserver_connection_total{kind=\"submission\"} 1\n");
	CHECK(lines_with(text, "tern_smtpserver_delivery_total") ==
	      "tern_smtpserver_delivery_total{result=\"delivered\",reason=\"no-bad-signals\"} 3\n"
	      "tern_smtpserver_delivery_total{result=\"reject\",reason=\"dmarc-policy\"} 1\n");
	CHECK(lines_with(text, "tern_smtpserver_submission_total") ==
	      "tern_smtpserver_submission_total{result=\"ok\"} 2\n");
	CHECK(lines_with(text, "tern_smtpserver_errors_total") ==
	      "tern_smtpserver_errors_total{error=\"dkimsign\"} 1\n");
}

TEST_CASE("metrics: the command histogram uses the model's buckets, cumulative, with sum and count") {
	core::Stats s;
	s.observe_command("smtp", "ehlo", 250, "", 0.0005);
	s.observe_command("smtp", "ehlo", 250, "", 0.001);  // le is inclusive
	s.observe_command("smtp", "ehlo", 250, "", 0.25);
	s.observe_command("smtp", "ehlo", 250, "", 500);  // beyond the last bound: only +Inf
	std::string text = metrics::render(s);
	const std::string l =
	    "tern_smtpserver_command_duration_seconds_bucket{kind=\"smtp\",cmd=\"ehlo\",code=\"250\",ecode=\"\",le=";
	CHECK(
	    lines_with(text, "tern_smtpserver_command_duration_seconds") ==
	    l + "\"0.001\"} 2\n" + l + "\"0.005\"} 2\n" + l + "\"0.01\"} 2\n" + l + "\"0.05\"} 2\n" + l +
		"\"0.1\"} 2\n" + l + "\"0.5\"} 3\n" + l + "\"1\"} 3\n" + l + "\"5\"} 3\n" + l + "\"10\"} 3\n" + l +
		"\"20\"} 3\n" + l + "\"30\"} 3\n" + l + "\"60\"} 3\n" + l + "\"120\"} 3\n" + l + "\"+Inf\"} 4\n" +
		"tern_smtpserver_command_duration_seconds_sum{kind=\"smtp\",cmd=\"ehlo\",code=\"250\",ecode=\"\"} "
		"500.2515\n"
		"tern_smtpserver_command_duration_seconds_count{kind=\"smtp\",cmd=\"ehlo\",code=\"250\",ecode=\"\"} 4\n");
	CHECK(text.find(
		  "# HELP tern_smtpserver_command_duration_seconds SMTP server command duration and result codes in "
		  "seconds.\n# TYPE tern_smtpserver_command_duration_seconds histogram\n") != std::string::npos);
}

TEST_CASE("metrics: a negative duration counts as 0") {
	core::Stats s;
	s.observe_command("submission", "data", 354, "", -3);
	auto& h = s.histograms().at("tern_smtpserver_command_duration_seconds").begin()->second;
	CHECK(h.buckets[0] == 1);
	CHECK(h.count == 1);
	CHECK(h.sum == 0);
}

TEST_CASE("metrics: samplers give gauges and counters read at render time") {
	core::Stats s;
	int open = 7;
	s.set_sampler("tern_connections_open", {}, [&] { return static_cast<double>(open); });
	s.set_sampler("tern_queue_deliveries_total", {"failed"}, [] { return 2.0; });
	s.set_sampler("tern_queue_deliveries_total", {"delivered"}, [] { return 5.0; });
	s.set_sampler("tern_queue_messages", {"extra"}, [] { return 1.0; });  // wrong label count: skipped
	std::string text = metrics::render(s);
	CHECK(lines_with(text, "tern_connections_open") == "tern_connections_open 7\n");
	open = 9;
	CHECK(lines_with(metrics::render(s), "tern_connections_open") == "tern_connections_open 9\n");
	CHECK(lines_with(text, "tern_queue_deliveries_total") ==
	      "tern_queue_deliveries_total{result=\"delivered\"} 5\n"
	      "tern_queue_deliveries_total{result=\"failed\"} 2\n");
	CHECK(lines_with(text, "tern_queue_messages") == "");
}

TEST_CASE("metrics: label values are escaped") {
	CHECK(metrics::escape_label_value("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
	core::Stats s;
	s.count_auth("submission", "x\"y", "error");
	CHECK(lines_with(metrics::render(s), "tern_authentication_total{") ==
	      "tern_authentication_total{kind=\"submission\",variant=\"x\\\"y\",result=\"error\"} 1\n");
}

TEST_CASE("metrics: value formatting") {
	CHECK(metrics::format_value(0) == "0");
	CHECK(metrics::format_value(42) == "42");
	CHECK(metrics::format_value(0.1) == "0.1");
	CHECK(metrics::format_value(0.001) == "0.001");
	CHECK(metrics::format_value(1.0 / 0.0) == "+Inf");
	CHECK(metrics::format_value(-1.0 / 0.0) == "-Inf");
}

TEST_CASE("metrics: submission refusals map to the model's result labels") {
	using core::SubmissionRefusal;
	CHECK(core::submission_result_label(SubmissionRefusal::badmessage) == "badmessage");
	CHECK(core::submission_result_label(SubmissionRefusal::badfrom) == "badfrom");
	CHECK(core::submission_result_label(SubmissionRefusal::badheader) == "badheader");
	CHECK(core::submission_result_label(SubmissionRefusal::messagelimiterror) == "messagelimiterror");
	CHECK(core::submission_result_label(SubmissionRefusal::recipientlimiterror) == "recipientlimiterror");
	CHECK(core::submission_result_label(SubmissionRefusal::other) == "");
}

TEST_CASE("metrics http: GET /metrics is 200 with the exposition content type") {
	auto page = [] { return std::string("x 1\n"); };
	CHECK(metrics::http_response("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", page) ==
	      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
	      "Connection: close\r\n\r\nx 1\n");
	CHECK(metrics::http_response("GET /metrics?x=1 HTTP/1.0\n\n", page).substr(0, 15) == "HTTP/1.1 200 OK");
	// HEAD: the same headers, no body.
	CHECK(metrics::http_response("HEAD /metrics HTTP/1.1\r\n\r\n", page) ==
	      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\n"
	      "Connection: close\r\n\r\n");
}

TEST_CASE("metrics http: other paths 404, other methods 405, garbage 400") {
	bool rendered = false;
	auto page = [&] {
		rendered = true;
		return std::string();
	};
	CHECK(metrics::http_response("GET / HTTP/1.1\r\n\r\n", page) ==
	      "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n"
	      "Connection: close\r\n\r\nNot Found\n");
	CHECK(metrics::http_response("POST /metrics HTTP/1.1\r\n\r\n", page) ==
	      "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n"
	      "Allow: GET, HEAD\r\nConnection: close\r\n\r\nMethod Not Allowed\n");
	CHECK(metrics::http_response("EHLO x\r\n\r\n", page).substr(0, 24) == "HTTP/1.1 400 Bad Request");
	CHECK(metrics::http_response("GET /metrics HTTP/2.0\r\n\r\n", page).substr(0, 24) ==
	      "HTTP/1.1 400 Bad Request");
	CHECK(metrics::http_response("GET  /metrics HTTP/1.1\r\n\r\n", page).substr(0, 24) ==
	      "HTTP/1.1 400 Bad Request");
	CHECK_FALSE(rendered);
}

TEST_CASE("metrics http: listen address parsing") {
	CHECK_THROWS(metrics::open_metrics_socket("127.0.0.1"));
	CHECK_THROWS(metrics::open_metrics_socket("127.0.0.1:x"));
	CHECK_THROWS(metrics::open_metrics_socket("127.0.0.1:99999"));
	CHECK_THROWS(metrics::open_metrics_socket("nohost:80"));
	CHECK(metrics::open_metrics_socket("127.0.0.1:0").valid());
}

namespace {

// A responder on a loop of its own, on 127.0.0.1 at a free port, and
// loopback clients of it; the loop turns only when the test says.
struct ResponderFixture {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	int port = 0;
	std::unique_ptr<metrics::HttpResponder> responder;
	ResponderFixture() {
		UniqueFd fd = metrics::open_metrics_socket("127.0.0.1:0");
		sockaddr_in addr{};
		socklen_t len = sizeof addr;
		REQUIRE(getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
		port = ntohs(addr.sin_port);
		responder = std::make_unique<metrics::HttpResponder>(loop, std::move(fd), [] { return "up 1\n"; });
		responder->start();
	}
	~ResponderFixture() {
		responder.reset();
		ev_loop_destroy(loop);
	}
	UniqueFd connect() {
		UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
		sockaddr_in addr{};
		addr.sin_family = AF_INET;
		addr.sin_port = htons(static_cast<uint16_t>(port));
		addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
		return fd;
	}
	// Turns the loop until the responder has shut its write side (EOF), at
	// most ~2 s; returns what came.
	std::string answer(int fd) {
		std::string got;
		char buf[4096];
		for (int round = 0; round < 200; ++round) {
			ev_run(loop, EVRUN_NOWAIT);
			ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (n == 0) return got;
			if (n > 0) got.append(buf, static_cast<size_t>(n));
			if (n < 0) usleep(10000);
		}
		return got + "(no end)";
	}
	void run_until_no_clients() {
		for (int round = 0; round < 200 && responder->clients() > 0; ++round) {
			ev_run(loop, EVRUN_NOWAIT);
			usleep(10000);
		}
	}
};

}  // namespace

TEST_CASE("metrics http: the responder answers one request, then the client goes") {
	ResponderFixture f;
	UniqueFd c = f.connect();
	REQUIRE(send(c.get(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34, MSG_NOSIGNAL) == 34);
	std::string got = f.answer(c.get());
	CHECK(got.starts_with("HTTP/1.1 200 OK\r\n"));
	CHECK(got.ends_with("\r\n\r\nup 1\n"));
	c.reset();  // the client closes: the responder forgets it
	f.run_until_no_clients();
	CHECK(f.responder->clients() == 0);
}

TEST_CASE("metrics http: a request head over 8 KiB gets 431") {
	ResponderFixture f;
	UniqueFd c = f.connect();
	std::string head = "GET /metrics HTTP/1.1\r\nX-Long: " +
	    std::string(metrics::HttpResponder::max_request_head, 'a');
	REQUIRE(send(c.get(), head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size()));
	CHECK(f.answer(c.get()).starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

TEST_CASE("metrics http: past max_clients a connection is answered 503 and closed at accept") {
	ResponderFixture f;
	std::vector<UniqueFd> held;
	for (size_t i = 0; i < metrics::HttpResponder::max_clients; ++i) held.push_back(f.connect());
	for (int round = 0; round < 20; ++round) ev_run(f.loop, EVRUN_NOWAIT);
	REQUIRE(f.responder->clients() == metrics::HttpResponder::max_clients);
	UniqueFd extra = f.connect();
	// RFC 9110 15.6.4: the scraper learns it was turned away.
	CHECK(f.answer(extra.get()) ==
	      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	CHECK(f.responder->clients() == metrics::HttpResponder::max_clients);
}
