#include "queue/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "net/connect.h"
#include "smtp/dsn_params.h"
#include "util/base64.h"
#include "util/ipaddr.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::queue {

namespace {

// A reply line longer than this is a broken peer (RFC 5321 4.5.3.1.5 allows
// 512 octets); the input buffer never grows past it.
constexpr size_t max_input_without_newline = 64 * 1024;
// Stop asking for body chunks while this much output is still unsent.
constexpr size_t body_output_high_water = 256 * 1024;

bool positive(int code) { return code >= 200 && code < 300; }

#ifdef __linux__
// IP_BIND_ADDRESS_NO_PORT of <linux/in.h>, which <netinet/in.h> of older
// C libraries leaves out (and the two cannot both be included).
#ifdef IP_BIND_ADDRESS_NO_PORT
constexpr int ip_bind_address_no_port = IP_BIND_ADDRESS_NO_PORT;
#else
constexpr int ip_bind_address_no_port = 24;
#endif
#endif

// What a reply that did not let the transaction go on says about it. A 2xx
// or 3xx where another reply was due (a 250 to DATA, a 354 to RCPT) is no
// refusal: the two sides are out of step (RFC 5321 4.2.1), a temporary
// protocol error whose code and status belong to some other command.
struct Refusal {
	std::string error;
	bool permanent = false;
	std::string enhanced;
};
Refusal refusal_of(const Reply& reply) {
	if (reply.code < 400) return {"unexpected reply: " + reply.summary(), false, ""};
	return {reply.summary(), reply.code >= 500, reply.enhanced};
}

// The number of a "SIZE n" extension (RFC 1870 4); 0 when absent or not a
// number (no limit announced). Digits past 2^50 stop the count there.
int64_t parse_offered_size(std::string_view num) {
	int64_t v = 0;
	if (num.empty()) return 0;
	for (char c : num) {
		if (c < '0' || c > '9') return 0;
		v = v * 10 + (c - '0');
		if (v > (int64_t(1) << 50)) break;
	}
	return v;
}

}  // namespace

SmtpClient::SmtpClient(struct ev_loop* loop, ClientOptions options, ChunkRequest request_chunk, Done done)
	: loop_(loop), options_(std::move(options)), request_chunk_(std::move(request_chunk)), done_(std::move(done)),
	  io_(loop, [this](int revents) { within_boundary([&] { on_io(revents); }); }),
	  timer_(loop, [this] { within_boundary([&] { on_timeout(); }); }) {
	result_.recipients.resize(options_.recipients.size());
}

SmtpClient::~SmtpClient() {
	io_.stop();
	timer_.stop();
}

void SmtpClient::start() {
	auto ip = IpAddr::parse(options_.ip);
	if (!ip) {
		fail_host("bad address " + options_.ip);
		return;
	}
	sockaddr_storage ss;
	socklen_t len = ip->to_sockaddr(options_.port, ss);
	UniqueFd sock(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!sock) {
		fail_host(std::string("socket: ") + std::strerror(errno));
		return;
	}
	if (!options_.source_ip.empty() && !bind_source(sock.get(), ip->v6)) return;
	const int fd = sock.get();  // the transport owns it from here on
	transport_ = std::make_unique<net::Transport>(std::make_unique<net::FdStream>(std::move(sock)));
	state_ = State::connecting;
	if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
		on_connected();
		return;
	}
	if (errno != EINPROGRESS) {
		fail_host("connect to " + options_.ip + ": " + std::strerror(errno));
		return;
	}
	io_.set(fd, EV_WRITE);
	timer_.start(options_.timeouts.connect);
}

