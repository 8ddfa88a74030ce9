// The outbound queue through the running daemon (doc/behaviour.md "Smarthost",
// "Durability and safety promises", `ternctl queue`; doc/behaviour.md §12):
// alice submits on the submission port, the queue relays to the SMTP sink
// configured as smarthost, and the tests look at what the sink received, at
// alice's INBOX (DSNs) and at `ternctl queue` while ternd runs.
// tests/blackbox/test_queue.cpp covers the Queue class in-process.
#include "bb.h"

#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

#include "helpers/smtp_sink.h"
#include "helpers/submission_setup.h"
#include "helpers/tls_tools.h"
#include "ternctl_run.h"

namespace {

const std::string alice = "alice@test.example";
const std::string alice_password = "queue secret 7";
const std::string carol = "carol@remote.example";

// Extra config for every queue test: plain AUTH on submission, a pid file
// (ternctl signals ternd through it), the sink as smarthost.
std::string queue_patch(const TernDaemon& d, const SmtpSink& sink, int retry_base_s, int max_attempts,
                        const std::string& domain_dkim = "") {
	std::string patch = open_submission_patch(d,
	                                          plain_smarthost("127.0.0.1", sink.port()) + R"(, "retry_base_s": )" +
	                                              std::to_string(retry_base_s) + R"(, "max_attempts": )" +
	                                              std::to_string(max_attempts));
	if (!domain_dkim.empty())
		patch = merge_patches(patch, R"({"domains": {"test.example": {"dkim": )" + domain_dkim + "}}}");
	return patch;
}

// Writes the config, sets alice's password (before ternd runs), starts ternd.
void start_daemon(TernDaemon& d, const std::string& patch) { start_with_password(d, patch, "alice", alice_password); }

// Connected to the submission port and logged in as alice.
SmtpClient login_alice(TernDaemon& d) { return login_submission(d, alice, alice_password); }

// One message from alice; extra_headers end in CRLF.
std::string alice_message(const std::string& to, const std::string& subject, const std::string& body,
                          const std::string& extra_headers = "") {
	return "From: <" + alice + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\n" + extra_headers + "\r\n" +
	    body;
}

// Submits one message (dot-stuffed by send_mail) and requires the 250.
void submit(SmtpClient& c, const std::vector<std::string>& rcpts, const std::string& message) {
	Transaction t = send_mail(c, alice, rcpts, message);
	INFO(t.step << ": " << t.reply.raw);
	REQUIRE(t.step == "END");
	REQUIRE(t.reply.code == 250);
}

ProgramResult ternctl(const TernDaemon& d, std::vector<std::string> args) {
	args.insert(args.begin(), {"-c", d.config_path()});
	return run_ternctl(args);
}

// One line of `ternctl queue list` (doc/behaviour.md "ternctl": ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR).
struct ListedRecord {
	std::string id, next_attempt, from, to, last_error;
	int attempts = -1;
};

struct QueueListing {
	int exit_code = -1;
	std::string header;
	std::vector<ListedRecord> records;
	std::string text;
};

QueueListing queue_list(const TernDaemon& d) {
	QueueListing listing;
	ProgramResult r = ternctl(d, {"queue", "list"});
	listing.exit_code = r.exit_code;
	listing.text = r.both();
	std::istringstream lines(r.out);
	std::string line;
	std::getline(lines, listing.header);
	while (std::getline(lines, line)) {
		std::istringstream fields(line);
		ListedRecord rec;
		fields >> rec.id >> rec.next_attempt >> rec.attempts >> rec.from >> rec.to;
		std::getline(fields, rec.last_error);
		if (!rec.last_error.empty() && rec.last_error[0] == ' ') rec.last_error.erase(0, 1);
		listing.records.push_back(rec);
	}
	return listing;
}

// Polls `queue list` ≤ timeout_ms until pred holds; returns the last listing.
template <typename Pred>
QueueListing wait_for_listing(const TernDaemon& d, Pred pred, int timeout_ms) {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		QueueListing l = queue_list(d);
		if (pred(l) || now_ms() > deadline) return l;
		usleep(100000);
	}
}

