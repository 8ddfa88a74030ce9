// Trusting the outbound queue with acknowledged mail: the queue files alone
// are enough to deliver it again when the queue database is gone
// (`ternctl queue rebuild`, the rebuild at start), and a crash repeats at
// most the messages whose delivery was in flight at that instant.
#include "bb.h"

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string sender = "alice@test.example";
const std::string sender_password = "trust the queue 9";

// Submission with plain AUTH, a pid file for ternctl, the sink as
// smarthost, and daily limits far above what the tests send.
std::string trust_patch(const TernDaemon& d, const SmtpSink& sink, int retry_base_s, int max_concurrent = 4) {
	return R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"pid_file": ")" +
	    d.dir() + R"(/ternd.pid",
		"accounts": {"alice": {"max_outgoing_messages_per_day": 1000000,
		                       "max_first_time_recipients_per_day": 1000000}},
		"queue": {"smarthost": "127.0.0.1:)" +
	    std::to_string(sink.port()) + R"(", "smarthost_tls": "none",
		          "retry_base_s": )" +
	    std::to_string(retry_base_s) + R"(, "max_attempts": 20,
		          "max_concurrent": )" +
	    std::to_string(max_concurrent) + "}}";
}

DaemonOptions with_submission() {
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	return o;
}

void configure(TernDaemon& d, const std::string& patch) {
	d.write_config(patch);
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", sender_password, &out), out);
}

ProgramResult ternctl_cmd(const TernDaemon& d, std::vector<std::string> args) {
	args.insert(args.begin(), {"-c", d.config_path()});
	return run_ternctl(args);
}

// The recipient addresses listed by `ternctl queue list` (fifth column).
std::multiset<std::string> listed_recipients(const TernDaemon& d, int* exit_code = nullptr) {
	ProgramResult r = ternctl_cmd(d, {"queue", "list"});
	if (exit_code) *exit_code = r.exit_code;
	std::multiset<std::string> out;
	std::istringstream lines(r.out);
	std::string line, id, next, attempts, from, to;
	std::getline(lines, line);  // header
	while (std::getline(lines, line)) {
		std::istringstream fields(line);
		fields >> id >> next >> attempts >> from >> to;
		out.insert(to.size() > 2 ? to.substr(1, to.size() - 2) : to);  // without <>
	}
	return out;
}

// The Message-Id field of a message the sink recorded.
std::string message_id_of(const std::string& data) {
	size_t header_end = data.find("\r\n\r\n");
	std::string header = "\r\n" + data.substr(0, header_end);
	size_t at = header.find("\r\nMessage-Id: ");
	if (at == std::string::npos) return "";
	at += 14;
	return header.substr(at, header.find("\r\n", at) - at);
}

std::string body_of(const std::string& data) {
	size_t header_end = data.find("\r\n\r\n");
	return header_end == std::string::npos ? "" : data.substr(header_end + 4);
}

// A body whose end tells whether it arrived whole: numbered lines (one
// starting with a dot, for the transparency rule) and a last line naming
// the message again.
std::string numbered_body(const std::string& tag) {
	std::string body;
	for (int i = 0; i < 40; i++)
		body += (i == 7 ? "." : "") + std::string("line ") + std::to_string(i) + " of " + tag + "\r\n";
	return body + "end of " + tag + "\r\n";
}

std::string message_text(const std::string& to, const std::string& tag) {
	return "From: <" + sender + ">\r\nTo: <" + to + ">\r\nSubject: " + tag + "\r\nMessage-Id: <" + tag +
	    "@test.example>\r\n\r\n" + numbered_body(tag);
}

// Logs in on the submission port; false when the daemon is not there.
bool login(SmtpClient& c, const TernDaemon& d) {
	if (!c.connect("127.0.0.1", d.submission_port())) return false;
	if (!c.greet_and_ehlo("client.test.example")) return false;
	return c.cmd("AUTH PLAIN " + plain_response(sender, sender_password)).code == 235;
}

