// Connection lifecycle and I/O: greeting, reading and splitting command
// lines, the reply buffer with pipelining-aware flushing, deadlines, and
// closing. Command handlers live in commands.cpp, DATA in data.cpp.
#include "server/session.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "core/stats.h"
#include "net/proxy_protocol.h"
#include "server/milter.h"
#include "server/server.h"
#include "smtp/replies.h"
#include "util/assert.h"
#include "util/log.h"
#include "util/strings.h"

namespace tern::server {

namespace {

// Seconds on the monotonic clock, read now: the loop's cached time
// (ev_now) is the same for every command of one loop iteration, so a
// command answered at once would always last 0.
double command_clock() {
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// Stop taking commands while this much output waits for a slow reader.
constexpr size_t max_pending_output = 64 * 1024;

// SIGTERM (doc/behaviour.md "Logs, signals, metrics"): 421, then close.
smtp::SmtpError shutting_down_reply() {
	return smtp::error_reply(421, smtp::se::sys_not_accepting2, "shutting down").without_id().then_close();
}

std::string peer_text(const IpAddr& ip, uint16_t port) {
	if (ip.v6) return "[" + ip.to_string() + "]:" + std::to_string(port);
	return ip.to_string() + ":" + std::to_string(port);
}
}  // namespace

Connection::Connection(Server& s, core::ConnHandle h, uint64_t id, std::unique_ptr<net::ByteStream> stream,
                       const net::ListenSocket& ls, std::shared_ptr<const config::Config> c)
	: srv(s), self(h), cid(id), listener_name(ls.listener), service(ls.service), cfg(std::move(c)),
	  transport(std::move(stream)),
	  io(s.loop(), [this](int revents) { srv.with_conn(self, [revents](Connection& c) { c.on_io(revents); }); }),
	  deadline(s.loop(), [this] { srv.with_conn(self, [](Connection& c) { c.on_deadline(); }); }),
	  slow_timer(s.loop(), [this] { srv.with_conn(self, [](Connection& c) { c.on_slow_tick(); }); }) {
	// The addresses are set by whoever opened the connection (the acceptor,
	// or a session test's driver) before start().
}

Connection::~Connection() {
	// No DNS answer may arrive for a connection that is gone.
	srv.resolver().cancel_owner(cid);
	io.stop();
	deadline.stop();
	abort_data_file();
	if (flags.counted_connection) srv.connection_limiter().add(remote_ip, std::time(nullptr), -1);
	// A connection that ends in the middle of AUTH (hang-up, timeout,
	// shutdown) failed its login: logged (for fail2ban), counted as an error
	// and against the address, as the model's deferred count does.
	if (auth_state.in_progress && (mechanism || dovecot_auth)) {
		log_auth_failure({}, "closed");
		record_auth_failure("error");
	}
	log::event(log::Level::info, cid, "connection closed");
}

const config::Listener& Connection::listener() const { return cfg->listeners.at(listener_name); }

const std::string& Connection::hostname() const { return listener().hostname; }

std::string Connection::received_id() const { return srv.recvid().id(cid); }

void Connection::start() {
	core::stats().count_connection(submission() ? "submission" : "smtp");  // tern_smtpserver_connection_total
	log::event(log::Level::info, cid, "new connection",
	           {{"remote", peer_text(remote_ip, remote_port)},
	            {"local", peer_text(local_ip, local_port)},
	            {"listener", listener_name},
	            {"service", net::service_name(service)}});
	if (listener().proxy_protocol) {
		// doc/behaviour.md "PROXY protocol": mandatory on such a listener, and only
		// from trusted proxies; anything else is closed without a greeting.
		std::vector<IpNet> trusted;
		for (const auto& cidr : listener().trusted_proxies)
			if (auto net = IpNet::parse(cidr)) trusted.push_back(*net);
		if (!net::proxy_source_trusted(remote_ip, trusted)) {
			log::event(log::Level::info, cid, "proxy protocol from an untrusted address, closing");
			close_now("untrusted proxy");
			return;
		}
		enter_state(SessionState::proxy_header);
		update_watchers();
		arm_deadline();
		return;
	}
	begin_session();
}

// The accept path of the model (doc/behaviour.md §1), once the client's
// address is known: a server shutting down refuses it; otherwise the
// limiters count it once, at accept, and one over a limit is refused, else
// greeted. On port 465 the handshake comes between the count and the
// reply, so connections waiting in their handshake are held to the limits
// too.
void Connection::begin_session() {
	if (!srv.shutting_down() && admission == Admission::pending) admission = admit();
	if (service == net::Service::submissions && !transport.tls()) {
		// Implicit TLS (RFC 8314 3.3): the handshake comes first, so even a
		// refusal below reaches the client inside TLS.
		if (!srv.tls_context()) {
			close_now("implicit tls without a certificate");
			return;
		}
		start_tls();
		return;
	}
	// The refusals at connect are 421 and a close (RFC 5321 4.2.2: service
	// not available, closing the channel), without a received-id.
	auto refuse = [this](std::string text) {
		apply(smtp::error_reply(421, smtp::se::pol_other0, std::move(text)).without_id().then_close());
	};
	if (srv.shutting_down()) {
		apply(shutting_down_reply());
	} else if (admission == Admission::rate_too_high) {
		refuse("connection rate from your ip or network too high, slow down please");
	} else if (admission == Admission::auth_failures) {
		log::event(log::Level::debug, cid, "refusing connection due to many auth failures");
		refuse("too many auth failures");
	} else if (admission == Admission::too_many_connections) {
		refuse("too many open connections from your ip or network");
	} else {
		// RFC 5321 4.3.1 greeting; doc/behaviour.md: the model's texts with "tern" as the product name.
		apply(Outcome::reply(220, "", hostname() + " ESMTP tern " TERN_VERSION));
		// The message will need the client's reverse name (iprev, RFC 8601
		// 3): it depends on the address only, so it is asked now, while the
		// client talks, not after its final dot.
		if (!submission() && localserve().checks_over_dns()) {
			early_iprev = std::make_shared<EarlyIprev>();
			mailauth::iprev_lookup(
			    srv.resolver(), cid, remote_ip,
			    [early = early_iprev](const mailauth::IprevResult& r) { early->set(r); });
		}
	}
	flush();
	if (!dead) {
		update_watchers();
		arm_deadline();
	}
}

// The model's limiter steps at accept, in its order: the connection rate,
// failed logins (submission only, looked at, not counted), open
// connections. An admitted connection holds its slot until it closes.
Connection::Admission Connection::admit() {
	int64_t now = std::time(nullptr);
	if (!srv.rate_limiter().add(remote_ip, now, 1)) return Admission::rate_too_high;
	if (submission() && !srv.auth_failure_limiter().can_add(remote_ip, now, 1)) return Admission::auth_failures;
	if (!srv.connection_limiter().add(remote_ip, now, 1)) return Admission::too_many_connections;
	flags.counted_connection = true;
	return Admission::admitted;
}

// Reads the PROXY v1/v2 header that precedes everything on a
// proxy_protocol listener; the claimed client address replaces the peer's
// for every later decision.
void Connection::read_proxy_header() {
	net::ProxyHeader header;
	size_t consumed = 0;
	switch (net::parse_proxy_header(inbuf, header, consumed)) {
	case net::ProxyParse::need_more:
		if (eof) close_now("connection closed in proxy header");
		return;
	case net::ProxyParse::invalid:
		log::event(log::Level::info, cid, "malformed proxy protocol header, closing");
		close_now("malformed proxy header");
		return;
	case net::ProxyParse::done: break;
	}
	inbuf.erase(0, consumed);
	if (!header.local && header.source) {
		remote_ip = *header.source;
		remote_port = header.source_port;
		if (header.destination) {
			local_ip = *header.destination;
			local_port = header.destination_port;
		}
	}
	log::event(log::Level::info, cid, "proxied connection", {{"remote", peer_text(remote_ip, remote_port)}});
	enter_state(SessionState::command);
	begin_session();
}

// ---- output ----

void Connection::write_reply(const smtp::SmtpError& r, bool verbatim) {
	const int code = r.code;
	const std::string_view secode = r.secode;
	const std::string text = r.with_id ? r.text + " (" + received_id() + ")" : r.text;
	const std::string formatted = verbatim ? std::to_string(code) + " " + text + "\r\n"
					       : smtp::format_reply(code, secode, text);
	if (log::enabled(log::Level::trace)) {
		// One log line per reply line.
		std::string_view rest(formatted);
		for (size_t end; (end = rest.find("\r\n")) != std::string_view::npos; rest.remove_prefix(end + 2))
			log::event(log::Level::trace, cid, "LS: " + std::string(rest.substr(0, end)));
	}
	outbuf.append(formatted);
	// RFC 5321 4.2.1: a 3yz reply (DATA's 354, AUTH's 334) is intermediate;
	// the command's result is the reply that ends it.
	if (code / 100 == 3 || cmd.empty()) return;
	const double duration = command_clock() - cmd_start;
	if (log::enabled(log::Level::debug)) {
		log::event(log::Level::debug, cid, "smtp command result",
		           {{"cmd", cmd},
		            {"code", std::to_string(code)},
		            {"ecode", smtp::enhanced_code(code, secode)},
		            {"duration", std::to_string(duration)}});
	}
	// tern_smtpserver_command_duration_seconds
	core::stats().observe_command(submission() ? "submission" : "smtp", cmd, code,
	                              smtp::enhanced_code(code, secode), duration);
	// The command has its answer. A reply after it that no command asked
	// for (the idle timeout's or shutdown's 421) is not observed (D30).
	cmd.clear();
}

void Connection::flush() {
	// Nothing goes out while the handshake runs; the TLS session writes itself.
	if (state == SessionState::tls_handshake) return;
	// Slow mode: one byte, then the timer releases the next (a spammer
	// pays in connection time; the loop never sleeps).
	bool paced = slow_pace();
	while (!outbuf.empty()) {
		if (paced && slow_timer.active()) break;
		size_t sent = 0;
		// Paced: one byte, or the TLS record a short write left in flight
		// (slow mode may begin while one is).
		size_t len = paced ? std::min(transport.min_write(), outbuf.size()) : outbuf.size();
		net::IoStatus st = transport.write(outbuf.data(), len, sent);
		outbuf.erase(0, sent);
		if (paced && sent > 0 && !outbuf.empty()) slow_timer.start(bad_client_delay());
		if (st == net::IoStatus::ok) continue;
		if (st == net::IoStatus::want_write || st == net::IoStatus::want_read) break;
		close_now(st == net::IoStatus::closed ? "connection closed by peer" : transport.last_error());
		return;
	}
	if (outbuf.empty()) {
		std::string().swap(outbuf);  // give the memory back while idle
		if (tls_pending_start) {
			start_tls();
			return;
		}
		if (state == SessionState::closing) {
			close_now("");
			return;
		}
	}
}
void Connection::close_after_flush() {
	enter_state(SessionState::closing);
	abort_data_file();
	// The last reply may never leave (a peer that stopped reading): the
	// closing state's own deadline ends the connection regardless; the one
	// that just fired, if any, was the only timer running.
	arm_deadline();
}

void Connection::close_now(std::string_view why) {
	if (dead) return;
	// The field's string is built only when the line is written.
	if (!why.empty() && log::enabled(log::Level::debug))
		log::event(log::Level::debug, cid, "closing connection", {{"reason", std::string(why)}});
	dead = true;
	io.stop();
	deadline.stop();
}

void Connection::update_watchers() {
	if (dead) return;
	// A paced byte waits for its timer, not for the stream.
	bool have_output = !outbuf.empty() && !(slow_pace() && slow_timer.active());
	// In slow mode nothing more is read until the reply is out: the client
	// cannot pile up input while it is being slowed down.
	// After STARTTLS's 220 nothing is read until the handshake takes the
	// stream: those bytes belong to it (RFC 3207 4.2).
	bool want_read = (state == SessionState::command || state == SessionState::data ||
	                  state == SessionState::auth_exchange || state == SessionState::proxy_header) &&
	    !eof && !tls_pending_start && outbuf.size() < max_pending_output && !(slow_pace() && !outbuf.empty());
	net::Transport::Interest interest = transport.interest(want_read, have_output);
	wanted_io = (interest.read ? EV_READ : 0) | (interest.write ? EV_WRITE : 0);
	// A scripted stream has no fd: its driver reads wanted_io and pumps on_io.
	// Nothing wanted for now (a job runs): paused rather than stopped, so
	// that wanting the same again after it costs no system call.
	if (transport.fd() >= 0) wanted_io == 0 ? io.pause() : io.set(transport.fd(), wanted_io);
}
void Connection::arm_deadline() {
	// A whole-command deadline, not per read: a client that trickles a byte
	// every few seconds still has to finish its command in time
	// (doc/behaviour.md D13, RFC 5321 4.5.3.2.7).
	const auto& t = cfg->timeouts_s;
	switch (state) {
	case SessionState::command: {
		double limit = static_cast<double>(t.command);
		// Between BDAT chunks the message's own time runs on: the wait for
		// the next chunk's command counts against data_total too.
		if (data && data->chunked)
			limit = std::max(
			    0.0,
			    std::min(limit, data->started + static_cast<double>(t.data_total) - ev_now(srv.loop())));
		deadline.start(limit);
		break;
	}
	case SessionState::data: {
		double total_left = data->started + static_cast<double>(t.data_total) - ev_now(srv.loop());
		double chunk = static_cast<double>(t.data_chunk);
		deadline.start(std::max(0.0, std::min(chunk, total_left)));
		break;
	}
	case SessionState::waiting:
		// A stall keeps its own timer; a job gets the whole message's time
		// at most, so no session waits for ever on a lost completion.
		if (!stalled) deadline.start(static_cast<double>(t.data_total));
		break;
	case SessionState::closing: deadline.start(10.0); break;  // a peer that never reads our last reply
	case SessionState::tls_handshake: deadline.start(static_cast<double>(t.tls_handshake)); break;
	case SessionState::proxy_header: deadline.start(static_cast<double>(t.tls_handshake)); break;
	case SessionState::auth_exchange: deadline.start(static_cast<double>(t.command)); break;
	}
}

void Connection::enter_state(SessionState next) {
	TERN_ASSERT(next != SessionState::data || data, "DATA and BDAT have their temp file state");
	state = next;
}

void Connection::stall_then_reply(double seconds, Outcome outcome) {
	stall_then(seconds, [outcome = std::move(outcome)](Connection& c) { c.apply(outcome); });
}

void Connection::stall_then(double seconds, std::function<void(Connection&)> cont) {
	enter_state(SessionState::waiting);
	flags.awaiting_completion = true;
	stalled = std::move(cont);
	flush();
	deadline.start(seconds);
}

void Connection::on_slow_tick() {
	// A byte went out: the client is reading, so its deadline starts over
	// (the model sets its deadline at every write).
	if (state != SessionState::waiting && state != SessionState::tls_handshake) arm_deadline();
	flush();
	if (dead) return;
	// The whole reply is out: the next buffered line may be taken.
	if (outbuf.empty() && !inbuf.empty()) process_input();
	if (!dead) update_watchers();
}

void Connection::on_deadline() {
	if (state == SessionState::waiting && stalled) {
		auto cont = std::move(stalled);
		stalled = nullptr;
		flags.awaiting_completion = false;
		enter_state(SessionState::command);
		resume([&] { cont(*this); });
		return;
	}
	if (state == SessionState::closing || state == SessionState::tls_handshake ||
	    state == SessionState::proxy_header) {
		close_now(state == SessionState::closing ? "timeout flushing final reply" : "tls handshake timeout");
		return;
	}
	// A job that never completed: its completion, should it come, finds
	// nothing to resume.
	flags.awaiting_completion = false;
	log::event(log::Level::info, cid, "timeout",
	           {{"state",
	             state == SessionState::data          ? "data"
	                 : state == SessionState::waiting ? "waiting"
	                                                  : "command"}});
	// RFC 5321 4.5.3.2: the server may close after a timeout; tell the
	// client why, as Postfix and OpenSMTPD do.
	apply(smtp::error_reply(421, smtp::se::net_bad_connection2, "timeout, closing connection")
	          .without_id()
	          .then_close());
	flush();
	update_watchers();
}

// ---- input ----

void Connection::on_io(int revents) {
	if (state == SessionState::tls_handshake) {
		continue_handshake();
		if (!dead) update_watchers();
		return;
	}
	// Output goes first whatever woke us: a TLS write may have waited for
	// the stream to become readable.
	if ((revents & EV_WRITE) || !outbuf.empty()) {
		flush();
		if (dead) return;
		// Output drained below the limit: commands buffered while it was
		// full continue now (nothing may arrive from the client to wake us).
		if (outbuf.size() < max_pending_output && !inbuf.empty()) process_input();
	}
	if (!dead && ((revents & EV_READ) || ((revents & EV_WRITE) && transport.read_waits_for_write())))
		read_available();
	if (!dead) update_watchers();
}

void Connection::read_available() {
	if (eof) return;
	net::IoStatus st = transport.read_into(inbuf, srv.scratch(), Server::scratch_size);
	switch (st) {
	case net::IoStatus::ok:
		if (state == SessionState::data) arm_deadline();  // per-chunk deadline
		break;
	case net::IoStatus::closed: eof = true; break;
	case net::IoStatus::error: close_now(transport.last_error()); return;
	case net::IoStatus::want_read:
	case net::IoStatus::want_write:
		// Nothing new; a TLS read that waits for our output is retried when
		// the stream is writable (the transport's interest says so).
		if (!transport.tls()) return;
		break;
	}
	process_input();
}

void Connection::start_tls() {
	tls_pending_start = false;
	auto ctx = srv.tls_context();
	if (!ctx) {
		close_now("no tls context");
		return;
	}
	// RFC 3207 5 / doc/behaviour.md §4: bytes the client sent after
	// STARTTLS belong to the handshake, never to the plaintext session.
	transport.start_server_tls(std::move(ctx), inbuf);
	std::string().swap(inbuf);
	state = SessionState::tls_handshake;
	arm_deadline();
	continue_handshake();
	if (!dead) update_watchers();
}

void Connection::continue_handshake() {
	net::IoStatus st = transport.handshake();
	if (st == net::IoStatus::want_read || st == net::IoStatus::want_write) return;
	if (st != net::IoStatus::ok) {
		log::event(log::Level::info, cid, "tls handshake failed",
		           {{"error",
		             st == net::IoStatus::closed ? std::string("connection closed") : transport.last_error()}});
		close_now("tls handshake failed");
		return;
	}
	tls = true;
	state = SessionState::command;
	log::event(log::Level::debug, cid, "tls handshake done", {{"tls", transport.tls()->received_comment()}});
	// RFC 3207 4.2: after the handshake the session starts over.
	hello.reset();
	ehlo = false;
	username.clear();
	rset();
	if (service == net::Service::submissions && !greeted) {
		// Implicit TLS: now the accept-path checks and the greeting.
		greeted = true;
		begin_session();
		if (dead) return;
	} else {
		// A SIGTERM during the handshake: the 421 goes inside TLS.
		shutdown_if_idle();
		arm_deadline();
		flush();
		if (dead) return;
	}
	// Application data may have arrived with the last handshake record.
	if (transport.has_buffered_input()) read_available();
}

void Connection::process_input() {
	// The TLS upgrade inside a flush can read and come back here: that
	// must not start a second, nested input loop. (Completions never run
	// inside a command: suspend posts them to the loop.)
	if (flags.in_process_input) return;
	flags.in_process_input = true;
	process_input_loop();
	flags.in_process_input = false;
}

void Connection::process_input_loop() {
	while (!dead) {
		// RFC 3207 4.2: nothing the client sent after STARTTLS is a command
		// of the plaintext session; the handshake gets those bytes once the
		// 220 is out (start_tls).
		if (tls_pending_start) break;
		if (state == SessionState::proxy_header) {
			read_proxy_header();
			if (state == SessionState::proxy_header) break;
			continue;
		}
		if (state == SessionState::data) {
			if (inbuf.empty()) break;
			data->chunked ? feed_chunk() : feed_data();
			continue;
		}
		if (state != SessionState::command && state != SessionState::auth_exchange) break;
		// Slow mode: the next line waits until the last reply is out.
		if (slow_pace() && !outbuf.empty()) break;
		if (outbuf.size() >= max_pending_output) {
			// Backpressure: hand the replies to the socket first. When it
			// takes them, the buffered commands continue right here: a
			// client that already sent everything sends nothing more to
			// wake us up.
			flush();
			if (dead || outbuf.size() >= max_pending_output) break;
			continue;
		}
		size_t nl = inbuf.find('\n');
		if (nl == std::string::npos ? inbuf.size() >= smtp::max_command_line : nl >= smtp::max_command_line) {
			// The refusal answers the client's line, whatever it was.
			cmd = "(unknown)";
			cmd_start = command_clock();
			apply(smtp::replies::line_too_long());
			break;
		}
		if (nl == std::string::npos) break;
		std::string line(inbuf, 0, nl);
		inbuf.erase(0, nl + 1);
		if (!line.empty() && line.back() == '\r') line.pop_back();
		bool sasl_line = state == SessionState::auth_exchange;
		if (sasl_line && log::enabled(log::Level::trace))
			log::event(log::Level::trace, cid,
			           log::enabled(log::Level::traceauth) ? "RC: " + line : "RC: ***");
		if (slow_pace()) {
			// Slow mode: each line read waits before it is handled (the
			// model sleeps before every read); the loop serves others
			// meanwhile.
			stall_then(bad_client_delay(), [line, sasl_line](Connection& c) {
				if (!sasl_line) {
					c.apply(c.handle_line(line));
					return;
				}
				c.enter_state(SessionState::auth_exchange);
				c.apply(c.auth_line(line));
			});
		} else if (sasl_line) {
			apply(auth_line(line));
		} else {
			apply(handle_line(line));
		}
		if (state == SessionState::command) arm_deadline();
	}
	if (!dead) end_input_pass();
}

// After the buffered commands are handled: the peer's end, the replies of
// a pipelined batch, the watchers.
void Connection::end_input_pass() {
	if (eof && state != SessionState::closing) {
		// The peer closed: whatever it had sent is handled; a DATA without
		// its end dot is dropped (never delivered).
		if (state == SessionState::waiting) {
			// Let the running job finish; its completion sees eof and closes.
			return;
		}
		// A client that half-closes after its last command still gets the
		// replies to it (e.g. commands piped into nc); then we close.
		close_after_flush();
		flush();
		if (!dead) update_watchers();
		return;
	}
	if (inbuf.empty()) std::string().swap(inbuf);
	// Replies to a pipelined batch go out together: flush when no further
	// complete command is buffered (doc/behaviour.md §0).
	if (state != SessionState::command || inbuf.find('\n') == std::string::npos ||
	    outbuf.size() >= max_pending_output || slow_pace())
		flush();
	if (!dead) update_watchers();
}

Outcome Connection::handle_line(std::string_view line) {
	auto [verb, args] = smtp::split_command(line);
	if (log::enabled(log::Level::trace)) {
		// AUTH data is secret: shown only at traceauth.
		bool is_auth = !args.empty() && iequals(verb, "auth") && !log::enabled(log::Level::traceauth);
		log::event(log::Level::trace, cid,
		           is_auth ? "RC: " + std::string(verb) + " ***" : "RC: " + std::string(line));
	}
	cmd = smtp::command_verb(verb);
	cmd_start = command_clock();
	return dispatch(cmd, args);
}

void Connection::apply(const Outcome& outcome) {
	// A suspended command left the session waiting on its job or timer; a
	// delegated one has its reply applied by the work it handed over to.
	TERN_ASSERT(outcome.kind() != Outcome::Kind::suspended || state == SessionState::waiting || dead,
	            "a suspended command waits");
	const smtp::SmtpError* r = outcome.reply();
	if (r) write_reply(*r, outcome.verbatim());
	if (auto next = outcome.next_state()) enter_after_reply(*next, r != nullptr);
	if (r && r->close) close_after_flush();
	// The reply that ends a command or DATA in flight at SIGTERM, given at
	// once or after a wait: the 421 follows it.
	if (r) shutdown_if_idle();
}

void Connection::enter_after_reply(SessionState next, bool replied) {
	switch (next) {
	case SessionState::tls_handshake:
		// RFC 3207 4: the handshake starts once the 220 is on the wire (in
		// slow mode, after its last byte): flush() starts it when the
		// output has drained.
		tls_pending_start = true;
		flush();
		return;
	case SessionState::closing: close_after_flush(); return;
	case SessionState::data:
	case SessionState::auth_exchange:
		enter_state(next);
		// The client waits for the 354 or 334 before it sends more.
		if (replied) flush();
		if (!dead) arm_deadline();
		return;
	default: enter_state(next); return;
	}
}

Outcome Connection::dispatch(std::string_view verb, std::string_view args) {
	using Handler = Outcome (Connection::*)(std::string_view);
	struct Entry {
		std::string_view name;
		Handler handler;
	};
	static const Entry table[] = {
	    {"helo", nullptr},
	    {"ehlo", nullptr},
	    {"starttls", &Connection::cmd_starttls},
	    {"auth", &Connection::cmd_auth},
	    {"mail", &Connection::cmd_mail},
	    {"rcpt", &Connection::cmd_rcpt},
	    {"data", &Connection::cmd_data},
	    {"bdat", &Connection::cmd_bdat},
	    {"rset", &Connection::cmd_rset},
	    {"vrfy", nullptr},
	    {"expn", nullptr},
	    {"help", &Connection::cmd_help},
	    {"noop", &Connection::cmd_noop},
	    {"quit", &Connection::cmd_quit},
	};
	const Entry* found = nullptr;
	for (const auto& e : table)
		if (e.name == verb) found = &e;
	// Metrics name a command the server knows, whatever the client sent.
	if (!found) cmd = "(unknown)";
	// A command read after SIGTERM gets the 421 as its answer.
	if (srv.shutting_down()) return shutting_down_reply();
	if (!found) {
		// Probably another protocol (HTTP, ...): stop before its next lines
		// are taken as commands.
		if (ncmds == 0)
			return smtp::error_reply(500, smtp::se::proto_syntax2, "please try again speaking smtp")
			    .without_id()
			    .then_close();
		return smtp::replies::unknown_command();
	}
	++ncmds;
	if (verb == "helo" || verb == "ehlo") return cmd_hello(args, verb == "ehlo");
	if (verb == "vrfy" || verb == "expn") return cmd_vrfy(args, verb == "expn");
	return (this->*(found->handler))(args);
}

void Connection::shutdown_notice() {
	flags.shutdown_requested = true;
	if (shutdown_if_idle()) {
		flush();
		update_watchers();
	}
}

// SPEC "Shutdown": once SIGTERM asked for it, an idle session gets the 421
// and the close. Idle: no command, DATA or TLS handshake in progress (a
// 220 to STARTTLS still on its way starts a handshake, and a 421 behind it
// would reach the client as TLS bytes); a partial command line counts as
// idle, the client has not finished it.
bool Connection::shutdown_if_idle() {
	if (!flags.shutdown_requested || dead || state != SessionState::command || tls_pending_start) return false;
	apply(shutting_down_reply());
	return true;
}

// timeouts_s.shutdown passed with a command or DATA still going on: the
// client still learns why, from one non-blocking write of the 421 after
// whatever output waited, and the connection closes.
void Connection::shutdown_timeout() {
	if (dead) return;
	if (state != SessionState::closing && state != SessionState::tls_handshake && !tls_pending_start) {
		write_reply(shutting_down_reply(), false);
		flush();
	}
	close_now("shutdown timeout");
}

void Connection::finish_command() {
	// A suspended command has replied; continue with buffered input.
	if (dead) return;
	// A continuation may itself have suspended again (e.g. AUTH's secret
	// lookup after a delay): then the session keeps waiting.
	if (state == SessionState::waiting && !flags.awaiting_completion) enter_state(SessionState::command);
	shutdown_if_idle();
	if (state == SessionState::command || state == SessionState::closing || state == SessionState::auth_exchange)
		arm_deadline();
	process_input();
	if (!dead) {
		flush();
		update_watchers();
	}
}

}  // namespace tern::server