bool queue_empty(const QueueListing& l) { return l.exit_code == 0 && l.records.empty(); }

// The value of a header field (first occurrence, unfolded), "" when absent.
std::string header_value(const std::string& message, const std::string& name) {
	size_t end = message.find("\r\n\r\n");
	std::string header = "\r\n" + unfold(message.substr(0, end == std::string::npos ? message.size() : end + 2));
	std::string lower_header = header, lower_name = "\r\n" + name + ":";
	for (char& c : lower_header) c = char(tolower(static_cast<unsigned char>(c)));
	for (char& c : lower_name) c = char(tolower(static_cast<unsigned char>(c)));
	size_t at = lower_header.find(lower_name);
	if (at == std::string::npos) return "";
	size_t start = at + lower_name.size();
	size_t stop = header.find("\r\n", start);
	std::string value = header.substr(start, stop - start);
	while (!value.empty() && value[0] == ' ') value.erase(0, 1);
	return value;
}

// How often a header field occurs in the header section.
size_t header_count(const std::string& message, const std::string& name) {
	size_t end = message.find("\r\n\r\n");
	std::string header = "\r\n" + message.substr(0, end == std::string::npos ? message.size() : end + 2);
	for (char& c : header) c = char(tolower(static_cast<unsigned char>(c)));
	std::string needle = "\r\n" + name + ":";
	for (char& c : needle) c = char(tolower(static_cast<unsigned char>(c)));
	size_t n = 0;
	for (size_t at = header.find(needle); at != std::string::npos; at = header.find(needle, at + 1)) n++;
	return n;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// dkimpy (python3-dkim): `MESSAGE N NAME TXT [NAME TXT…]` prints True/False
// for each of the first N signatures; dnsfunc serves only the given names.
const char* dkimpy_verify = R"PY(
import sys
import dkim
message = open(sys.argv[1], "rb").read()
count = int(sys.argv[2])
records = {}
for i in range(3, len(sys.argv) - 1, 2):
    records[sys.argv[i].lower().rstrip(".")] = sys.argv[i + 1].encode()
def dnsfunc(qname, timeout=5):
    if isinstance(qname, bytes):
        qname = qname.decode()
    return records.get(qname.lower().rstrip("."))
d = dkim.DKIM(message)
for i in range(count):
    try:
        ok = d.verify(idx=i, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:
        print("error:", e, file=sys.stderr)
        ok = False
    print(ok)
)PY";

// The Message-Id values of the messages the sink recorded.
std::vector<std::string> message_ids(const std::vector<SinkMessage>& messages) {
	std::vector<std::string> ids;
	for (auto& m : messages) ids.push_back(header_value(m.data, "Message-Id"));
	return ids;
}

}  // namespace