// Submits the messages tagged `tags` (one recipient each) and requires
// every 250.
void submit_all(const TernDaemon& d, const std::vector<std::pair<std::string, std::string>>& to_and_tag) {
	SmtpClient c;
	REQUIRE(login(c, d));
	for (auto& [to, tag] : to_and_tag) {
		Transaction t = send_mail(c, sender, {to}, message_text(to, tag));
		INFO(tag << " " << t.step << ": " << t.reply.raw);
		REQUIRE(t.step == "END");
		REQUIRE(t.reply.code == 250);
	}
	c.cmd("QUIT");
}

// Polls `pred` every 100 ms for at most timeout_ms.
template <typename Pred>
bool eventually(Pred pred, int timeout_ms) {
	int64_t deadline = now_ms() + timeout_ms;
	while (!pred()) {
		if (now_ms() > deadline) return false;
		usleep(100000);
	}
	return true;
}

std::vector<std::pair<std::string, std::string>> five_messages() {
	std::vector<std::pair<std::string, std::string>> out;
	for (int i = 0; i < 5; i++)
		out.push_back({"rcpt" + std::to_string(i) + "@remote" + std::to_string(i % 2) + ".example",
		               "lost-db-" + std::to_string(i)});
	return out;
}

// ternd started with the first of five_messages() waiting in its queue:
// the sink deferred it, and the next attempt is an hour away.
void start_with_one_deferred(TernDaemon& d, SmtpSink& sink) {
	configure(d, trust_patch(d, sink, 3600));
	SmtpSink::Replies later;
	later.rcpt = "451 4.3.0 try again later";
	sink.set_replies(later);
	REQUIRE_MESSAGE(d.start(), d.error());
	submit_all(d, {five_messages()[0]});
	REQUIRE_MESSAGE(eventually([&] { return contains(d.log_text(), "delivery deferred"); }, 10000), log_tail(d));
}

// Five messages waiting in the queue (the sink defers them), then ternd
// stopped and queue.db deleted.
void queue_five_then_lose_the_database(TernDaemon& d, SmtpSink& sink) {
	SmtpSink::Replies later;
	later.rcpt = "451 4.3.0 try again later";
	sink.set_replies(later);
	REQUIRE_MESSAGE(d.start(), d.error());
	submit_all(d, five_messages());
	// Each had its first attempt, deferred for an hour.
	REQUIRE_MESSAGE(eventually(
			    [&] {
				    return d.log_text().find("delivery deferred") != std::string::npos &&
					listed_recipients(d).size() == 5;
			    },
			    10000),
	                log_tail(d));
	REQUIRE(d.stop() == 0);
	std::string db = d.data_dir() + "/db/queue.db";
	REQUIRE(file_exists(db));
	REQUIRE(::unlink(db.c_str()) == 0);
}

std::multiset<std::string> expected_recipients() {
	std::multiset<std::string> out;
	for (auto& [to, tag] : five_messages()) out.insert(to);
	return out;
}

// All five arrive, each once and whole.
void check_five_arrived(const TernDaemon& d, const SmtpSink& sink) {
	REQUIRE_MESSAGE(sink.wait_for_messages(5, 15000), log_tail(d));
	usleep(300000);
	std::map<std::string, int> arrivals;
	for (auto& m : sink.messages()) {
		std::string id = message_id_of(m.data);
		arrivals[id]++;
		std::string tag = id.substr(1, id.find('@') - 1);
		CHECK(body_of(m.data) == numbered_body(tag));
		// The queue file's envelope header stays home.
		CHECK(m.data.find("tern-queue") == std::string::npos);
		CHECK(m.data.find("rcpt-state") == std::string::npos);
		CHECK(starts_with(m.data, "Received: "));
	}
	for (auto& [to, tag] : five_messages()) {
		INFO(tag);
		CHECK(arrivals["<" + tag + "@test.example>"] == 1);
	}
	CHECK(arrivals.size() == 5);
}

}  // namespace

