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
#include <string>
#include <vector>

#include "config/config.h"
#include "core/worker_pool.h"
#include "smtp/lmtp_client_protocol.h"

struct ev_loop;

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

}  // namespace tern::net