TEST_CASE("queue daemon: submitted mail reaches the smarthost with its headers and dot lines intact") {
	SmtpSink sink;
	TernDaemon d(submission_not_started());
	ProgramResult key = run_ternctl({"dkim", "genkey", "ed25519", "--out", d.dir() + "/s1.pem"});
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	start_daemon(
	    d,
	    queue_patch(d, sink, 1, 3,
	                R"({"selectors": {"s1": {"private_key_file": ")" + d.dir() + R"(/s1.pem"}}, "sign": ["s1"]})"));

	// A line with one dot, one with two, and one that is only a dot: the
	// client stuffs each with one more dot, and every hop must remove it again.
	const std::string body = "First line.\r\n.one leading dot\r\n..two leading dots\r\n.\r\nlast line\r\n";
	const std::string message = alice_message(carol, "queue relay", body);
	SmtpClient c = login_alice(d);
	submit(c, {carol}, message);
	c.cmd("QUIT");

	REQUIRE_MESSAGE(sink.wait_for_messages(1, 15000), log_tail(d));
	auto got = sink.messages();
	REQUIRE(got.size() == 1);
	const SinkMessage& m = got[0];
	CHECK(m.mail_from == alice);
	CHECK(m.rcpt_to == std::vector<std::string>{carol});
	INFO(m.data);
	// The original message follows the added header fields unchanged.
	CHECK(ends_with(m.data, message));
	std::string header = unfold(m.data.substr(0, m.data.find("\r\n\r\n") + 2));
	CHECK(header_count(m.data, "Received") == 1);
	CHECK(contains(header_value(m.data, "Received"), " with ESMTPA id "));
	CHECK(contains(header_value(m.data, "Received"), "for <" + carol + ">"));
	CHECK(header_count(m.data, "Message-Id") == 1);
	CHECK(starts_with(header_value(m.data, "Message-Id"), "<"));
	CHECK(contains(header_value(m.data, "Message-Id"), "@"));
	CHECK(header_count(m.data, "Date") == 1);
	CHECK_FALSE(header_value(m.data, "Date").empty());
	CHECK(header_value(m.data, "Authentication-Results") == "mx.test.example; auth=pass smtp.mailfrom=" + alice);
	CHECK(header_count(m.data, "DKIM-Signature") == 1);
	std::string sig = header_value(m.data, "DKIM-Signature");
	CHECK(contains(sig, "d=test.example;"));
	CHECK(contains(sig, "s=s1;"));
	CHECK(contains(sig, "a=ed25519-sha256;"));
	// Mail relayed to a remote host carries no Return-Path (RFC 5321 4.4:
	// the final delivery adds it).
	CHECK(header_count(m.data, "Return-Path") == 0);
	// Delivered: the queue holds nothing any more.
	QueueListing l = wait_for_listing(d, queue_empty, 5000);
	CHECK_MESSAGE(queue_empty(l), l.text);
}

// ternd(8) PRIVILEGES: mail never goes out unsigned because a key went
// missing. The key is the one loaded with the configuration: a broken or
// removed file changes nothing until a reload that loads a good one.
TEST_CASE("queue daemon: the DKIM key loaded with the config signs after its file is broken or removed") {
	SmtpSink sink;
	TernDaemon d(submission_not_started());
	const std::string key_path = d.dir() + "/s1.pem";
	ProgramResult key = run_ternctl({"dkim", "genkey", "ed25519", "--out", key_path});
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	d.dns().add("s1._domainkey.test.example", "TXT", first_line(key.out));
	start_daemon(
	    d,
	    queue_patch(d, sink, 1, 3,
	                R"({"selectors": {"s1": {"private_key_file": ")" + key_path + R"("}}, "sign": ["s1"]})"));
	auto send_and_verify = [&](const std::string& subject, size_t nth) {
		SmtpClient c = login_alice(d);
		submit(c, {carol}, alice_message(carol, subject, "body\r\n"));
		c.cmd("QUIT");
		REQUIRE_MESSAGE(sink.wait_for_messages(nth, 15000), log_tail(d));
		std::string data = sink.messages()[nth - 1].data;
		INFO(subject << "\n" << data);
		REQUIRE(header_count(data, "DKIM-Signature") == 1);
		ProgramResult v = run_ternctl({"--dns", d.dns().address(), "dkim", "verify"}, data);
		CHECK_MESSAGE(v.exit_code == 0, v.both());
		CHECK(starts_with(v.out, "pass d=test.example s=s1 a=ed25519-sha256"));
	};
	send_and_verify("before", 1);

	write_file(key_path, "not a key\n");
	REQUIRE(d.signal(SIGHUP));
	std::string log;
	for (int i = 0; i < 250 && !contains(log, "reload failed"); i++) {
		usleep(20000);
		log = d.log_text();
	}
	REQUIRE_MESSAGE(contains(log, "reload failed, keeping the old configuration"), log);
	send_and_verify("after a refused reload", 2);

	REQUIRE(std::filesystem::remove(key_path));
	send_and_verify("with the file gone", 3);
	CHECK_FALSE(contains(d.log_text(), "dkim sign"));
}