TEST_CASE("trust queue: a deleted queue.db is rebuilt from the queue files at start, nothing is lost") {
	SmtpSink sink;
	TernDaemon d(with_submission());
	configure(d, trust_patch(d, sink, 3600));
	queue_five_then_lose_the_database(d, sink);

	// Still deferred: the rebuilt records show in the listing before any
	// delivery succeeds.
	REQUIRE_MESSAGE(d.start(), d.error());
	std::multiset<std::string> listed;
	bool shown = eventually([&] { return (listed = listed_recipients(d)) == expected_recipients(); }, 10000);
	INFO(log_tail(d));
	REQUIRE(shown);
	CHECK(contains(d.log_text(), "rebuilt"));
	CHECK(sink.messages().empty());

	sink.set_replies(SmtpSink::Replies{});
	ProgramResult kick = ternctl_cmd(d, {"queue", "kick"});
	CHECK(kick.exit_code == 0);
	check_five_arrived(d, sink);
	CHECK(eventually([&] { return listed_recipients(d).empty(); }, 5000));
	// Delivered and finished: the files are gone, nothing is rebuilt again.
	REQUIRE(d.stop() == 0);
	CHECK(maildir_files(d.data_dir() + "/queue", "").empty());
	REQUIRE(d.start());
	usleep(1000000);
	CHECK(listed_recipients(d).empty());
	CHECK(sink.messages().size() == 5);
}

TEST_CASE("trust queue: ternctl queue rebuild restores the records while ternd is stopped") {
	SmtpSink sink;
	TernDaemon d(with_submission());
	configure(d, trust_patch(d, sink, 3600));
	queue_five_then_lose_the_database(d, sink);

	int code = -1;
	CHECK(listed_recipients(d, &code).empty());
	CHECK(code == 0);
	ProgramResult rebuild = ternctl_cmd(d, {"queue", "rebuild"});
	INFO(rebuild.both());
	CHECK(rebuild.exit_code == 0);
	CHECK(contains(rebuild.out, "rebuilt 5 "));
	CHECK(listed_recipients(d) == expected_recipients());
	// A second rebuild finds every file referenced: nothing doubles.
	ProgramResult again = ternctl_cmd(d, {"queue", "rebuild"});
	CHECK(again.exit_code == 0);
	CHECK(contains(again.out, "rebuilt 0 "));
	CHECK(listed_recipients(d).size() == 5);

	sink.set_replies(SmtpSink::Replies{});
	REQUIRE_MESSAGE(d.start(), d.error());
	ProgramResult kick = ternctl_cmd(d, {"queue", "kick"});
	CHECK(kick.exit_code == 0);
	check_five_arrived(d, sink);
}

TEST_CASE("trust queue: SIGKILL loop under load loses nothing and duplicates at most what was in flight") {
	SmtpSink sink;
	sink.set_concurrent(true);
	// A remote slow to answer QUIT: the result of the transaction is known
	// long before, so it must be recorded before the QUIT.
	SmtpSink::Replies slow_quit;
	slow_quit.quit_delay_ms = 400;
	sink.set_replies(slow_quit);
	TernDaemon d(with_submission());
	configure(d, trust_patch(d, sink, 1, 8));
	REQUIRE_MESSAGE(d.start(), d.error());

	// The submitting client: unique Message-Ids, four destination domains
	// (parallel deliveries), a new connection whenever ternd went away.
	std::mutex mutex;
	std::set<std::string> acknowledged;
	std::atomic<bool> stop{false};
	std::atomic<int> attempts{0};
	std::thread client([&] {
		int n = 0;
		while (!stop) {
			SmtpClient c;
			if (!login(c, d)) {
				usleep(50000);
				continue;
			}
			while (!stop) {
				std::string tag = "k" + std::to_string(n);
				std::string to = "user" + std::to_string(n % 4) + "@dest" + std::to_string(n % 4) +
				    ".example";
				n++;
				attempts++;
				Transaction t = send_mail(c, sender, {to}, message_text(to, tag));
				if (t.step == "END" && t.reply.code == 250) {
					std::lock_guard<std::mutex> lock(mutex);
					acknowledged.insert("<" + tag + "@test.example>");
				} else if (t.reply.code <= 0) {
					break;  // the daemon is gone: reconnect
				}
				// About what the slow-quitting sink takes in, so the queue
				// stays busy without growing past what drains in time.
				usleep(150000);
			}
		}
	});

	const int kills = 8;
	for (int k = 0; k < kills; k++) {
		usleep(useconds_t(1200000 + (k % 3) * 400000));
		d.kill9();
		usleep(100000);
		REQUIRE_MESSAGE(d.start(), d.error());
	}
	usleep(1000000);
	stop = true;
	client.join();

	// Let the queue drain.
	bool drained = eventually([&] { return listed_recipients(d).empty(); }, 30000);
	INFO(log_tail(d));
	CHECK(drained);
	usleep(800000);  // the sink records the last sessions

	std::map<std::string, int> arrivals;
	int partial = 0;
	for (auto& m : sink.messages()) {
		std::string id = message_id_of(m.data);
		arrivals[id]++;
		std::string tag = id.size() > 2 ? id.substr(1, id.find('@') - 1) : "";
		if (body_of(m.data) != numbered_body(tag)) partial++;
	}
	int lost = 0, duplicated = 0;
	for (auto& id : acknowledged)
		if (arrivals[id] == 0) lost++;
	for (auto& [id, n] : arrivals)
		if (n > 1) duplicated += n - 1;
	MESSAGE("kills=" << kills << " acknowledged=" << acknowledged.size() << " lost=" << lost
	                 << " duplicated=" << duplicated << " partial=" << partial);
	CHECK(acknowledged.size() > size_t(kills) * 5);
	CHECK(lost == 0);
	CHECK(partial == 0);
	CHECK(duplicated <= kills);
	REQUIRE_RUNNING(d);
}

