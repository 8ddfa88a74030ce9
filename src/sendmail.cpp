// sendmail.tern: the sendmail(1) interface of tern for cron, PHP mail()
// and scripts (man/sendmail.tern.8). It reads a message from stdin and
// hands it to the running ternd over <data_dir>/public/sendmail.sock;
// ternd applies the submission rules and queues it before answering. When
// the hand-over fails, the message is not lost silently: the exit status
// (sysexits.h) and a line on stderr say so, and the caller keeps it.
// Invoked as mailq (or with -bp) it prints the queue.
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
#include "net/unix_socket.h"

using namespace tern;
namespace sm = tern::message::sendmail;

namespace {

const char* usage_text =
    "usage: sendmail.tern [-C FILE|DIR] [-t] [-i] [-f SENDER] [-F NAME] [--] [RECIPIENT...]\n"
    "       sendmail.tern -bp [-C FILE]    (or: mailq) list the queue\n";

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

// Reads ternd's answer up to the final status; rcpt failures and the final
// failure go to stderr, a queue listing to stdout.
int read_answer(Connection& conn) {
	for (;;) {
		auto line = conn.read_line();
		if (!line)
			return fail(sm::ex_tempfail,
			            "ternd closed the connection without an answer; the message was not sent");
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
				return fail(sm::ex_tempfail, "ternd closed the connection during the queue listing");
			std::cout << *listing;
			break;
		}
		case sm::ResponseLine::Kind::done: {
			int status = sm::exit_status(r.status);
			if (status != sm::ex_ok)
				fail(status,
				     "message not sent: " + std::to_string(r.status.code) + " " + r.status.enhanced +
				         " " + r.status.text);
			return status;
		}
		case sm::ResponseLine::Kind::invalid:
			return fail(sm::ex_software, "unexpected answer from ternd: " + *line);
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
	} catch (const std::exception& e) {
		return fail(sm::ex_config, "cannot load config " + a.config_path + ": " + e.what());
	}
	std::string socket_path = cfg->data_dir + "/public/sendmail.sock";

	sm::Request request;
	std::string message;
	if (a.mode == sm::Mode::list_queue) {
		request.list_queue = true;
	} else {
		std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
		if (std::cin.bad())
			return fail(sm::ex_ioerr, std::string("reading the message: ") + std::strerror(errno));
		message = sm::ensure_header_section(sm::normalize_message(input, a.ignore_dots));
		message = sm::qualify_header_addresses(message, cfg->hostname);
		request.recipients = a.recipients;
		// Bcc never reaches a recipient, with or without -t.
		sm::HeaderRecipients h = sm::take_header_recipients(message, a.recipients_from_headers);
		if (!h.error.empty()) return fail(sm::ex_dataerr, h.error);
		message = std::move(h.message);
		request.recipients.insert(request.recipients.end(), h.recipients.begin(), h.recipients.end());
		if (request.recipients.empty())
			return fail(sm::ex_usage, "no recipient addresses found in the message header");
		if (request.recipients.size() > sm::max_recipients)
			return fail(sm::ex_usage,
			            "too many recipients (at most " + std::to_string(sm::max_recipients) + ")");
		request.sender = a.sender;
		request.full_name = a.full_name;
		request.data_size = message.size();
	}
	auto head = sm::encode_request(request);
	if (!head) return fail(sm::ex_usage, "control characters in an address or the full name");

	Connection conn;
	if (auto error = conn.connect_to(socket_path))
		return fail(sm::ex_tempfail, *error + "; the message was not sent");
	// ternd may answer early (a refusal) and close: read its answer then.
	conn.send_all(*head) && conn.send_all(message);
	return read_answer(conn);
}