TEST_CASE("queue daemon: outgoing DKIM signatures (ed25519 and RSA) verify with python3-dkim") {
	SmtpSink sink;
	TernDaemon d(submission_not_started());
	ProgramResult ed = run_ternctl({"dkim", "genkey", "ed25519", "--out", d.dir() + "/s1.pem"});
	REQUIRE_MESSAGE(ed.exit_code == 0, ed.both());
	ProgramResult rsa = run_ternctl({"dkim", "genkey", "rsa", "--out", d.dir() + "/r1.pem"}, "", 60000);
	REQUIRE_MESSAGE(rsa.exit_code == 0, rsa.both());
	const std::string ed_txt = first_line(ed.out), rsa_txt = first_line(rsa.out);
	CHECK(starts_with(ed_txt, "v=DKIM1; k=ed25519; p="));
	CHECK(starts_with(rsa_txt, "v=DKIM1; k=rsa; p="));
	start_daemon(d,
	             queue_patch(d, sink, 1, 3,
	                         R"({"selectors": {
			"s1": {"private_key_file": ")" +
	                             d.dir() + R"(/s1.pem"},
			"r1": {"private_key_file": ")" +
	                             d.dir() + R"(/r1.pem", "canonicalization": "simple/simple"}},
		"sign": ["s1", "r1"]})"));

	const std::string message = alice_message(carol, "signed on the way out",
	                                          "Dear Carol,\r\n.a dotted line\r\n\r\nregards, Alice\r\n",
	                                          "Message-Id: <dkim-1@test.example>\r\n");
	SmtpClient c = login_alice(d);
	submit(c, {carol}, message);
	c.cmd("QUIT");
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 15000), log_tail(d));
	std::string data = sink.messages()[0].data;
	INFO(data);
	REQUIRE(header_count(data, "DKIM-Signature") == 2);

	std::string path = d.dir() + "/received.eml";
	write_file(path, data);
	const std::vector<std::string> keys{"s1._domainkey.test.example", ed_txt, "r1._domainkey.test.example",
	                                    rsa_txt};
	std::vector<std::string> argv{debian_python(), "-c", dkimpy_verify, path, "2"};
	argv.insert(argv.end(), keys.begin(), keys.end());
	ProgramResult py = run_program(argv);
	INFO(py.err);
	CHECK(py.exit_code == 0);
	CHECK(py.out == "True\nTrue\n");

	// One changed body byte breaks both signatures.
	std::string tampered = data;
	size_t at = tampered.find("Dear Carol");
	REQUIRE(at != std::string::npos);
	tampered[at] = 'N';
	write_file(path, tampered);
	py = run_program(argv);
	INFO(py.err);
	CHECK(py.exit_code == 0);
	CHECK(py.out == "False\nFalse\n");

	// Without the key records nothing verifies (the dnsfunc really is used).
	write_file(path, data);
	py = run_program({debian_python(), "-c", dkimpy_verify, path, "2"});
	CHECK(py.out == "False\nFalse\n");
}

