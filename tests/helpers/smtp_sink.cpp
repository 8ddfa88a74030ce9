#include "helpers/smtp_sink.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers/smtp_client.h"
#include "net/tls.h"
#include "sasl/mechanism.h"
#include "sasl/secrets.h"
#include "util/base64.h"
#include "util/ipaddr.h"

namespace tern::testing {

namespace {

std::string upper_prefix(const std::string& s, size_t n) {
	std::string out = s.substr(0, n);
	for (char& c : out)
		if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
	return out;
}

std::string angle_content(const std::string& s) {
	size_t open = s.find('<'), close = s.find('>', open == std::string::npos ? 0 : open);
	if (open == std::string::npos || close == std::string::npos) return "";
	return s.substr(open + 1, close - open - 1);
}

// The parameters after a command's "<path>", without the space before them.
std::string params_after_path(const std::string& s) {
	size_t close = s.find('>');
	if (close == std::string::npos) return "";
	std::string rest = s.substr(close + 1);
	while (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
	return rest;
}

// The socket of one session, plain or inside TLS (tern's own TLS code over
// a socket with a short receive timeout, so reads come back to check the
// stop flag).
struct Transport {
	int fd = -1;
	std::unique_ptr<net::TlsSession> tls;

	// >0 bytes, 0 nothing yet (try again), -1 closed or failed.
	ssize_t read_some(char* buf, size_t cap) {
		if (!tls) {
			pollfd pfd{fd, POLLIN, 0};
			if (poll(&pfd, 1, 50) <= 0) return 0;
			ssize_t n = recv(fd, buf, cap, 0);
			return n <= 0 ? -1 : n;
		}
		size_t n = 0;
		net::IoStatus st = tls->read(buf, cap, n);
		if (st == net::IoStatus::ok) return ssize_t(n);
		if (st == net::IoStatus::want_read || st == net::IoStatus::want_write) return 0;
		return -1;
	}

	bool write_all(const std::string& out) {
		size_t off = 0;
		int64_t deadline = now_ms() + 30000;
		while (off < out.size()) {
			if (tls) {
				size_t n = 0;
				net::IoStatus st = tls->write(out.data() + off, out.size() - off, n);
				off += n;
				if (st == net::IoStatus::ok) continue;
				if ((st != net::IoStatus::want_write && st != net::IoStatus::want_read) ||
				    now_ms() > deadline)
					return false;
				continue;
			}
			ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
			if (n <= 0) return false;
			off += size_t(n);
		}
		return true;
	}
};

// A line reader with a poll deadline and the sink's stop flag.
class LineReader {
public:
	LineReader(Transport& io, const std::atomic<bool>& stop) : io_(io), stop_(stop) {}
	// Bytes read but not yet returned as lines (e.g. pipelined after STARTTLS).
	bool has_pending() const { return !buf_.empty(); }
	bool read_line(std::string& line) {
		int64_t deadline = now_ms() + 30000;
		for (;;) {
			size_t eol = buf_.find('\n');
			if (eol != std::string::npos) {
				line = buf_.substr(0, eol + 1);
				buf_.erase(0, eol + 1);
				return true;
			}
			if (stop_ || now_ms() > deadline) return false;
			char tmp[16384];
			ssize_t n = io_.read_some(tmp, sizeof(tmp));
			if (n < 0) return false;
			buf_.append(tmp, size_t(n));
		}
	}

private:
	Transport& io_;
	const std::atomic<bool>& stop_;
	std::string buf_;
};

bool write_line(Transport& io, const std::string& line) { return io.write_all(line + "\r\n"); }

// Starts TLS on the session's socket; false when the handshake fails.
bool start_tls(Transport& io, const std::shared_ptr<const net::TlsServerContext>& context) {
	try {
		io.tls = std::make_unique<net::TlsSession>(context, io.fd);
	} catch (const std::exception&) {
		return false;
	}
	int64_t deadline = now_ms() + 15000;
	for (;;) {
		net::IoStatus st = io.tls->handshake();
		if (st == net::IoStatus::ok) return true;
		if ((st != net::IoStatus::want_read && st != net::IoStatus::want_write) || now_ms() > deadline) {
			io.tls.reset();
			return false;
		}
	}
}

}  // namespace

SmtpSink::SmtpSink() { start(); }

SmtpSink::SmtpSink(Options options) : options_(std::move(options)) {
	if (!options_.cert_file.empty())
		tls_context_ = std::make_shared<net::TlsServerContext>(options_.cert_file, options_.key_file);
	if (!options_.auth_username.empty())
		secrets_ = std::make_shared<sasl::StoredSecrets>(sasl::StoredSecrets::derive(options_.auth_password));
	start();
}

void SmtpSink::start() {
	const bool ipv6 = options_.listen_ip.find(':') != std::string::npos;
	listen_fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (listen_fd_ < 0) throw std::runtime_error(std::string("sink socket: ") + strerror(errno));
	int one = 1;
	setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sockaddr_storage ss{};
	socklen_t len = 0;
	if (ipv6) {
		auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(options_.listen_port);
		// Only this family: the port may be another sink's on IPv4.
		setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		inet_pton(AF_INET6, options_.listen_ip.c_str(), &sin6->sin6_addr);
		len = sizeof(*sin6);
	} else {
		auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(options_.listen_port);
		inet_pton(AF_INET, options_.listen_ip.c_str(), &sin->sin_addr);
		len = sizeof(*sin);
	}
	if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(listen_fd_, 64) != 0)
		throw std::runtime_error(std::string("sink bind/listen: ") + strerror(errno));
	getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
	port_ = ntohs(ipv6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
	                   : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
	thread_ = std::thread([this] { serve(); });
}

SmtpSink::~SmtpSink() { stop(); }

void SmtpSink::stop() {
	stop_ = true;
	if (thread_.joinable()) thread_.join();
	if (listen_fd_ >= 0) ::close(listen_fd_);
	listen_fd_ = -1;
}

void SmtpSink::set_replies(const Replies& replies) {
	std::lock_guard<std::mutex> lock(mutex_);
	replies_ = replies;
}

std::vector<SinkAuthAttempt> SmtpSink::auth_attempts() const {
	std::lock_guard<std::mutex> lock(mutex_);
	return auth_attempts_;
}

std::vector<SinkMessage> SmtpSink::messages() const {
	std::lock_guard<std::mutex> lock(mutex_);
	return messages_;
}

bool SmtpSink::wait_for_messages(size_t n, int timeout_ms) const {
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (messages().size() >= n) return true;
		if (now_ms() > deadline) return false;
		usleep(20000);
	}
}

void SmtpSink::serve() {
	while (!stop_) {
		pollfd pfd{listen_fd_, POLLIN, 0};
		if (poll(&pfd, 1, 50) <= 0) continue;
		sockaddr_storage peer{};
		socklen_t peer_len = sizeof(peer);
		int fd = accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_CLOEXEC);
		if (fd < 0) continue;
		auto peer_ip = IpAddr::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer));
		std::string peer_text = peer_ip ? peer_ip->to_string() : "";
		connections_++;
		// Blocking reads inside TLS return every 50 ms to see the stop flag.
		timeval tv{0, 50000};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (concurrent_) {
			session_threads_.emplace_back([this, fd, peer_text] {
				session(fd, peer_text);
				::close(fd);
			});
			continue;
		}
		session(fd, peer_text);
		::close(fd);
	}
	for (auto& t : session_threads_) t.join();
	session_threads_.clear();
}