// A source address that cannot be bound (gone from the host, or a reload
// named one that is not there yet) fails this address of the host, as a
// refused connection does, and the next is tried; the message stays
// queued. No fallback to an address the kernel picks: receivers judge
// mail by the address it comes from (SPF, iprev), and mail sent from
// one the operator did not publish could be refused for good or filed
// as junk, where a temporary failure shows in the log and the queue
// listing and is retried once the address is back.
bool SmtpClient::bind_source(int fd, bool v6) {
	auto source = IpAddr::parse(options_.source_ip);
	if (!source || source->v6 != v6) return true;  // none of this family
#ifdef __linux__
	// The port is chosen at connect, for the 4-tuple: a bind to port 0
	// would reserve it for every destination, and many connections from
	// one address would run out of ports. Linux 4.2 and later; an older
	// kernel refuses the option and binds as before.
	int one = 1;
	::setsockopt(fd, IPPROTO_IP, ip_bind_address_no_port, &one, sizeof(one));
#endif
	sockaddr_storage ss;
	socklen_t len = source->to_sockaddr(0, ss);
	if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) return true;
	std::string error = "bind to " + options_.source_ip + " to connect to " + options_.ip + ": " +
	    std::strerror(errno);
	log::event(log::Level::error, options_.log_id, "cannot connect from the listeners' address",
	           {{"error", error}});
	fail_host(error);
	return false;
}

void SmtpClient::abort() {
	completed_ = true;
	state_ = State::finished;
	io_.stop();
	timer_.stop();
	transport_.reset();
}

void SmtpClient::on_connected() {
	if (options_.tls == TlsMode::implicit) {
		// RFC 8314 3.3: the handshake comes first, the greeting inside TLS.
		start_tls();
		return;
	}
	greeted_ = true;
	state_ = State::greeting;
	timer_.start(options_.timeouts.greeting);
	update_watch();
}

template <class F>
void SmtpClient::within_boundary(F&& step) {
	try {
		step();
	} catch (const std::exception& e) {
		log::error("queue: internal error in an SMTP session", {{"error", e.what()}});
		fail_attempt(std::string("internal error: ") + e.what());
	}
}

void SmtpClient::fail_attempt(const std::string& error) {
	if (state_ == State::finished || state_ == State::recording) return;
	if (state_ <= State::mail) {
		fail_host(error);
		return;
	}
	fail_transaction(error, false);
	complete();
}

void SmtpClient::on_io(int revents) {
	if (state_ == State::finished) return;
	if (state_ == State::connecting) {
		if (int err = net::connect_errno(transport_->stream())) {
			fail_host("connect to " + options_.ip + ": " + std::strerror(err));
			return;
		}
		on_connected();
		return;
	}
	if (state_ == State::tls_handshake) {
		continue_handshake();
		return;
	}
	// Output first whatever woke us: a TLS write may have waited for input.
	if ((revents & EV_WRITE) || !output_.empty()) flush_output();
	if (state_ != State::finished &&
	    ((revents & EV_READ) || ((revents & EV_WRITE) && transport_->read_waits_for_write())))
		read_input();
}

namespace {

// What a timeout in `state` interrupted, for the error that the log, the
// queue listing and a notice show: "timeout waiting for the greeting from".
const char* awaited(SmtpClient::State state) {
	using State = SmtpClient::State;
	switch (state) {
	case State::connecting: return "connecting to";
	case State::greeting: return "waiting for the greeting from";
	case State::ehlo: return "waiting for the reply to EHLO from";
	case State::helo: return "waiting for the reply to HELO from";
	case State::starttls: return "waiting for the reply to STARTTLS from";
	case State::tls_handshake: return "in the TLS handshake with";
	case State::auth: return "waiting for the reply to AUTH from";
	case State::mail: return "waiting for the reply to MAIL from";
	case State::rcpt: return "waiting for the reply to RCPT from";
	case State::data: return "waiting for the reply to DATA from";
	case State::body: return "sending the message to";
	case State::data_end: return "waiting for the reply to the end of data from";
	case State::quit: return "waiting for the reply to QUIT from";
	default: return "talking to";
	}
}

}  // namespace

void SmtpClient::on_timeout() {
	if (state_ == State::finished) {
		// Deferred completion (see complete()): done runs from the loop, never
		// from inside start() or supply_chunk().
		if (done_) {
			auto done = std::move(done_);
			done_ = nullptr;
			done(std::move(result_));
		}
		return;
	}
	std::string what = "timeout " + std::string(awaited(state_)) + " " + options_.server_name + " [" + options_.ip +
	    "]";
	switch (state_) {
	case State::quit: complete(); return;
	case State::rcpt:
	case State::data:
	case State::body:
	case State::data_end:
		// RFC 5321 4.5.3.2: a timeout is a temporary failure; after the
		// final dot we cannot know whether the message was taken, and
		// retrying (possible duplicate) is the RFC's choice (6.1).
		fail_transaction(what, false);
		complete();
		return;
	default: fail_host(what); return;
	}
}