TEST_CASE("trust queue: ternctl queue rebuild goes through a running ternd, which takes a queue file in") {
	// A queue file from another ternd's queue: the file alone is enough.
	SmtpSink sink;
	TernDaemon first(with_submission());
	start_with_one_deferred(first, sink);
	REQUIRE(first.stop() == 0);
	std::vector<std::string> files = maildir_files(first.data_dir() + "/queue", "");
	REQUIRE(files.size() == 1);

	TernDaemon second(with_submission());
	configure(second, trust_patch(second, sink, 3600));
	REQUIRE_MESSAGE(second.start(), second.error());
	CHECK(listed_recipients(second).empty());
	std::string name = files[0].substr(files[0].rfind('/') + 1);
	::mkdir((second.data_dir() + "/queue").c_str(), 0700);  // made by the first enqueue otherwise
	write_file(second.data_dir() + "/queue/" + name, read_file(files[0]));

	sink.set_replies(SmtpSink::Replies{});
	ProgramResult rebuild = ternctl_cmd(second, {"queue", "rebuild"});
	INFO(rebuild.both());
	CHECK(rebuild.exit_code == 0);
	// Through the control socket: ternd rebuilds on a worker and reports.
	CHECK(contains(rebuild.out, "rebuilt 1 records"));
	CHECK(contains(second.log_text(), "control request"));
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 10000), log_tail(second));
	CHECK(contains(second.log_text(), "rebuilt record from its file"));
	CHECK(message_id_of(sink.messages()[0].data) == "<lost-db-0@test.example>");
	CHECK(body_of(sink.messages()[0].data) == numbered_body("lost-db-0"));
	CHECK(eventually([&] { return listed_recipients(second).empty(); }, 5000));
	REQUIRE_RUNNING(second);
}

TEST_CASE("trust queue: without the control socket, ternctl queue kick changes the database and signals ternd") {
	// The control socket's file removed (ternd still listens on it, but
	// ternctl cannot find it): ternctl opens the database itself, then
	// sends SIGUSR2 to the ternd its pid_file names, which reads the queue
	// again and delivers at once.
	SmtpSink sink;
	TernDaemon d(with_submission());
	start_with_one_deferred(d, sink);
	size_t sessions_before = sink.messages().size();

	sink.set_replies(SmtpSink::Replies{});
	REQUIRE(::unlink((d.data_dir() + "/control.sock").c_str()) == 0);
	ProgramResult kick = ternctl_cmd(d, {"queue", "kick"});
	INFO(kick.both());
	CHECK(kick.exit_code == 0);
	CHECK(kick.out == "kicked 1\n");
	REQUIRE_MESSAGE(sink.wait_for_messages(sessions_before + 1, 10000), log_tail(d));
	CHECK(message_id_of(sink.messages().back().data) == "<lost-db-0@test.example>");
	REQUIRE_RUNNING(d);
}