void SmtpSink::session(int fd, const std::string& peer_ip) {
	auto reply = [this](std::string Replies::*which) {
		std::lock_guard<std::mutex> lock(mutex_);
		return replies_.*which;
	};
	Transport io;
	io.fd = fd;
	if (tls_context_ && options_.implicit_tls && !start_tls(io, tls_context_)) {
		tls_failures_++;
		return;
	}
	LineReader reader(io, stop_);
	if (!write_line(io, reply(&Replies::greeting))) return;
	const bool auth_required = !options_.auth_username.empty();
	std::string logged_in, logged_in_mechanism;
	SinkMessage msg;
	std::string line;
	while (reader.read_line(line)) {
		std::string cmd = line;
		while (!cmd.empty() && (cmd.back() == '\n' || cmd.back() == '\r')) cmd.pop_back();
		std::string verb = upper_prefix(cmd, 4);
		bool ok = true;
		if (verb == "EHLO" || verb == "HELO") {
			msg = SinkMessage{};
			msg.helo = cmd.size() > 5 ? cmd.substr(5) : "";
			std::string ehlo_reply = reply(&Replies::ehlo);
			if (verb == "EHLO" && !ehlo_reply.empty()) {
				ok = write_line(io, ehlo_reply);
			} else if (verb == "EHLO") {
				ok = write_line(io, "250-sink.test.example") && write_line(io, "250-PIPELINING") &&
				    write_line(io, "250-8BITMIME");
				if (ok && tls_context_ && !io.tls) ok = write_line(io, "250-STARTTLS");
				// Like real servers: no AUTH before TLS when TLS is offered.
				if (ok && auth_required && (!tls_context_ || io.tls))
					ok = write_line(io, "250-AUTH " + options_.auth_mechanisms);
				if (ok && options_.offer_dsn) ok = write_line(io, "250-DSN");
				if (ok && options_.offer_requiretls && io.tls) ok = write_line(io, "250-REQUIRETLS");
				if (ok && !options_.limits.empty())
					ok = write_line(io, "250-LIMITS " + options_.limits);
				ok = ok && write_line(io, "250 SMTPUTF8");
			} else
				ok = write_line(io, "250 sink.test.example");
		} else if (verb == "STAR" && upper_prefix(cmd, 8) == "STARTTLS" && tls_context_ && !io.tls) {
			if (!write_line(io, "220 2.0.0 go ahead")) return;
			if (reader.has_pending() || !start_tls(io, tls_context_)) {
				tls_failures_++;
				return;
			}
			msg = SinkMessage{};
			continue;
		} else if (verb == "AUTH" && auth_required && (!tls_context_ || io.tls) && logged_in.empty()) {
			SinkAuthAttempt attempt;
			std::string args = cmd.size() > 5 ? cmd.substr(5) : "";
			size_t space = args.find(' ');
			attempt.mechanism = upper_prefix(args.substr(0, space),
			                                 space == std::string::npos ? args.size() : space);
			std::optional<std::string> initial;
			if (space != std::string::npos) {
				std::string b64 = args.substr(space + 1);
				initial = b64 == "=" ? std::optional<std::string>("") : base64_decode(b64);
			}
			std::unique_ptr<sasl::Mechanism> mech;
			if (std::string(" " + options_.auth_mechanisms + " ").find(" " + attempt.mechanism + " ") !=
			    std::string::npos)
				mech = sasl::make_mechanism(attempt.mechanism, "sink.test.example");
			std::string final_reply;
			if (!mech) {
				final_reply = "504 5.5.4 mechanism not offered";
			} else {
				sasl::Step step = mech->start(initial);
				for (;;) {
					if (step.kind == sasl::Step::Kind::challenge) {
						if (options_.scram_wrong_server_signature &&
						    step.challenge.rfind("v=", 0) == 0)
							step.challenge = "v=" + base64_encode(std::string(32, 'x'));
						if (!write_line(io, "334 " + base64_encode(step.challenge)) ||
						    !reader.read_line(line))
							return;
						while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
							line.pop_back();
						if (line == "*") {
							final_reply = "501 5.0.0 authentication aborted";
							break;
						}
						auto data = base64_decode(line);
						if (!data) {
							final_reply = "501 5.5.2 invalid base64";
							break;
						}
						step = mech->next(*data);
					} else if (step.kind == sasl::Step::Kind::lookup) {
						std::optional<sasl::StoredSecrets> secrets;
						if (step.username == options_.auth_username) secrets = *secrets_;
						step = mech->provide_secrets(secrets);
					} else if (step.kind == sasl::Step::Kind::success) {
						attempt.ok = true;
						logged_in = step.username;
						logged_in_mechanism = attempt.mechanism;
						final_reply = "235 2.7.0 authenticated";
						break;
					} else {
						final_reply = std::to_string(step.code) + " " +
						    std::to_string(step.code / 100) + "." + step.secode + " " +
						    step.text;
						break;
					}
				}
				attempt.username = mech->username_sent();
			}
			attempt.reply = final_reply;
			{
				std::lock_guard<std::mutex> lock(mutex_);
				auth_attempts_.push_back(attempt);
			}
			ok = write_line(io, final_reply);
		} else if (verb == "MAIL" && auth_required && logged_in.empty()) {
			ok = write_line(io, "530 5.7.0 authentication required");
		} else if (verb == "MAIL") {
			std::string r = reply(&Replies::mail);
			if (!r.empty() && r[0] == '2') {
				msg.mail_from = angle_content(cmd);
				msg.mail_params = params_after_path(cmd);
				msg.rcpt_to.clear();
				msg.rcpt_params.clear();
				msg.tls = io.tls != nullptr;
				msg.auth_user = logged_in;
				msg.auth_mechanism = logged_in_mechanism;
			}
			ok = write_line(io, r);
		} else if (verb == "RCPT") {
			std::string r = reply(&Replies::rcpt);
			if (!r.empty() && r[0] == '2') {
				msg.rcpt_to.push_back(angle_content(cmd));
				msg.rcpt_params.push_back(params_after_path(cmd));
			}
			ok = write_line(io, r);
		} else if (verb == "DATA") {
			std::string r = reply(&Replies::data);
			ok = write_line(io, r);
			if (!r.empty() && r[0] == '3') {
				// RFC 5321 4.5.2: remove one leading dot; CRLF.CRLF ends the data.
				std::string data;
				bool complete = false;
				while (reader.read_line(line)) {
					if (line == ".\r\n") {
						complete = true;
						break;
					}
					if (!line.empty() && line[0] == '.') line.erase(0, 1);
					data += line;
				}
				if (!complete) return;
				msg.data = data;
				msg.received_ms = now_ms();
				msg.acked_ms = 0;
				data_received_++;
				int delay_ms = 0;
				{
					std::lock_guard<std::mutex> lock(mutex_);
					delay_ms = replies_.data_end_delay_ms;
				}
				for (int64_t until = now_ms() + delay_ms; !stop_ && now_ms() < until;) usleep(10000);
				std::string end = reply(&Replies::data_end);
				bool accepted = !end.empty() && end[0] == '2';
				size_t index = 0;
				if (accepted) {
					std::lock_guard<std::mutex> lock(mutex_);
					index = messages_.size();
					msg.peer_ip = peer_ip;
					messages_.push_back(msg);
				}
				ok = write_line(io, end);
				if (ok && accepted) {
					std::lock_guard<std::mutex> lock(mutex_);
					messages_[index].acked_ms = now_ms();
				}
			}
		} else if (verb == "RSET") {
			msg.mail_from.clear();
			msg.rcpt_to.clear();
			ok = write_line(io, "250 2.0.0 ok");
		} else if (verb == "NOOP") {
			ok = write_line(io, "250 2.0.0 ok");
		} else if (verb == "QUIT") {
			quits_++;
			int delay_ms = 0;
			{
				std::lock_guard<std::mutex> lock(mutex_);
				delay_ms = replies_.quit_delay_ms;
			}
			for (int64_t until = now_ms() + delay_ms; !stop_ && now_ms() < until;) usleep(10000);
			write_line(io, "221 2.0.0 bye");
			return;
		} else {
			ok = write_line(io, "500 5.5.1 unknown command");
		}
		if (!ok) return;
	}
}

}  // namespace tern::testing