// The server went away: after QUIT that is the normal end; before MAIL the
// host failed (try the next one); later the transaction failed.
void SmtpClient::connection_lost(const std::string& why) {
	if (state_ == State::recording) {
		// The transaction is over; resume() ends the session.
		peer_gone_ = true;
		io_.stop();
		return;
	}
	if (state_ == State::quit) {
		complete();
		return;
	}
	if (state_ <= State::mail)
		fail_host(why + " (" + options_.server_name + ")");
	else {
		fail_transaction(why + " (" + options_.server_name + ")", false);
		complete();
	}
}

void SmtpClient::read_input() {
	char buf[8192];
	net::IoStatus st = transport_->read_into(input_, buf, sizeof buf);
	if (st == net::IoStatus::closed || st == net::IoStatus::error) {
		connection_lost(st == net::IoStatus::closed ? "connection closed" : transport_->last_error());
		return;
	}
	process_input();
}

void SmtpClient::process_input() {
	for (;;) {
		if (state_ == State::finished || state_ == State::tls_handshake) return;
		if (state_ == State::recording) {
			// The transaction's result is with the owner; whatever the
			// server sends before our QUIT changes nothing and must not end
			// the session a second time (resume() ends it).
			input_.clear();
			return;
		}
		size_t nl = input_.find('\n');
		if (nl == std::string::npos) {
			if (input_.size() > max_input_without_newline) fail_attempt("reply line too long");
			return;
		}
		std::string line = input_.substr(0, nl);
		input_.erase(0, nl + 1);
		if (!line.empty() && line.back() == '\r') line.pop_back();
		log::event(log::Level::trace, options_.log_id, "RC: " + line);
		if (!parser_.feed_line(line)) continue;
		if (!parser_.error().empty()) {
			fail_attempt(parser_.error() + ": " + line);
			return;
		}
		handle_reply(parser_.take());
	}
}

void SmtpClient::send_command(const std::string& line, State next, double timeout, const char* logged) {
	log::event(log::Level::trace, options_.log_id, "LS: " + (logged ? std::string(logged) : line));
	output_ += line;
	output_ += "\r\n";
	state_ = next;
	timer_.start(timeout);
	flush_output();
}

void SmtpClient::flush_output() {
	if (!output_.empty() && state_ != State::finished) {
		size_t n = 0;
		net::IoStatus st = transport_->write(output_.data(), output_.size(), n);
		output_.erase(0, n);
		if (st != net::IoStatus::ok && st != net::IoStatus::want_write && st != net::IoStatus::want_read) {
			std::string why = transport_->last_error();
			if (state_ <= State::mail)
				fail_host("write: " + why);
			else {
				fail_transaction("write: " + why, false);
				complete();
			}
			return;
		}
		if (n > 0 && state_ == State::body)
			timer_.start(options_.timeouts.data_block);  // RFC 5321 4.5.3.2.5: per block
	}
	if (state_ == State::finished) return;
	update_watch();
	if (state_ == State::body) pump_body();
}

void SmtpClient::update_watch() {
	if (!transport_ || state_ == State::finished) return;
	// The transport knows what TLS waits for (during the handshake too).
	net::Transport::Interest interest = transport_->interest(true, !output_.empty());
	io_.set(transport_->fd(), (interest.read ? EV_READ : 0) | (interest.write ? EV_WRITE : 0));
}

// One step per client state; a reply in any other state (e.g. while the body
// is being written) is unexpected and ignored.
void SmtpClient::handle_reply(Reply reply) {
	switch (state_) {
	case State::greeting: on_greeting_reply(reply); return;
	case State::ehlo: on_ehlo_reply(reply); return;
	case State::helo: on_helo_reply(reply); return;
	case State::starttls: on_starttls_reply(reply); return;
	case State::auth: continue_auth(reply); return;
	case State::mail: on_mail_reply(reply); return;
	case State::rcpt: on_rcpt_reply(reply); return;
	case State::data: on_data_reply(reply); return;
	case State::data_end: on_data_end_reply(reply); return;
	case State::quit: complete(); return;
	default: return;
	}
}

