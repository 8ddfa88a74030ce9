// The milter client of a session (see milter.h), and the session hooks that
// call it: EHLO/HELO, MAIL, RCPT and the end of DATA/BDAT.
#include "server/milter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "milter/rewrite.h"
#include "net/connect.h"
#include "net/transport.h"
#include "server/message_file.h"
#include "server/server.h"
#include "server/session.h"
#include "server/suspend.h"
#include "util/ipaddr.h"
#include "util/log.h"
#include "util/unique_fd.h"

namespace tern::server {

namespace {

// Replies of Postfix and sendmail for a milter's reject and tempfail.
smtp::SmtpError milter_refusal(const MilterVerdict& v) {
	bool reject = v.kind == MilterVerdict::Kind::reject;
	if (v.reply.empty()) {
		if (reject) return smtp::SmtpError{550, "7.1", "Command rejected"};
		return smtp::SmtpError{451, "7.1", "Service unavailable - try again later"};
	}
	milter::CustomReply r = milter::parse_custom_reply(v.reply, "7.1");
	if (r.code == 0) r.code = reject ? 550 : 451;
	if (r.text.empty()) r.text = reject ? "Command rejected" : "Service unavailable - try again later";
	return smtp::SmtpError{r.code, r.secode, r.text};
}

const char* stage_name(MilterStage s) {
	switch (s) {
	case MilterStage::hello: return "helo";
	case MilterStage::mail: return "mail";
	case MilterStage::rcpt: return "rcpt";
	case MilterStage::message: return "message";
	}
	return "";
}

const char* kind_name(MilterVerdict::Kind k) {
	switch (k) {
	case MilterVerdict::Kind::pass: return "continue";
	case MilterVerdict::Kind::reject: return "reject";
	case MilterVerdict::Kind::tempfail: return "tempfail";
	case MilterVerdict::Kind::discard: return "discard";
	}
	return "";
}

// A message's header section is read at most this far; the rest is body.
constexpr size_t max_header_read = 1024 * 1024;
// Body chunks queued for one milter before its socket takes them.
constexpr size_t max_queued_output = 256 * 1024;

// Tells a worker's completion from a later read of the same session (loop
// thread only).
uint64_t next_read_token = 0;

}  // namespace

// The message of one message stage: opened, measured and its head (the
// whole message up to max_header_read) read on a worker; later body chunks
// are read from `file` on a worker too. Shared with the jobs that read it,
// so the descriptor stays open until the last of them is done.
struct MilterSession::OpenedMessage {
	std::optional<MessageFile> file;
	uint64_t size = 0;
	std::string head;
	milter::MessageParts parts;
	int error = 0;  // errno of the open, fstat or read that failed
	// Worker side.
	void load(const std::string& path) {
		file.emplace(path);
		if (!file->ok()) {
			error = file->open_error;
			return;
		}
		std::optional<uint64_t> measured = file->size();
		if (!measured) {
			error = errno;
			return;
		}
		size = *measured;
		head.resize(std::min<uint64_t>(size, max_header_read));
		ssize_t n = file->read_at(head.data(), head.size(), 0);
		if (n < 0) {
			error = errno;
			return;
		}
		head.resize(static_cast<size_t>(n));
		parts = milter::split_message(head);
	}
};

struct MilterSession::Link {
	Link(struct ev_loop* loop, const config::Milter& m, core::IoWatcher::Callback on_io,
	     core::TimerWatcher::Callback on_timer)
		: cfg(m), io(loop, std::move(on_io)), timer(loop, std::move(on_timer)) {}
	~Link() {
		io.stop();
		timer.stop();
	}
	enum class State { closed, connecting, negotiating, ready, failed };
	config::Milter cfg;
	core::IoWatcher io;
	core::TimerWatcher timer;
	// The connection to the milter (doc/design.md "The transport"), while
	// it is open.
	std::unique_ptr<net::Transport> transport;
	State state = State::closed;
	milter::Conversation conv;
	std::string out;            // bytes for the milter not yet written
	bool skip_session = false;  // accepted the connection: never asked again
	bool skip_message = false;  // accepted this message
	bool in_stage = false;      // working on the current stage
	// Message stage: where the body stands.
	uint64_t body_pos = 0;
	bool end_sent = false;
	uint64_t read_token = 0;  // a body chunk being read on a worker, 0 when none
};

MilterSession::MilterSession(Server& srv, core::ConnHandle conn, uint64_t cid,
                             const std::vector<config::Milter>& milters, milter::ConnectInfo client,
                             milter::Macros connect_macros, uint64_t max_message_size)
	: srv_(srv), conn_(conn), cid_(cid), client_(std::move(client)), connect_macros_(std::move(connect_macros)),
	  // The verdict goes to the session from its own callback (see milter.h);
	  // the timer belongs to this object, so it fires only while it lives.
	  finish_timer_(srv.loop(), [this] { on_finish(); }) {
	for (size_t i = 0; i < milters.size(); ++i) {
		Server* s = &srv;
		links_.push_back(std::make_unique<Link>(
		    srv.loop(), milters[i],
		    [s, conn, i](int revents) {
			    s->with_conn(conn, [&](Connection& c) {
				    if (c.milters) c.milters->on_io(i, revents);
			    });
		    },
		    [s, conn, i] {
			    s->with_conn(conn, [&](Connection& c) {
				    if (c.milters) c.milters->on_timeout(i);
			    });
		    }));
		links_.back()->conv.limit_new_body(max_message_size);
	}
}

MilterSession::~MilterSession() {
	close_message();
	for (auto& l : links_) {
		// A polite QUIT when the milter is idle; never a wait.
		if (l->transport && l->state == Link::State::ready && l->out.empty()) {
			std::string quit = milter::encode_packet(milter::command::quit, {});
			size_t n = 0;
			(void)l->transport->write(quit.data(), quit.size(), n);
		}
	}
}

bool MilterSession::take_pass(MilterStage stage) {
	if (pass_ != stage) return false;
	pass_.reset();
	return true;
}

void MilterSession::run(MilterRequest request, Done done) {
	if (current_ || finished_) {
		// HELO stages do not hold the session up: a newer one replaces one
		// not yet sent, so a client that pipelines EHLOs cannot pile up
		// work for the loop (the milters see the name that stands).
		if (request.stage == MilterStage::hello && !done && !waiting_.empty() &&
		    waiting_.back().first.stage == MilterStage::hello && !waiting_.back().second) {
			waiting_.back().first = std::move(request);
			return;
		}
		waiting_.emplace_back(std::move(request), std::move(done));
		return;
	}
	current_ = std::move(request);
	done_ = std::move(done);
	index_ = 0;
	verdict_ = MilterVerdict{};
	MilterStage stage = current_->stage;
	if (stage == MilterStage::mail) {
		discard_message_ = false;
		for (auto& l : links_) l->skip_message = false;
	}
	if (stage != MilterStage::hello && session_refusal_) {
		finish(*session_refusal_);
		return;
	}
	if ((stage == MilterStage::rcpt || stage == MilterStage::message) && discard_message_) {
		verdict_.kind = MilterVerdict::Kind::discard;
		verdict_.milter = message_discarded_by_;
		finish(verdict_);
		return;
	}
	if (stage == MilterStage::message) {
		open_message();  // the milters are asked once it is read
		return;
	}
	next_link();
}

// Opens the received message and reads its header section for the milters,
// on a worker: a read can wait on the disk, the loop must not.
void MilterSession::open_message() {
	auto file = std::make_shared<OpenedMessage>();
	uint64_t token = message_token_ = ++next_read_token;
	Server* s = &srv_;
	srv_.workers().submit([file, path = current_->message_path] { file->load(path); },
	                      [s, conn = conn_, file, token] {
				      s->with_conn(conn, [&](Connection& c) {
					      if (c.milters) c.milters->message_opened(token, file);
				      });
			      });
}

void MilterSession::message_opened(uint64_t token, const std::shared_ptr<OpenedMessage>& file) {
	if (token == 0 || token != message_token_ || !current_) return;
	message_token_ = 0;
	if (file->error != 0) {
		log::event(log::Level::error, cid_, "milter: cannot read the message",
		           {{"error", std::strerror(file->error)}});
		// The message cannot be read: as if every milter were down.
		for (auto& l : links_)
			if (l->cfg.tempfail_when_down && !l->skip_session && l->state != Link::State::failed) {
				verdict_.kind = MilterVerdict::Kind::tempfail;
				break;
			}
		finish(verdict_);
		return;
	}
	message_ = file;
	next_link();
}

void MilterSession::close_message() {
	message_.reset();
	message_token_ = 0;
	for (auto& l : links_) l->read_token = 0;
}

void MilterSession::next_link() {
	MilterStage stage = current_->stage;
	while (index_ < links_.size()) {
		Link& l = *links_[index_];
		if (l.state == Link::State::failed || l.skip_session ||
		    (l.skip_message && stage != MilterStage::hello)) {
			++index_;
			continue;
		}
		l.in_stage = true;
		if (l.state == Link::State::closed)
			start_link(l);
		else
			begin_stage(l);
		return;
	}
	finish(verdict_);
}

// Connects without waiting; OPTNEG goes out once the socket is writable.
void MilterSession::start_link(Link& l) {
	net::OutgoingStream out = net::connect_stream(l.cfg.path, l.cfg.ip, l.cfg.port);
	if (!out.stream) {
		link_failed(l, out.error);
		return;
	}
	l.transport = std::make_unique<net::Transport>(std::move(out.stream));
	l.state = Link::State::connecting;
	watch(l);
	arm_timer(l);
}

void MilterSession::begin_stage(Link& l) {
	const MilterRequest& r = *current_;
	milter::Conversation& c = l.conv;
	switch (r.stage) {
	case MilterStage::hello: c.queue_helo(r.argument, r.macros); break;
	case MilterStage::mail: {
		// A message the milter saw begin but not end (RSET, refused RCPTs).
		c.queue_abort();
		std::vector<std::string> args{r.argument};
		args.insert(args.end(), r.esmtp.begin(), r.esmtp.end());
		c.queue_mail(args, r.macros);
		break;
	}
	case MilterStage::rcpt: c.queue_rcpt({r.argument}, r.macros); break;
	case MilterStage::message:
		c.queue_message_start(message_->parts.headers, r.macros);
		l.body_pos = message_->parts.body_offset;
		l.end_sent = false;
		l.read_token = 0;
		break;
	}
	pump(l);
}

// Writes what the conversation has for the milter, feeds the body, and
// notices the end of a stage that needs no further reply.
void MilterSession::pump(Link& l) {
	if (l.state != Link::State::ready) return;
	milter::Conversation& c = l.conv;
	l.out += c.take_output();
	bool message = current_ && current_->stage == MilterStage::message && l.in_stage;
	while (message && !l.end_sent && l.read_token == 0 && c.idle() && l.out.size() < max_queued_output) {
		feed_body(l);
		l.out += c.take_output();
	}
	flush(l);
	if (l.state != Link::State::ready) return;
	if (l.in_stage && c.idle() && (!message || l.end_sent)) {
		link_done(l, std::nullopt);
		return;
	}
	arm_timer(l);
}

void MilterSession::feed_body(Link& l) {
	if (l.conv.body_skipped() || l.body_pos >= message_->size) {
		queue_end_of_message(l);
		return;
	}
	// Most messages were read whole with the head: no further read.
	const std::string& head = message_->head;
	if (l.body_pos >= head.size()) {
		read_body_chunk(l);
		return;
	}
	size_t n = std::min(milter::max_body_chunk, head.size() - static_cast<size_t>(l.body_pos));
	if (l.conv.queue_body(std::string_view(head).substr(static_cast<size_t>(l.body_pos), n)))
		l.body_pos += n;
	else
		queue_end_of_message(l);
}

void MilterSession::queue_end_of_message(Link& l) {
	l.conv.queue_end_of_message(current_->macros);
	l.end_sent = true;
}

// The body past the head, one chunk at a time (at most one in memory per
// milter), read on a worker like the LMTP client's.
void MilterSession::read_body_chunk(Link& l) {
	uint64_t token = l.read_token = ++next_read_token;
	size_t link = 0;
	while (links_[link].get() != &l) ++link;
	auto chunk = std::make_shared<std::string>();
	auto error = std::make_shared<int>(0);
	Server* s = &srv_;
	srv_.workers().submit(
	    [file = message_, chunk, error, offset = l.body_pos] {
		    chunk->resize(milter::max_body_chunk);
		    ssize_t n = file->file->read_at(chunk->data(), chunk->size(), offset);
		    // Nothing where the file had bytes: it is shorter than it was.
		    *error = n < 0 ? errno : n == 0 ? EIO : 0;
		    chunk->resize(n > 0 ? static_cast<size_t>(n) : 0);
	    },
	    [s, conn = conn_, link, token, chunk, error] {
		    s->with_conn(conn, [&](Connection& c) {
			    if (c.milters) c.milters->body_chunk_read(link, token, *chunk, *error);
		    });
	    });
}

void MilterSession::body_chunk_read(size_t link, uint64_t token, const std::string& chunk, int error) {
	if (link >= links_.size() || token == 0 || links_[link]->read_token != token) return;
	Link& l = *links_[link];
	l.read_token = 0;
	if (l.state != Link::State::ready || !is_current(l) || !message_) return;
	if (error != 0) {
		// A milter must not judge (or sign) a body cut short.
		link_failed(l, std::string("reading the message: ") + std::strerror(error));
		return;
	}
	if (l.conv.queue_body(chunk))
		l.body_pos += chunk.size();
	else
		queue_end_of_message(l);
	pump(l);
}

void MilterSession::flush(Link& l) {
	if (!l.out.empty()) {
		size_t n = 0;
		net::IoStatus st = l.transport->write(l.out.data(), l.out.size(), n);
		l.out.erase(0, n);
		if (st == net::IoStatus::closed || st == net::IoStatus::error) {
			link_failed(l, "write: " + l.transport->last_error());
			return;
		}
	}
	watch(l);
}

void MilterSession::watch(Link& l) {
	int events = EV_WRITE;  // a connect in progress ends with the socket writable
	if (l.state != Link::State::connecting) {
		// Always readable: an answer, garbage, or the milter hanging up.
		net::Transport::Interest interest = l.transport->interest(true, !l.out.empty());
		events = (interest.read ? EV_READ : 0) | (interest.write ? EV_WRITE : 0);
	}
	l.io.set(l.transport->fd(), events);
}

void MilterSession::on_io(size_t i, int revents) {
	if (i >= links_.size()) return;
	Link& l = *links_[i];
	if (!l.transport) return;
	if (l.state == Link::State::connecting) {
		if (std::string error = net::connect_result(l.transport->stream()); !error.empty()) {
			link_failed(l, error);
			return;
		}
		l.state = Link::State::negotiating;
		l.out += l.conv.take_output();  // OPTNEG
		flush(l);
		arm_timer(l);
		return;
	}
	if (revents & EV_READ) read(l);
	if (l.transport && (revents & EV_WRITE)) {
		flush(l);
		if (l.state == Link::State::ready) pump(l);
	}
}

void MilterSession::read(Link& l) {
	char scratch[16384];
	for (;;) {
		std::string input;
		net::IoStatus st = l.transport->read_into(input, scratch, sizeof scratch);
		if (st == net::IoStatus::want_read || st == net::IoStatus::want_write) return;
		if (st != net::IoStatus::ok) {
			link_failed(l,
			            st == net::IoStatus::closed ? "milter closed the connection"
			                                        : "read: " + l.transport->last_error());
			return;
		}
		// Any answer (SMFIR_PROGRESS too) gives the milter its time again.
		arm_timer(l);
		milter::Step s = l.conv.on_bytes(input);
		while (s.outcome != milter::Outcome::pending) {
			handle(l, s);
			if (!l.transport || l.state == Link::State::failed) return;
			s = l.conv.on_bytes({});
		}
	}
}

void MilterSession::handle(Link& l, const milter::Step& s) {
	using milter::Outcome;
	switch (s.outcome) {
	case Outcome::pending: return;
	case Outcome::negotiated:
		l.state = Link::State::ready;
		// A new milter connection starts with CONNECT, then the stage.
		l.conv.queue_connect(client_, connect_macros_);
		if (l.in_stage) begin_stage(l);
		return;
	case Outcome::next: pump(l); return;
	case Outcome::failed: link_failed(l, "protocol error: " + s.error); return;
	default: link_done(l, s.outcome, s.reply); return;
	}
}

void MilterSession::on_timeout(size_t i) {
	if (i >= links_.size()) return;
	Link& l = *links_[i];
	link_failed(l,
	            l.state == Link::State::connecting || l.state == Link::State::negotiating
	                ? "timeout connecting"
	                : "timeout waiting for the milter");
}

void MilterSession::arm_timer(Link& l) {
	const config::Milter& m = l.cfg;
	int64_t ms = 0;
	if (l.state == Link::State::connecting || l.state == Link::State::negotiating)
		ms = m.connect_timeout_ms;
	else if (l.conv.awaiting_reply())
		ms = l.end_sent ? m.end_of_message_timeout_ms : m.command_timeout_ms;
	else if (!l.out.empty())
		ms = m.command_timeout_ms;  // a milter that stops reading
	if (ms > 0)
		l.timer.start(static_cast<double>(ms) / 1000.0);
	else
		l.timer.stop();
}

bool MilterSession::is_current(const Link& l) const {
	return current_ && !finished_ && index_ < links_.size() && links_[index_].get() == &l && l.in_stage;
}

// The milter answered the stage: `verdict` is empty for "continue".
void MilterSession::link_done(Link& l, std::optional<milter::Outcome> verdict, std::string reply) {
	using milter::Outcome;
	if (!is_current(l)) return;
	l.in_stage = false;
	arm_timer(l);
	MilterStage stage = current_->stage;
	bool connection_level = stage == MilterStage::hello;
	auto decide = [&](MilterVerdict::Kind kind) {
		MilterVerdict v;
		v.kind = kind;
		v.reply = std::move(reply);
		v.milter = l.cfg.address;
		log::event(log::Level::info, cid_, "milter verdict",
		           {{"milter", l.cfg.address}, {"stage", stage_name(stage)}, {"verdict", kind_name(kind)}});
		return v;
	};
	if (!verdict || *verdict == Outcome::accept) {
		if (stage == MilterStage::message) {
			for (auto& m : l.conv.take_modifications()) verdict_.modifications.push_back(std::move(m));
		}
		if (verdict) (connection_level ? l.skip_session : l.skip_message) = true;
		++index_;
		next_link();
		return;
	}
	switch (*verdict) {
	case Outcome::reject:
	case Outcome::tempfail: {
		MilterVerdict v = decide(*verdict == Outcome::reject ? MilterVerdict::Kind::reject
		                                                     : MilterVerdict::Kind::tempfail);
		if (connection_level) {
			// Refusals of the connection or HELO are given at MAIL, as
			// Postfix does with smtpd_delay_reject.
			session_refusal_ = v;
			finish(MilterVerdict{});
			return;
		}
		finish(std::move(v));
		return;
	}
	case Outcome::discard:
		if (connection_level) {
			// Discard is a message verdict; at connect/HELO it drops every
			// message of the session.
			l.skip_session = true;
			discard_session_ = true;
			session_discarded_by_ = l.cfg.address;
			++index_;
			next_link();
			return;
		}
		discard_message_ = true;
		message_discarded_by_ = l.cfg.address;
		finish(decide(MilterVerdict::Kind::discard));
		return;
	default: break;
	}
	++index_;
	next_link();
}

void MilterSession::link_failed(Link& l, const std::string& why) {
	log::event(log::Level::info, cid_, "milter failed",
	           {{"milter", l.cfg.address},
	            {"error", why},
	            {"default_action", l.cfg.tempfail_when_down ? "tempfail" : "accept"}});
	bool current = is_current(l);
	l.io.stop();
	l.timer.stop();
	l.transport.reset();  // closes the connection
	l.out.clear();
	l.state = Link::State::failed;
	l.in_stage = false;
	l.read_token = 0;
	if (l.cfg.tempfail_when_down) {
		MilterVerdict v;
		v.kind = MilterVerdict::Kind::tempfail;
		v.milter = l.cfg.address;
		// Every later command of the session gets 451 4.7.1 (Postfix's
		// milter_default_action = tempfail).
		session_refusal_ = v;
		if (current) finish(current_->stage == MilterStage::hello ? MilterVerdict{} : v);
		return;
	}
	if (current) {
		++index_;
		next_link();
	}
}

void MilterSession::finish(MilterVerdict v) {
	if (discard_session_ && v.kind == MilterVerdict::Kind::pass && current_ &&
	    current_->stage != MilterStage::hello) {
		v.kind = MilterVerdict::Kind::discard;
		v.milter = session_discarded_by_;
	}
	finished_ = std::move(v);
	finish_timer_.start(0);
}

void MilterSession::on_finish() {
	if (!finished_) return;
	MilterVerdict v = std::move(*finished_);
	finished_.reset();
	Done done = std::move(done_);
	done_ = nullptr;
	current_.reset();
	close_message();
	if (!waiting_.empty()) {
		auto [request, next_done] = std::move(waiting_.front());
		waiting_.erase(waiting_.begin());
		run(std::move(request), std::move(next_done));
	}
	// Caution: the continuation may end the connection and this object.
	if (done) done(std::move(v));
}

// ---- the session hooks ----

namespace {

milter::Macros common_macros(const Connection& c) {
	milter::Macros m{{"j", c.global_hostname()}, {"{daemon_name}", std::string(net::service_name(c.service))}};
	if (!c.username.empty()) m.emplace_back("{auth_authen}", c.username);
	return m;
}

}  // namespace

// EHLO/HELO: the first one opens the milter connections; CONNECT and HELO
// run in the background, their refusals wait for MAIL.
void Connection::milter_hello() {
	if (listener().milters.empty()) return;
	if (!milters) {
		milter::ConnectInfo client;
		// The verified reverse name when the iprev lookup started with the
		// session has passed by now, as Postfix passes it (scoring milters
		// read "[ip]" as a client without one); else the address literal.
		client.hostname = remote_ip.to_literal();
		if (early_iprev && early_iprev->ready())
			early_iprev->get([&client](const mailauth::IprevResult& r) {
				if (r.status == mailauth::IprevStatus::pass && !r.name.empty())
					client.hostname = r.name;
			});
		client.family = remote_ip.v6 ? '6' : '4';
		client.port = remote_port;
		client.address = remote_ip.to_string();
		milter::Macros macros = common_macros(*this);
		macros.emplace_back("_", client.hostname);
		macros.emplace_back("{client_addr}", client.address);
		macros.emplace_back("{client_name}", client.hostname);
		macros.emplace_back("{client_port}", std::to_string(remote_port));
		macros.emplace_back("{daemon_addr}", local_ip.to_string());
		macros.emplace_back("v", "tern " TERN_VERSION);
		milters = std::make_unique<MilterSession>(srv, self, cid, listener().milters, std::move(client),
		                                          std::move(macros),
		                                          static_cast<uint64_t>(listener().max_message_size));
	}
	MilterRequest r;
	r.stage = MilterStage::hello;
	r.argument = hello->ip ? hello->ip->to_literal() : hello->domain.ascii;
	if (tls_session()) r.macros.emplace_back("{tls_version}", "TLSv1.2");
	milters->run(std::move(r), nullptr);
}

bool Connection::milter_check(MilterStage stage, std::string argument, std::function<Outcome(Connection&)> again) {
	if (!milters) return false;
	// The second pass of the command, after the milters let it through.
	if (milters->take_pass(stage)) return false;
	MilterRequest r;
	r.stage = stage;
	r.argument = std::move(argument);
	r.macros = common_macros(*this);
	r.macros.emplace_back("i", received_id());
	if (stage == MilterStage::mail) {
		r.macros.emplace_back("{mail_addr}", r.argument.substr(1, r.argument.size() - 2));
	} else {
		r.macros.emplace_back("{rcpt_addr}", r.argument.substr(1, r.argument.size() - 2));
	}
	milters->run(std::move(r),
	             suspend([stage, again = std::move(again)](Connection& c, MilterVerdict v) -> Outcome {
			     if (v.kind == MilterVerdict::Kind::reject || v.kind == MilterVerdict::Kind::tempfail)
				     return milter_refusal(v);
			     // A discard drops the message at its end; the command goes on.
			     if (c.milters) c.milters->set_pass(stage);
			     return again(c);
		     }));
	return true;
}

bool Connection::milter_check_message(std::function<void(Connection&)> then) {
	if (!milters) return false;
	MilterRequest r;
	r.stage = MilterStage::message;
	r.message_path = data->path;
	r.macros = common_macros(*this);
	r.macros.emplace_back("i", received_id());
	milters->run(std::move(r), suspend([then = std::move(then)](Connection& c, MilterVerdict v) {
			     c.milter_message_verdict(std::move(v), then);
		     }));
	return true;
}

// Worker side of the milters' header and body changes: the message at
// `path` rewritten into `rewritten`, which then replaces it. Returns what
// failed ("" when all went well; `rewritten` is gone then either way).
static std::string rewrite_message_file(const std::string& path, const std::string& rewritten,
                                        const std::vector<milter::Modification>& mods, int64_t& size) {
	std::ifstream in(path, std::ios::binary);
	std::string message((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	if (!in && !in.eof()) return "reading the message";
	std::string out = milter::apply_modifications(message, mods);
	std::ofstream f(rewritten, std::ios::binary | std::ios::trunc);
	f.write(out.data(), static_cast<std::streamsize>(out.size()));
	f.close();
	std::string error;
	if (!f)
		error = "writing the changed message";
	else if (std::rename(rewritten.c_str(), path.c_str()) != 0)
		error = std::string("rename: ") + std::strerror(errno);
	if (!error.empty()) ::unlink(rewritten.c_str());
	size = static_cast<int64_t>(out.size());
	return error;
}

// Quarantine and envelope changes are not applied: the message is stored
// as usual, and the log says what a milter asked for.
static void log_unapplied_milter_requests(uint64_t cid, const std::vector<milter::Modification>& modifications) {
	using K = milter::Modification::Kind;
	for (const auto& m : modifications) {
		if (m.kind == K::quarantine)
			log::event(log::Level::info, cid, "milter asks to quarantine the message, storing it as usual",
			           {{"reason", m.value}});
		else if (m.kind == K::add_rcpt || m.kind == K::del_rcpt || m.kind == K::change_from)
			log::event(log::Level::info, cid, "milter envelope change ignored",
			           {{"change",
			             m.kind == K::add_rcpt       ? "add_rcpt"
			                 : m.kind == K::del_rcpt ? "del_rcpt"
			                                         : "change_from"},
			            {"address", m.name}});
	}
}

void Connection::milter_message_verdict(MilterVerdict v, const std::function<void(Connection&)>& then) {
	switch (v.kind) {
	case MilterVerdict::Kind::reject:
	case MilterVerdict::Kind::tempfail:
		// The message is refused: nothing of it stays.
		refuse_message(milter_refusal(v));
		return;
	case MilterVerdict::Kind::discard:
		// The client is told the message was taken (that is what discard
		// means); it is dropped and logged.
		log::event(log::Level::info, cid, "message discarded by milter", {{"milter", v.milter}});
		abort_data_file();
		rset();
		++tx_good;
		--tx_bad;
		apply(Outcome::reply(250, "2.0", "it is done"));
		return;
	case MilterVerdict::Kind::pass: break;
	}
	log_unapplied_milter_requests(cid, v.modifications);
	if (!milter::changes_message(v.modifications)) {
		then(*this);
		return;
	}
	// The header and body changes: the file is rewritten on a worker (reads
	// and writes of a whole message do not belong on the loop), and renamed
	// over the received file there too, before anything is stored or signed.
	std::string path = data->path;
	std::string rewritten = path + ".milter";
	auto mods = std::make_shared<std::vector<milter::Modification>>(std::move(v.modifications));
	auto error = std::make_shared<std::string>();
	auto size = std::make_shared<int64_t>(0);
	// The session gone or timed out removed its file, maybe before the
	// rename put the changed copy there: the changed copy goes too.
	auto cont = suspend_owning_file(path, [error, size, then](Connection& c) {
		if (!error->empty()) {
			log::event(log::Level::error, c.cid, "applying milter changes", {{"error", *error}});
			c.refuse_message(smtp::error_reply(451, "3.0", "error applying milter changes"));
			return;
		}
		// The queue records the size of the file it takes.
		if (c.data) c.data->rewritten_size = *size;
		then(c);
	});
	srv.workers().submit(
	    [path, rewritten, mods, error, size] { *error = rewrite_message_file(path, rewritten, *mods, *size); },
	    std::move(cont));
}

}  // namespace tern::server
