// The LMTP client on the loop (RFC 2033): one non-blocking connection to a
// unix or TCP LMTP server, one transaction, driven by the pure machine in
// smtp/lmtp_client_protocol.h. The body is streamed from the message file
// (read on a worker, a chunk at a time, never whole in memory) and
// dot-stuffed; every step has a deadline. A connection failure, a deadline
// or a server that closes early gives 451 4.3.0 to each recipient without
// a final reply; nothing else is ever assumed delivered.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/watchers.h"
#include "core/worker_pool.h"
#include "net/transport.h"
#include "smtp/lmtp_client_protocol.h"
#include "util/unique_fd.h"

namespace tern::net {

struct LmtpRequest {
	config::LmtpTarget target;
	smtp::LmtpTransaction transaction;
	std::string prefix;        // header fields sent before the file's bytes
	std::string body_path;     // the message file; opened by lmtp_deliver() itself
	uint64_t body_offset = 0;  // where the message starts in the file
	double timeout_s = 120;    // each step: connect, each reply, each write
	uint64_t log_id = 0;       // cid of log lines
};

// One result per recipient of the transaction, in the same order.
using LmtpDone = std::function<void(std::vector<smtp::LmtpRecipientResult>)>;

// Starts the delivery. The file is opened before this returns, so the
// caller may unlink it right after. `done` runs exactly once, later, on the
// loop (never from inside this call). The client keeps itself alive until
// then; the loop must outlive it.
void lmtp_deliver(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done);

// One delivery. Its bytes go through a net::Transport (doc/design.md "The
// transport"), which owns the buffering of partial writes and says when the
// server is gone. Made with std::make_shared, then started once.
class LmtpClient : public std::enable_shared_from_this<LmtpClient> {
public:
	LmtpClient(struct ev_loop* loop, core::WorkerPool& pool, LmtpRequest request, LmtpDone done);
	~LmtpClient();
	LmtpClient(const LmtpClient&) = delete;
	LmtpClient& operator=(const LmtpClient&) = delete;

	// Opens the message file and connects to the request's target.
	void start();
	// Opens the message file and talks over `stream`, which is already
	// connected (a script in the tests).
	void start_over(std::unique_ptr<ByteStream> stream);

	// The events the client waits for on its stream (EV_READ, EV_WRITE; 0
	// once finished), and where they come in. A stream with a descriptor is
	// watched by the client itself; one without (a script) is pumped by its
	// driver through these two.
	int wanted_io() const { return wanted_io_; }
	void on_io(int revents);

private:
	bool open_body();
	void connect();
	void connected();
	void read_input();
	void after_protocol_step();
	void write_output();
	void request_chunk();
	void chunk_read(const std::string& chunk, int error);
	void update_watch();
	void restart_timer();
	void fail(const std::string& reason);
	void log_failure(const std::string& reason) const;
	void finish();

	struct ev_loop* loop_;
	core::WorkerPool& pool_;
	LmtpRequest request_;
	LmtpDone done_;
	smtp::LmtpClientProtocol protocol_;
	core::IoWatcher io_;
	core::TimerWatcher timer_;
	std::shared_ptr<LmtpClient> self_;  // alive until done has run
	// The open message file, shared with the worker reading from it: it
	// stays open (and readable after an unlink) until the last reader is done.
	std::shared_ptr<UniqueFd> body_;
	std::unique_ptr<Transport> transport_;
	int wanted_io_ = 0;
	bool connecting_ = false;
	bool body_started_ = false;
	bool reading_ = false;
	bool body_eof_ = false;
	uint64_t body_read_ = 0;
	bool finished_ = false;
};

}  // namespace tern::net