void SmtpClient::on_greeting_reply(const Reply& reply) {
	if (reply.code != 220) {
		fail_host_on_reply("greeting from " + options_.server_name, reply);
		return;
	}
	greeted_ = true;
	send_ehlo(false);
}

void SmtpClient::on_ehlo_reply(const Reply& reply) {
	if (reply.code >= 400 && reply.code < 500) {
		// A temporary refusal is not "EHLO not understood": the host
		// fails for now, the next one is tried, the message retried later
		// (with HELO an SMTPUTF8 or REQUIRETLS message would bounce).
		fail_host_on_reply("EHLO to " + options_.server_name, reply);
		return;
	}
	if (reply.code != 250) {
		// RFC 5321 3.2: fall back to HELO when EHLO is not understood
		// (500, 501, 502, 550).
		send_command("HELO " + options_.ehlo_name, State::helo, options_.timeouts.command);
		return;
	}
	esmtp_ = true;
	read_ehlo_extensions(reply);
	if (!tls_active_ && options_.tls != TlsMode::none && offers_starttls_) {
		send_command("STARTTLS", State::starttls, options_.timeouts.command);
		return;
	}
	if (!tls_active_ && options_.requiretls) {
		fail_requiretls(options_.server_name + " does not offer STARTTLS", true);
		return;
	}
	if (!tls_active_ && options_.tls == TlsMode::required) {
		fail_host_talking(options_.server_name + " does not offer STARTTLS, which is required");
		return;
	}
	if (options_.requiretls && !offers_requiretls_) {
		// RFC 8689 4.2.1: the next hop must promise to honour it too.
		fail_requiretls(options_.server_name + " does not offer REQUIRETLS", true);
		return;
	}
	result_.peer_dsn = offers_dsn_;
	after_ehlo();
}

// What the EHLO reply offers, one extension a line after the first.
void SmtpClient::read_ehlo_extensions(const Reply& reply) {
	offers_starttls_ = offers_8bitmime_ = offers_smtputf8_ = false;
	offers_dsn_ = offers_requiretls_ = false;
	rcpt_max_ = 0;
	offered_size_ = -1;
	offered_auth_.clear();
	for (size_t i = 1; i < reply.lines.size(); i++) {
		std::string_view ext = trim(reply.lines[i]);
		std::string_view keyword = ext.substr(0, ext.find(' '));
		if (iequals(keyword, "AUTH") || (ext.size() > 5 && iequals(ext.substr(0, 5), "AUTH="))) {
			// RFC 4954 3: "AUTH mech mech..."; some old servers say "AUTH=mech".
			for (std::string_view rest = trim(ext.substr(std::min<size_t>(5, ext.size())));
			     !rest.empty();) {
				size_t space = rest.find(' ');
				offered_auth_.emplace_back(rest.substr(0, space));
				rest = space == std::string_view::npos ? std::string_view() : trim(rest.substr(space));
			}
		} else if (iequals(keyword, "STARTTLS"))
			offers_starttls_ = true;
		else if (iequals(keyword, "8BITMIME"))
			offers_8bitmime_ = true;
		else if (iequals(keyword, "SMTPUTF8"))
			offers_smtputf8_ = true;
		else if (iequals(keyword, "DSN"))
			offers_dsn_ = true;  // RFC 3461 4
		else if (iequals(keyword, "REQUIRETLS"))
			offers_requiretls_ = true;  // RFC 8689 2
		else if (iequals(keyword, "LIMITS"))
			rcpt_max_ = parse_limits(trim(ext.substr(keyword.size()))).rcpt_max;  // RFC 9422 4.1
		else if (iequals(keyword, "SIZE"))
			offered_size_ = keyword.size() < ext.size()
			    ? parse_offered_size(trim(ext.substr(keyword.size())))
			    : 0;
	}
}

void SmtpClient::on_helo_reply(const Reply& reply) {
	if (reply.code != 250) {
		fail_host_on_reply("HELO refused by " + options_.server_name, reply);
		return;
	}
	esmtp_ = false;
	if (options_.requiretls) {
		fail_requiretls(options_.server_name + " does not speak ESMTP", true);
		return;
	}
	if (!tls_active_ && options_.tls == TlsMode::required) {
		fail_host_talking(options_.server_name + " does not offer STARTTLS, which is required");
		return;
	}
	after_ehlo();
}