TEST_CASE("queue daemon: a 4xx from the smarthost is retried and the message arrives") {
	SmtpSink sink;
	SmtpSink::Replies busy;
	busy.rcpt = "451 4.3.0 sink busy, try later";
	sink.set_replies(busy);
	TernDaemon d(submission_not_started());
	start_daemon(d, queue_patch(d, sink, 1, 8));

	const std::string message = alice_message(carol, "retry me", "try, try again\r\n",
	                                          "Message-Id: <retry-1@test.example>\r\n");
	SmtpClient c = login_alice(d);
	submit(c, {carol}, message);
	c.cmd("QUIT");

	// While it waits, `queue list` shows the record with the remote's reply.
	QueueListing l = wait_for_listing(
	    d, [](const QueueListing& x) { return x.records.size() == 1 && contains(x.records[0].last_error, "451"); },
	    10000);
	INFO(l.text << "\n" << log_tail(d));
	CHECK(l.exit_code == 0);
	CHECK(l.header == "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR");
	REQUIRE(l.records.size() == 1);
	const ListedRecord& rec = l.records[0];
	CHECK(rec.id.find_first_not_of("0123456789") == std::string::npos);
	CHECK(rec.next_attempt.size() == 20);  // 2024-01-02T03:04:05Z
	CHECK(ends_with(rec.next_attempt, "Z"));
	CHECK(rec.attempts >= 1);
	CHECK(rec.from == "<" + alice + ">");
	CHECK(rec.to == "<" + carol + ">");
	CHECK(contains(rec.last_error, "451 4.3.0 sink busy, try later"));
	CHECK(sink.messages().empty());

	ProgramResult show = ternctl(d, {"queue", "show", rec.id});
	CHECK(show.exit_code == 0);
	CHECK(contains(show.out, "id: " + rec.id + "\n"));
	CHECK(contains(show.out, "to: <" + carol + ">\n"));
	CHECK(contains(show.out, "message_id: retry-1@test.example\n"));
	CHECK(contains(show.out, "451 4.3.0 sink busy, try later"));

	// The sink recovers: the next attempt (≤ 1 s, 2 s, 4 s … later) delivers.
	sink.set_replies(SmtpSink::Replies{});
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 20000), log_tail(d));
	QueueListing after = wait_for_listing(d, queue_empty, 5000);
	CHECK_MESSAGE(queue_empty(after), after.text);
	auto got = sink.messages();
	REQUIRE(got.size() == 1);
	CHECK(got[0].rcpt_to == std::vector<std::string>{carol});
	CHECK(ends_with(got[0].data, message));
	CHECK(sink.connections() >= 2);
	// No DSN for a delivery that succeeded in the end.
	CHECK(maildir_files(d.maildir("alice")).empty());
}

TEST_CASE("queue daemon: a 5xx from the smarthost puts a failed DSN into the sender's INBOX") {
	SmtpSink sink;
	SmtpSink::Replies refuse;
	refuse.rcpt = "550 5.1.1 no mailbox by that name";
	sink.set_replies(refuse);
	TernDaemon d(submission_not_started());
	start_daemon(d, queue_patch(d, sink, 1, 8));

	SmtpClient c = login_alice(d);
	submit(c, {carol},
	       alice_message(carol, "doomed", "this will bounce\r\n", "Message-Id: <bounce-1@test.example>\r\n"));
	c.cmd("QUIT");

	auto files = wait_for_maildir(d.maildir("alice"), 1, 15000);
	INFO(log_tail(d));
	REQUIRE(files.size() == 1);
	std::string dsn = read_file(files[0]);
	INFO(dsn);
	CHECK(contains(header_value(dsn, "Subject"), "mail delivery failed"));
	CHECK(contains(dsn, carol));
	CHECK(contains(dsn, "550 5.1.1 no mailbox by that name"));
	// The original's header section comes back in the DSN's third part.
	CHECK(contains(dsn, "<bounce-1@test.example>"));
	// Permanent: one attempt, nothing delivered, nothing left in the queue.
	CHECK(sink.messages().empty());
	QueueListing l = wait_for_listing(d, queue_empty, 5000);
	CHECK_MESSAGE(queue_empty(l), l.text);
	usleep(1500000);  // past the retry base: no second attempt, no second DSN
	CHECK(sink.connections() == 1);
	CHECK(maildir_files(d.maildir("alice")).size() == 1);
}

