// The milter client of one SMTP session: one connection per configured
// milter, opened at the first EHLO/HELO and kept for the session, driven by
// libev like the session itself. The protocol logic is in milter/protocol.h;
// this file moves its bytes, runs the timeouts, and turns the milters'
// answers into one verdict per stage.
//
// Stages run the milters in the listener's order; the first milter that
// rejects, tempfails or discards decides, later ones are not asked. A milter
// that accepts is not asked again for this message (or, at connect/HELO,
// for this session). A milter that cannot be reached, does not answer in
// time or speaks garbage gets its default action: "tempfail" refuses with
// 451 4.7.1 from then on, "accept" leaves it out for the rest of the
// session.
//
// Lifetime: the session object belongs to its Connection; its watchers call
// back through the connection table (Server::with_conn), and the verdict
// reaches the connection from a fresh timer callback, never from inside the
// I/O callback that produced it.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/conn_table.h"
#include "core/watchers.h"
#include "milter/protocol.h"
#include "milter/rewrite.h"

namespace tern::server {

class Server;

enum class MilterStage { hello, mail, rcpt, message };

// What the milters said about one stage.
struct MilterVerdict {
	enum class Kind { pass, reject, tempfail, discard } kind = Kind::pass;
	std::string reply;                                // the milter's own "5xx x.y.z text", or empty
	std::string milter;                               // which milter decided (its address), for logs
	std::vector<milter::Modification> modifications;  // message stage: every milter's changes, in order
};

// What a stage needs from the session.
struct MilterRequest {
	MilterStage stage = MilterStage::hello;
	std::string argument;            // HELO name, or "<address>" for MAIL/RCPT
	std::vector<std::string> esmtp;  // MAIL parameters (BODY=, SMTPUTF8)
	std::string message_path;        // message stage: the received message
	milter::Macros macros;
};

class MilterSession {
public:
	using Done = std::function<void(MilterVerdict)>;

	// `max_message_size`: the listener's limit, which a milter's new body
	// may not exceed.
	MilterSession(Server& srv, core::ConnHandle conn, uint64_t cid, const std::vector<config::Milter>& milters,
	              milter::ConnectInfo client, milter::Macros connect_macros, uint64_t max_message_size);
	~MilterSession();  // QUIT to every open milter, then close
	MilterSession(const MilterSession&) = delete;
	MilterSession& operator=(const MilterSession&) = delete;

	// Runs a stage; `done` runs later from a timer callback (never inside
	// this call). A hello stage runs in the background: pass no `done`, its
	// refusal is kept for the next MAIL. Stages asked while one runs wait
	// their turn; a hello stage not yet begun is replaced by a newer one.
	void run(MilterRequest request, Done done);
	size_t stages_waiting() const { return waiting_.size(); }

	// A connect/HELO refusal (or a default tempfail) that MAIL must get.
	const std::optional<MilterVerdict>& session_refusal() const { return session_refusal_; }

	// The re-entry token of the session hooks: set just before a stage's
	// continuation runs the command again, consumed by that second pass.
	bool take_pass(MilterStage stage);
	void set_pass(MilterStage stage) { pass_ = stage; }

	// Watcher entry points (through Server::with_conn).
	void on_io(size_t link, int revents);
	void on_timeout(size_t link);
	void on_finish();

	// The received message, opened and its head read on a worker.
	struct OpenedMessage;
	// Worker completions (through Server::with_conn); a `token` that is no
	// longer awaited (the stage ended, the link failed) is ignored.
	void message_opened(uint64_t token, const std::shared_ptr<OpenedMessage>& file);
	void body_chunk_read(size_t link, uint64_t token, const std::string& chunk, int error);

private:
	struct Link;
	void next_link();
	void start_link(Link& l);
	void begin_stage(Link& l);
	void pump(Link& l);
	void flush(Link& l);
	// Sets what the link's watcher waits for, from its state and output.
	void watch(Link& l);
	void read(Link& l);
	void handle(Link& l, const milter::Step& step);
	// Queues the next body chunk from the message's head, asks a worker for
	// one past it, or queues the end of the message.
	void feed_body(Link& l);
	void read_body_chunk(Link& l);
	void queue_end_of_message(Link& l);
	void link_done(Link& l, std::optional<milter::Outcome> verdict, std::string reply = {});
	void link_failed(Link& l, const std::string& why);
	void arm_timer(Link& l);
	bool is_current(const Link& l) const;
	void finish(MilterVerdict v);
	void open_message();
	void close_message();

	Server& srv_;
	core::ConnHandle conn_;
	uint64_t cid_;
	milter::ConnectInfo client_;
	milter::Macros connect_macros_;
	std::vector<std::unique_ptr<Link>> links_;
	// The stage in progress and those waiting for it.
	std::optional<MilterRequest> current_;
	Done done_;
	std::vector<std::pair<MilterRequest, Done>> waiting_;
	size_t index_ = 0;       // the milter asked now
	MilterVerdict verdict_;  // being built for the current stage
	core::TimerWatcher finish_timer_;
	std::optional<MilterVerdict> finished_;  // handed to done_ by finish_timer_
	std::optional<MilterVerdict> session_refusal_;
	bool discard_message_ = false;                             // a milter discarded this message at MAIL/RCPT
	bool discard_session_ = false;                             // a milter discarded at connect/HELO: every message
	std::string message_discarded_by_, session_discarded_by_;  // which milter, for the log
	// Message stage: the received message, read for headers and body (the
	// reads run on a worker, never on the loop).
	std::shared_ptr<OpenedMessage> message_;
	uint64_t message_token_ = 0;  // the open in flight, 0 when none
	std::optional<MilterStage> pass_;
};

}  // namespace tern::server