void SmtpClient::on_starttls_reply(const Reply& reply) {
	if (reply.code == 220) {
		start_tls();
		return;
	}
	if (options_.requiretls) {
		fail_requiretls("STARTTLS refused by " + options_.server_name + ": " + reply.summary(), true);
		return;
	}
	if (options_.tls == TlsMode::required) {
		fail_host_on_reply("STARTTLS refused by " + options_.server_name, reply, true);
		return;
	}
	after_ehlo();  // opportunistic: go on in plain text (RFC 3207 4.1)
}

void SmtpClient::on_mail_reply(const Reply& reply) {
	if (!positive(reply.code)) {
		fail_transaction(reply);
		finish_with_quit();
		return;
	}
	send_next_rcpt_or_data();
}

void SmtpClient::on_rcpt_reply(const Reply& reply) {
	RecipientResult& r = result_.recipients[next_rcpt_ - 1];
	if (positive(reply.code)) {
		accepted_++;
	} else {
		Refusal refusal = refusal_of(reply);
		r.error = std::move(refusal.error);
		r.permanent = refusal.permanent;
		r.enhanced = std::move(refusal.enhanced);
	}
	send_next_rcpt_or_data();
}

void SmtpClient::on_data_reply(const Reply& reply) {
	if (reply.code != 354) {
		fail_transaction(reply);
		finish_with_quit();
		return;
	}
	state_ = State::body;
	timer_.start(options_.timeouts.data_block);
	if (use_utf8_variant_) {
		// Small and in memory already: no chunk reads.
		stuffer_.feed(options_.utf8_variant, output_);
		body_eof_ = true;
		stuffer_.finish(output_);
		state_ = State::data_end;
		timer_.start(options_.timeouts.data_end);
		flush_output();
		return;
	}
	stuffer_.feed(options_.prefix, output_);
	flush_output();
}

void SmtpClient::on_data_end_reply(const Reply& reply) {
	if (positive(reply.code)) {
		for (auto& r : result_.recipients)
			if (r.error.empty()) r.delivered = true;
	} else {
		fail_transaction(reply);
	}
	if (record_result_) {
		// Nothing more is sent until the owner recorded the result.
		state_ = State::recording;
		timer_.stop();
		record_result_(result_);
		return;
	}
	finish_with_quit();
}

void SmtpClient::send_ehlo(bool after_tls) {
	(void)after_tls;
	send_command("EHLO " + options_.ehlo_name, State::ehlo, options_.timeouts.command);
}

// EHLO/HELO done (and TLS, when there is TLS): log in when we have
// credentials, then start the transaction.
void SmtpClient::after_ehlo() {
	if (options_.auth_username.empty()) {
		send_mail();
		return;
	}
	start_auth();
}

void SmtpClient::start_auth() {
	// RFC 4954 14: credentials must not cross an unprotected connection.
	if (!tls_active_ && !options_.auth_in_clear_ok) {
		log::event(log::Level::error, options_.log_id, "smarthost offers no TLS, not sending credentials",
		           {{"host", options_.server_name}, {"ip", options_.ip}});
		fail_host_talking("not sending credentials to " + options_.server_name + " without TLS");
		return;
	}
	std::string name = sasl::choose_client_mechanism(offered_auth_);
	if (name.empty()) {
		std::string offered;
		for (const auto& m : offered_auth_) offered += (offered.empty() ? "" : " ") + m;
		log::event(log::Level::error, options_.log_id, "smarthost offers no usable AUTH mechanism",
		           {{"host", options_.server_name}, {"offered", offered}});
		fail_host_talking(options_.server_name + " offers no AUTH mechanism tern can use (offered: " +
		                  (offered.empty() ? "none" : offered) + ")");
		return;
	}
	auth_ = sasl::make_client_mechanism(name, options_.auth_username, options_.auth_password);
	auth_aborting_ = false;
	std::string line = "AUTH " + name;
	if (auto initial = auth_->initial_response())
		line += " " + (initial->empty() ? std::string("=") : base64_encode(*initial));  // RFC 4954 4
	std::string logged = "AUTH " + name + " <credentials>";
	send_command(line, State::auth, options_.timeouts.command, logged.c_str());
}

