// sendmail.tern: the sendmail(1) interface of tern for cron, PHP mail()
// and scripts (man/sendmail.tern.8). It reads a message from stdin and
// hands it to the running ternd over <data_dir>/public/sendmail.sock;
// ternd applies the submission rules and queues it before answering. When
// the hand-over fails, the message is not lost silently: the exit status
// (sysexits.h) and a line on stderr say so, and the caller keeps it.
// Invoked as mailq (or with -bp) it prints the queue; with -bs it speaks
// SMTP on stdin and stdout and hands over each message of the session.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "message/sendmail.h"
#include "message/sendmail_smtp.h"
#include "net/unix_socket.h"

using namespace tern;
namespace sm = tern::message::sendmail;

namespace {

const char* usage_text =
    "usage: sendmail.tern [-C FILE|DIR] [-t] [-i] [-f SENDER] [-F NAME] [--] [RECIPIENT...]\n"
    "       sendmail.tern -bp [-C FILE]    (or: mailq) list the queue\n"
    "       sendmail.tern -bs [-C FILE]    SMTP on standard input and output\n";

// RFC 5321 4.5.3.2.7: how long the -bs server waits for the next command
// or the next piece of data.
constexpr int stdin_timeout_ms = 300 * 1000;

int fail(int status, const std::string& text) {
	std::cerr << "sendmail.tern: " << text << "\n";
	return status;
}

class Connection {
public:
	// Connects to ternd; on failure returns the reason for stderr.
	std::optional<std::string> connect_to(const std::string& path) {
		fd_ = net::connect_unix(path);
		if (fd_) return std::nullopt;
		int e = errno;
		if (e == ENAMETOOLONG) return "socket path too long: " + path;
		if (e == ENOENT || e == ECONNREFUSED)
			return "cannot reach ternd at " + path + ": " + std::strerror(e) + " (is ternd running?)";
		if (e == EACCES)
			return "cannot reach ternd at " + path + ": " + std::strerror(e) +
			    " (the data directory must be searchable by every user, mode 0711 or more)";
		return "cannot reach ternd at " + path + ": " + std::strerror(e);
	}
	bool send_all(std::string_view data) { return net::send_all(fd_.get(), data); }
	// The next line without "\n"; nullopt at EOF or on an error.
	std::optional<std::string> read_line() {
		for (;;) {
			size_t nl = buf_.find('\n');
			if (nl != std::string::npos) {
				std::string line = buf_.substr(0, nl);
				buf_.erase(0, nl + 1);
				return line;
			}
			if (!fill()) return std::nullopt;
		}
	}
	std::optional<std::string> read_bytes(uint64_t n) {
		while (buf_.size() < n)
			if (!fill()) return std::nullopt;
		std::string out = buf_.substr(0, n);
		buf_.erase(0, n);
		return out;
	}

private:
	bool fill() {
		char tmp[16384];
		for (;;) {
			ssize_t n = read(fd_.get(), tmp, sizeof(tmp));
			if (n < 0 && errno == EINTR) continue;
			if (n <= 0) return false;
			buf_.append(tmp, static_cast<size_t>(n));
			return true;
		}
	}
	UniqueFd fd_;
	std::string buf_;
};

// What became of one request to ternd.
struct HandOver {
	int exit_status = sm::ex_ok;
	sm::Status final;   // ternd's final status; code 0 when none came
	std::string error;  // for stderr when it failed, else ""
};

HandOver failed(int status, std::string error) {
	HandOver h;
	h.exit_status = status;
	h.error = std::move(error);
	return h;
}

// What a request that failed did not do, for its error line.
std::string not_done(const sm::Request& request) {
	return request.list_queue ? "; the queue was not listed" : "; the message was not sent";
}

// Reads ternd's answer up to the final status; rcpt failures go to stderr,
// a queue listing to stdout.
HandOver read_answer(Connection& conn, const sm::Request& request) {
	for (;;) {
		auto line = conn.read_line();
		if (!line)
			return failed(sm::ex_tempfail,
			              "ternd closed the connection without an answer" + not_done(request));
		sm::ResponseLine r = sm::parse_response_line(*line);
		switch (r.kind) {
		case sm::ResponseLine::Kind::rcpt:
			if (r.status.code >= 300)
				std::cerr << "sendmail.tern: " << r.status.recipient << ": " << r.status.code << " "
					  << r.status.enhanced << " " << r.status.text << "\n";
			break;
		case sm::ResponseLine::Kind::queue: {
			auto listing = conn.read_bytes(r.size);
			if (!listing)
				return failed(sm::ex_tempfail, "ternd closed the connection during the queue listing");
			std::cout << *listing;
			break;
		}
		case sm::ResponseLine::Kind::done: {
			HandOver h;
			h.final = r.status;
			h.exit_status = sm::exit_status(r.status);
			if (h.exit_status != sm::ex_ok)
				h.error = "message not sent: " + std::to_string(r.status.code) + " " +
				    r.status.enhanced + " " + r.status.text;
			return h;
		}
		case sm::ResponseLine::Kind::invalid:
			return failed(sm::ex_software, "unexpected answer from ternd: " + *line);
		}
	}
}

// Sends one request (a message, or mailq) to ternd and reads its answer.
HandOver hand_over(const std::string& socket_path, const sm::Request& request, std::string_view message) {
	auto head = sm::encode_request(request);
	if (!head) return failed(sm::ex_usage, "control characters in an address or the full name");
	Connection conn;
	if (auto error = conn.connect_to(socket_path)) return failed(sm::ex_tempfail, *error + not_done(request));
	// ternd may answer early (a refusal) and close: read its answer then.
	conn.send_all(*head) && conn.send_all(message);
	return read_answer(conn, request);
}

// A message read from stdin or an SMTP transaction (CRLF line ends) made
// ready for ternd, as man/sendmail.tern.8 says: a header section, bare
// names qualified, Bcc fields removed (and, with `collect`, To, Cc and Bcc
// gathered as recipients).
sm::HeaderRecipients prepare(std::string message, const config::Config& cfg, bool collect) {
	message = sm::ensure_header_section(std::move(message));
	message = sm::qualify_header_addresses(message, cfg.hostname);
	return sm::take_header_recipients(message, collect);
}

// The answer to the end of DATA in -bs mode for one transaction.
std::string submit_transaction(sm::StdioSmtp& smtp, sm::Transaction tx, const sm::Args& a, const config::Config& cfg,
                               const std::string& socket_path) {
	sm::HeaderRecipients h = prepare(std::move(tx.message), cfg, false);
	sm::Status status;
	if (!h.error.empty()) {
		status = {550, "5.6.0", h.error, ""};
		return smtp.delivered(status);
	}
	sm::Request request;
	request.sender = tx.sender;
	request.full_name = a.full_name;
	request.recipients = std::move(tx.recipients);
	request.data_size = h.message.size();
	HandOver result = hand_over(socket_path, request, h.message);
	if (result.final.code != 0) return smtp.delivered(result.final);
	// Not handed over: the client keeps the message and may try again.
	std::cerr << "sendmail.tern: " << result.error << "\n";
	status = {451, "4.3.0", result.error, ""};
	return smtp.delivered(status);
}

bool write_stdout(const std::string& bytes) {
	std::string_view rest = bytes;
	while (!rest.empty()) {
		ssize_t n = write(STDOUT_FILENO, rest.data(), rest.size());
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return false;
		rest.remove_prefix(static_cast<size_t>(n));
	}
	return true;
}

// Reads standard input to its end; 0, or the errno of a read that failed
// (a closed descriptor, a directory): then nothing may be sent, since the
// message would be cut short or empty.
int read_all_stdin(std::string& input) {
	char buf[16384];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) return errno;
		if (n == 0) return 0;
		input.append(buf, static_cast<size_t>(n));
	}
}