TEST_CASE("queue daemon: kill -9 during deliveries loses nothing and repeats only the one in flight") {
	SmtpSink sink;
	SmtpSink::Replies slow;
	slow.data_end_delay_ms = 1500;
	sink.set_replies(slow);
	TernDaemon d(submission_not_started());
	start_daemon(d, queue_patch(d, sink, 1, 8));

	const int count = 5;
	std::vector<std::string> ids;
	SmtpClient c = login_alice(d);
	for (int i = 0; i < count; i++) {
		ids.push_back("<crash-" + std::to_string(i) + "@test.example>");
		submit(c, {carol},
		       alice_message(carol, "crash " + std::to_string(i), "message " + std::to_string(i) + "\r\n",
		                     "Message-Id: " + ids.back() + "\r\n"));
	}
	c.cmd("QUIT");

	// The queue delivers to one domain at a time: wait until two messages
	// got their 250 and a third one's data is waiting for its reply, then
	// kill ternd well inside that wait (the earlier 250s are ≥ 0.5 s old, so
	// their removal from the queue is committed).
	auto acked = [&sink] {
		std::set<std::string> out;
		for (auto& m : sink.messages())
			if (m.acked_ms != 0) out.insert(header_value(m.data, "Message-Id"));
		return out;
	};
	int64_t deadline = now_ms() + 20000;
	while (!(acked().size() >= 2 && sink.data_received() >= 3) && now_ms() < deadline) usleep(20000);
	REQUIRE_MESSAGE(acked().size() >= 2, log_tail(d));
	REQUIRE(sink.data_received() >= 3);
	usleep(500000);
	std::set<std::string> acked_before_kill = acked();
	int received_before_kill = sink.data_received();
	d.kill9();
	INFO("acked before the kill: " << acked_before_kill.size() << ", data received: " << received_before_kill);
	// One delivery was in flight (its data read, its 250 not yet sent).
	CHECK(int(acked_before_kill.size()) == received_before_kill - 1);
	CHECK(int(acked_before_kill.size()) < count);

	// A fast sink from now on; the same data dir, config and ports.
	sink.set_replies(SmtpSink::Replies{});
	REQUIRE_MESSAGE(d.start(), d.error());

	QueueListing l = wait_for_listing(d, queue_empty, 30000);
	INFO(l.text << "\n" << log_tail(d));
	CHECK(queue_empty(l));
	usleep(300000);  // let the sink finish recording the last session

	std::map<std::string, int> arrivals;
	for (auto& id : message_ids(sink.messages())) arrivals[id]++;
	for (auto& id : ids) {
		INFO(id);
		CHECK(arrivals[id] >= 1);
		if (acked_before_kill.count(id)) {
			// Acknowledged before the kill: never sent again.
			CHECK(arrivals[id] == 1);
		} else {
			CHECK(arrivals[id] <= 2);
		}
	}
	int duplicated = 0;
	for (auto& [id, n] : arrivals)
		if (n > 1) duplicated++;
	// Only the delivery in flight at the kill may be repeated.
	CHECK(duplicated <= 1);
	CHECK(arrivals.size() == size_t(count));
	// Nothing bounced.
	CHECK(maildir_files(d.maildir("alice")).empty());
}