void SmtpClient::continue_auth(const Reply& reply) {
	const std::string mechanism(auth_ ? auth_->name() : "");
	auto refused = [&](const std::string& why, const std::string& server_reply = "") {
		// Like Postfix: a failed login defers the mail (it stays queued), so
		// fixing the password file and reloading is enough.
		log::event(log::Level::error, options_.log_id, "smarthost authentication failed",
		           {{"host", options_.server_name}, {"mechanism", mechanism}, {"error", why}});
		auth_.reset();
		fail_host_talking("authentication with " + options_.server_name + " failed: " + why, false,
		                  server_reply);
	};
	if (auth_aborting_) {
		refused(auth_error_);
		return;
	}
	if (reply.code == 235) {
		std::string why = auth_->finished();
		if (!why.empty()) {
			refused(why);
			return;
		}
		auth_.reset();
		log::event(log::Level::debug, options_.log_id, "smarthost authenticated",
		           {{"host", options_.server_name}, {"mechanism", mechanism}});
		send_mail();
		return;
	}
	if (reply.code != 334) {
		refused(reply.summary(), reply.summary());
		return;
	}
	auto challenge = base64_decode(reply.lines.empty() ? std::string() : std::string(trim(reply.lines[0])));
	sasl::ClientStep step;
	if (!challenge)
		step.error = "invalid base64 in challenge";
	else
		step = auth_->respond(*challenge);
	if (!step.ok) {
		// RFC 4954 4: "*" cancels the exchange; the server answers 501.
		auth_aborting_ = true;
		auth_error_ = step.error;
		send_command("*", State::auth, options_.timeouts.command);
		return;
	}
	send_command(base64_encode(step.response), State::auth, options_.timeouts.command, "<credentials>");
}

void SmtpClient::send_mail() {
	std::string cmd = "MAIL FROM:<" + options_.from + ">";
	use_utf8_variant_ = !options_.utf8_variant.empty() && esmtp_ && offers_smtputf8_;
	if (use_utf8_variant_) {
		if (offered_size_ >= 0) cmd += " SIZE=" + std::to_string(options_.utf8_variant.size());
		if (offers_8bitmime_) cmd += " BODY=8BITMIME";
		cmd += " SMTPUTF8";
		send_command(cmd, State::mail, options_.timeouts.mail);
		return;
	}
	// What this server cannot take fails the transaction before MAIL, in
	// the order the size, the 8-bit data and the UTF-8 addresses come.
	std::string refused;
	if (esmtp_ && offered_size_ > 0 && options_.size > offered_size_)
		// RFC 1870 6.1: do not send what the server said it will refuse.
		refused = "5.3.4 message too large for " + options_.server_name + " (limit " +
		    std::to_string(offered_size_) + ")";
	else if (options_.has_8bit && !(esmtp_ && offers_8bitmime_))
		// RFC 6152 3: 8-bit data only to a server that offers 8BITMIME; tern
		// does not convert, so the message cannot go there.
		refused = "5.6.3 " + options_.server_name + " does not support 8BITMIME, required by the message";
	else if (options_.smtputf8 && !(esmtp_ && offers_smtputf8_))
		// RFC 6531 3.4: an SMTPUTF8 message cannot go to a server without it.
		refused = "5.6.7 " + options_.server_name + " does not support SMTPUTF8";
	if (!refused.empty()) {
		fail_transaction(refused, true);
		finish_with_quit();
		return;
	}
	if (esmtp_) {
		if (offered_size_ >= 0) cmd += " SIZE=" + std::to_string(options_.size);
		if (options_.has_8bit) cmd += " BODY=8BITMIME";  // RFC 6152
		// RFC 3461 4.3, 4.4: the DSN request travels on.
		if (offers_dsn_ && !options_.dsn_ret.empty()) cmd += " RET=" + options_.dsn_ret;
		if (offers_dsn_ && !options_.envid.empty()) cmd += " ENVID=" + smtp::xtext_encode(options_.envid);
		if (options_.requiretls) cmd += " REQUIRETLS";  // RFC 8689 4.2.1; offered, checked after EHLO
	}
	if (options_.smtputf8) cmd += " SMTPUTF8";
	send_command(cmd, State::mail, options_.timeouts.mail);
}