// Reads what stdin has; false at its end, on an error (then `read_errno`)
// or after the timeout (then `timed_out`).
bool read_stdin(std::string& input, bool& timed_out, int& read_errno) {
	pollfd pfd{STDIN_FILENO, POLLIN, 0};
	int ready = 0;
	do ready = poll(&pfd, 1, stdin_timeout_ms);
	while (ready < 0 && errno == EINTR);
	if (ready == 0) timed_out = true;
	if (ready < 0) read_errno = errno;
	if (ready <= 0) return false;
	char buf[16384];
	ssize_t n = 0;
	do n = read(STDIN_FILENO, buf, sizeof buf);
	while (n < 0 && errno == EINTR);
	if (n < 0) read_errno = errno;
	if (n <= 0) return false;
	input.append(buf, static_cast<size_t>(n));
	return true;
}

// -bs: one SMTP session with the calling program. Replies are written when
// more input is needed (so a pipelined group gets them together), each
// message is handed over at its end of data.
int serve_smtp(const sm::Args& a, const config::Config& cfg, const std::string& socket_path) {
	sm::StdioSmtp smtp(cfg.hostname, cfg.local_submission_max_size());
	std::string out = smtp.greeting(), input;
	bool eof = false;
	for (;;) {
		sm::StdioSmtp::Step step = smtp.next(input, eof);
		out += step.reply;
		if (step.submit) out += submit_transaction(smtp, std::move(*step.submit), a, cfg, socket_path);
		if (step.quit) return write_stdout(out) ? sm::ex_ok : sm::ex_ioerr;
		if (!step.more) continue;
		if (!write_stdout(out)) return sm::ex_ioerr;
		out.clear();
		bool timed_out = false;
		int read_errno = 0;
		if (!read_stdin(input, timed_out, read_errno)) {
			if (timed_out) return write_stdout(smtp.timeout_reply()) ? sm::ex_tempfail : sm::ex_ioerr;
			// A session whose input fails ends there: what it had not
			// finished is not sent.
			if (read_errno)
				return fail(sm::ex_ioerr,
				            std::string("reading the session: ") + std::strerror(read_errno));
			eof = true;
		}
	}
}

}  // namespace