TEST_CASE("queue daemon: ternctl queue kick delivers a waiting record now, drop removes one") {
	SmtpSink sink;
	SmtpSink::Replies busy;
	busy.rcpt = "452 4.2.2 over quota for now";
	sink.set_replies(busy);
	TernDaemon d(submission_not_started());
	start_daemon(d, queue_patch(d, sink, 3600, 8));

	SmtpClient c = login_alice(d);
	submit(c, {carol}, alice_message(carol, "kick me", "kicked\r\n", "Message-Id: <kick-1@test.example>\r\n"));
	submit(c, {carol}, alice_message(carol, "drop me", "dropped\r\n", "Message-Id: <drop-1@test.example>\r\n"));
	c.cmd("QUIT");

	// Both had their first attempt and wait an hour now.
	QueueListing l = wait_for_listing(
	    d,
	    [](const QueueListing& x) {
		    return x.records.size() == 2 && x.records[0].attempts == 1 && x.records[1].attempts == 1 &&
			contains(x.records[0].last_error, "452") && contains(x.records[1].last_error, "452");
	    },
	    10000);
	INFO(l.text << "\n" << log_tail(d));
	REQUIRE(l.records.size() == 2);
	REQUIRE(l.records[0].attempts == 1);
	REQUIRE(l.records[1].attempts == 1);
	// Queue records keep the Message-Id without its angle brackets (the model).
	std::string kick_id, drop_id;
	for (auto& rec : l.records) {
		ProgramResult show = ternctl(d, {"queue", "show", rec.id});
		REQUIRE(show.exit_code == 0);
		if (contains(show.out, "message_id: kick-1@test.example\n"))
			kick_id = rec.id;
		else if (contains(show.out, "message_id: drop-1@test.example\n"))
			drop_id = rec.id;
	}
	REQUIRE(!kick_id.empty());
	REQUIRE(!drop_id.empty());

	sink.set_replies(SmtpSink::Replies{});
	int connections_before = sink.connections();
	usleep(1500000);
	// Nothing moves by itself within the hour.
	CHECK(sink.connections() == connections_before);

	ProgramResult kick = ternctl(d, {"queue", "kick", kick_id});
	CHECK(kick.exit_code == 0);
	CHECK(kick.out == "kicked 1\n");
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 10000), log_tail(d));
	CHECK(message_ids(sink.messages()) == std::vector<std::string>{"<kick-1@test.example>"});

	ProgramResult drop = ternctl(d, {"queue", "drop", drop_id});
	CHECK(drop.exit_code == 0);
	CHECK(drop.out == "dropped " + drop_id + "\n");
	QueueListing after = wait_for_listing(d, queue_empty, 5000);
	CHECK_MESSAGE(queue_empty(after), after.text);
	ProgramResult show_dropped = ternctl(d, {"queue", "show", drop_id});
	CHECK(show_dropped.exit_code == 1);
	CHECK(show_dropped.out == "no such message\n");

	// A kick of everything afterwards finds nothing to send: the dropped
	// message never arrives.
	ProgramResult kick_all = ternctl(d, {"queue", "kick"});
	CHECK(kick_all.exit_code == 0);
	CHECK(kick_all.out == "kicked 0\n");
	usleep(1500000);
	CHECK(message_ids(sink.messages()) == std::vector<std::string>{"<kick-1@test.example>"});

	for (const char* cmd : {"show", "kick", "drop"}) {
		INFO(cmd);
		ProgramResult r = ternctl(d, {"queue", cmd, "987654321"});
		CHECK(r.exit_code == 1);
		CHECK(r.out == "no such message\n");
		CHECK(r.err.empty());
	}
	REQUIRE_RUNNING(d);
}

namespace {

// alice submits one message through the submission port on `listen_ip`;
// returns the first message the sink (the smarthost) got.
SinkMessage relay_from_listener(const std::string& ips_json, const std::string& listen_ip) {
	SmtpSink sink;
	TernDaemon d(submission_not_started());
	start_daemon(
	    d, merge_patches(queue_patch(d, sink, 1, 3), R"({"listeners": {"test": {"ips": )" + ips_json + "}}}"));
	SmtpClient c;
	REQUIRE(c.connect(listen_ip, d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	Reply r = c.cmd("AUTH PLAIN " + plain_response(alice, alice_password));
	REQUIRE_MESSAGE(r.code == 235, r.raw);
	submit(c, {carol}, alice_message(carol, "source address", "hello\r\n"));
	c.cmd("QUIT");
	REQUIRE_MESSAGE(sink.wait_for_messages(1, 15000), log_tail(d));
	return sink.messages().front();
}

}  // namespace

// doc/behaviour.md §12 "The address mail leaves from": the one IPv4
// address the SMTP listeners name is the source of outgoing connections
// (the one an operator publishes in SPF); 127.0.0.2 is on the loopback
// interface, and the kernel's own choice for 127.0.0.1 would be 127.0.0.1.
TEST_CASE("queue daemon: mail leaves from the address of the one IPv4 listener") {
	SinkMessage m = relay_from_listener(R"(["127.0.0.2"])", "127.0.0.2");
	CHECK(m.rcpt_to == std::vector<std::string>{carol});
	CHECK(m.peer_ip == "127.0.0.2");
}

TEST_CASE("queue daemon: with two IPv4 listener addresses the kernel chooses the source") {
	SinkMessage m = relay_from_listener(R"(["127.0.0.2", "127.0.0.1"])", "127.0.0.2");
	CHECK(m.rcpt_to == std::vector<std::string>{carol});
	CHECK(m.peer_ip == "127.0.0.1");
}