void SmtpClient::send_next_rcpt_or_data() {
	if (next_rcpt_ < options_.recipients.size() && rcpt_max_ != 0 && next_rcpt_ >= rcpt_max_) {
		// RFC 9422 4.1: no more than RCPTMAX recipients in one transaction;
		// the queue sends the rest in another one.
		for (size_t i = next_rcpt_; i < options_.recipients.size(); i++) {
			result_.recipients[i].not_attempted = true;
			result_.recipients[i].error = "not attempted: " + options_.server_name + " takes " +
			    std::to_string(rcpt_max_) + " recipients per transaction";
		}
		next_rcpt_ = options_.recipients.size();
	}
	if (next_rcpt_ < options_.recipients.size()) {
		std::string cmd = "RCPT TO:<" + options_.recipients[next_rcpt_] + ">";
		if (offers_dsn_ && next_rcpt_ < options_.notify.size() && options_.notify[next_rcpt_] != 0)
			cmd += " NOTIFY=" + smtp::notify_to_string(static_cast<uint8_t>(options_.notify[next_rcpt_]));
		if (offers_dsn_ && next_rcpt_ < options_.orcpt.size() && !options_.orcpt[next_rcpt_].empty())
			if (auto orcpt = smtp::orcpt_from_stored(options_.orcpt[next_rcpt_]))
				cmd += " ORCPT=" + smtp::orcpt_to_param(*orcpt);
		next_rcpt_++;
		send_command(cmd, State::rcpt, options_.timeouts.rcpt);
		return;
	}
	if (accepted_ == 0) {
		finish_with_quit();
		return;
	}
	send_command("DATA", State::data, options_.timeouts.data_init);
}

void SmtpClient::start_tls() {
	if (!options_.tls_context) {
		fail_host("no TLS client context", true);
		return;
	}
	try {
		// RFC 3207 4.2: nothing may follow the 220; what did is handshake input.
		transport_->start_client_tls(options_.tls_context, options_.server_name, input_);
	} catch (const std::exception& e) {
		fail_host(std::string("TLS: ") + e.what(), true);
		return;
	}
	input_.clear();
	state_ = State::tls_handshake;
	timer_.start(options_.timeouts.tls_handshake);
	continue_handshake();
}

void SmtpClient::continue_handshake() {
	net::IoStatus st = transport_->handshake();
	if (st == net::IoStatus::want_read || st == net::IoStatus::want_write) {
		update_watch();
		return;
	}
	if (st != net::IoStatus::ok) {
		std::string error = "TLS handshake with " + options_.server_name + ": " + transport_->last_error();
		if (options_.requiretls)
			fail_requiretls(error, false);
		else
			fail_host(error, true);
		return;
	}
	tls_active_ = true;
	result_.tls_comment = transport_->tls()->received_comment();
	if (options_.verify_peer) {
		std::string why = transport_->tls()->peer_verify_error();
		if (!why.empty() && options_.requiretls) {
			fail_requiretls("certificate of " + options_.server_name + " not trusted: " + why, false);
			return;
		}
		if (!why.empty() && options_.tls_required_no) {
			// RFC 8689 4.3: the sender asked that TLS problems not stop it.
			log::event(log::Level::info, options_.log_id,
			           "certificate not trusted, sending anyway (TLS-Required: No)",
			           {{"host", options_.server_name}, {"ip", options_.ip}, {"error", why}});
			why.clear();
		}
		if (!why.empty()) {
			// Temporary: the message stays queued while the operator fixes
			// the CA file or the smarthost's certificate.
			log::event(log::Level::error, options_.log_id,
			           options_.mta_sts ? "MX host certificate not trusted (MTA-STS)"
			                            : "smarthost certificate not trusted",
			           {{"host", options_.server_name}, {"ip", options_.ip}, {"error", why}});
			fail_host("certificate of " + options_.server_name + " not trusted: " + why, true);
			return;
		}
	}
	if (!greeted_) {
		// Implicit TLS: the greeting comes now, encrypted.
		state_ = State::greeting;
		timer_.start(options_.timeouts.greeting);
		update_watch();
		if (transport_->has_buffered_input()) read_input();
		return;
	}
	// RFC 3207 4.2: forget everything learned before TLS and say EHLO again.
	send_ehlo(true);
	if (state_ != State::finished && transport_->has_buffered_input()) read_input();
}