int main(int argc, char** argv) {
	signal(SIGPIPE, SIG_IGN);
	std::vector<std::string> args(argv + 1, argv + argc);
	sm::Args a = sm::parse_args(argc > 0 ? argv[0] : "sendmail.tern", args, TERN_SYSCONFDIR "/tern/tern.json");
	if (!a.error.empty()) {
		std::cerr << "sendmail.tern: " << a.error << "\n" << usage_text;
		return sm::ex_usage;
	}
	if (a.mode == sm::Mode::nothing) return sm::ex_ok;

	std::shared_ptr<const config::Config> cfg;
	try {
		// A directory is the data directory of `ternd --localserve --data
		// DIR`, which has no config file.
		struct stat st;
		if (stat(a.config_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
			cfg = config::Config::localserve_config(a.config_path);
		else
			cfg = config::Config::load_file(a.config_path);
	} catch (const config::ConfigError& e) {
		// Its text starts with the file.
		return fail(sm::ex_config, std::string("cannot load config ") + e.what());
	} catch (const std::exception& e) {
		return fail(sm::ex_config, "cannot load config " + a.config_path + ": " + e.what());
	}
	std::string socket_path = cfg->data_dir + "/public/sendmail.sock";
	if (a.mode == sm::Mode::smtp) return serve_smtp(a, *cfg, socket_path);

	sm::Request request;
	std::string message;
	if (a.mode == sm::Mode::list_queue) {
		request.list_queue = true;
	} else {
		std::string input;
		if (int err = read_all_stdin(input))
			return fail(sm::ex_ioerr, std::string("reading the message: ") + std::strerror(err));
		request.recipients = a.recipients;
		// Bcc never reaches a recipient, with or without -t.
		sm::HeaderRecipients h = prepare(sm::normalize_message(input, a.ignore_dots), *cfg,
		                                 a.recipients_from_headers);
		if (!h.error.empty()) return fail(sm::ex_dataerr, h.error);
		message = std::move(h.message);
		request.recipients.insert(request.recipients.end(), h.recipients.begin(), h.recipients.end());
		request.recipients = sm::distinct_recipients(request.recipients);
		if (request.recipients.empty())
			return fail(sm::ex_usage, "no recipient addresses found in the message header");
		if (request.recipients.size() > sm::max_recipients)
			return fail(sm::ex_usage,
			            "too many recipients (at most " + std::to_string(sm::max_recipients) + ")");
		request.sender = a.sender;
		request.full_name = a.full_name;
		request.data_size = message.size();
	}
	HandOver result = hand_over(socket_path, request, message);
	if (!result.error.empty()) fail(result.exit_status, result.error);
	return result.exit_status;
}