void SmtpClient::pump_body() {
	if (state_ != State::body || chunk_pending_ || body_eof_ || output_.size() >= body_output_high_water) return;
	chunk_pending_ = true;
	request_chunk_(body_offset_);
}

void SmtpClient::supply_chunk(std::string data, bool eof, const std::string& error) {
	chunk_pending_ = false;
	if (state_ != State::body) return;
	if (!error.empty()) {
		// Closing without the final dot makes the server discard the message.
		fail_transaction("reading queued message: " + error, false);
		complete();
		return;
	}
	stuffer_.feed(data, output_);
	body_offset_ += static_cast<int64_t>(data.size());
	if (eof) {
		body_eof_ = true;
		stuffer_.finish(output_);
		state_ = State::data_end;
		timer_.start(options_.timeouts.data_end);  // RFC 5321 4.5.3.2.6
	}
	flush_output();
}

void SmtpClient::fail_host(const std::string& error, bool tls_failed, const std::string& reply) {
	mark_host_failure(error, tls_failed, reply);
	complete();
}

// The host answered but cannot take the message (a 554 greeting, a 4xx to
// EHLO, no STARTTLS where it is required, AUTH refused): RFC 5321 3.1 and
// 4.1.1.10 ask the client to end with QUIT. It is sent without waiting
// for its reply, so that a host that does not answer it cannot hold up
// the next host for a command timeout.
void SmtpClient::fail_host_talking(const std::string& error, bool tls_failed, const std::string& reply) {
	mark_host_failure(error, tls_failed, reply);
	if (transport_) {
		log::event(log::Level::trace, options_.log_id, "LS: QUIT");
		output_ += "QUIT\r\n";
		size_t written = 0;
		(void)transport_->write(output_.data(), output_.size(), written);  // best effort: the session ends now
		output_.clear();
	}
	complete();
}

void SmtpClient::fail_host_on_reply(const std::string& what, const Reply& reply, bool tls_failed) {
	std::string summary = reply.summary();
	fail_host_talking(what + ": " + summary, tls_failed, summary);
}

void SmtpClient::fail_requiretls(const std::string& error, bool quit) {
	log::event(log::Level::info, options_.log_id, "host cannot meet REQUIRETLS",
	           {{"host", options_.server_name}, {"ip", options_.ip}, {"error", error}});
	result_.requiretls_unmet = true;
	if (quit)
		fail_host_talking(error);
	else
		fail_host(error);
}

void SmtpClient::mark_host_failure(const std::string& error, bool tls_failed, const std::string& reply) {
	result_.host_failure = true;
	result_.tls_failed = result_.tls_failed || tls_failed;
	result_.error = error;
	result_.reply = reply;
	for (auto& r : result_.recipients) {
		r.delivered = false;
		r.permanent = false;
		r.error = error;
	}
}

void SmtpClient::fail_transaction(const Reply& reply) {
	Refusal refusal = refusal_of(reply);
	fail_transaction(refusal.error, refusal.permanent, refusal.enhanced);
}

void SmtpClient::fail_transaction(const std::string& error, bool permanent, const std::string& enhanced) {
	if (result_.error.empty()) result_.error = error;
	for (auto& r : result_.recipients)
		if (r.error.empty() && !r.delivered) {
			r.error = error;
			r.permanent = permanent;
			r.enhanced = enhanced;
		}
}

void SmtpClient::resume() {
	if (state_ != State::recording) return;
	if (peer_gone_) {
		complete();
		return;
	}
	finish_with_quit();
}

void SmtpClient::finish_with_quit() { send_command("QUIT", State::quit, options_.timeouts.command); }

void SmtpClient::complete() {
	if (completed_) return;
	completed_ = true;
	state_ = State::finished;
	io_.stop();
	transport_.reset();
	// `done` runs from a zero timer so the owner may destroy us safely after
	// it returns (we are not inside any of our own frames then).
	timer_.start(0);
}

}  // namespace tern::queue
