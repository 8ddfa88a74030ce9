// The session's view of the outbound queue. The queue layer sits above the
// server layer (doc/design.md), so the session talks to it through this
// interface, which src/queue implements and ternd wires in.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tern::server {

struct OutboundRecipient {
	std::string to;          // forward path, "local@domain"
	std::string domain;      // ASCII domain of `to` (or the IP literal)
	std::string prefix;      // header lines written before the message for this copy
	uint8_t notify = 0;      // RFC 3461 4.1 NOTIFY bits (smtp::DsnNotify), 0 = not given
	std::string orcpt = {};  // RFC 3461 4.2 ORCPT, "type;address" decoded ("" = none)
};

struct OutboundMessage {
	std::string sender_account;  // "" for DSNs
	std::string from;            // reverse path, "" = null
	bool has_8bit = false;
	bool smtputf8 = false;
	std::string message_id;    // without <>
	std::string message_path;  // temp file with the message (after the prefix); the queue takes it over
	int64_t message_size = 0;  // bytes in message_path
	std::vector<OutboundRecipient> recipients;
	// Also record these recipients in the account's outgoing history (the
	// daily limits, doc/behaviour.md §8), in the same transaction.
	bool record_outgoing = false;
	std::string dsn_utf8;     // optional UTF-8 variant (DSNs only)
	std::string dsn_ret;      // RFC 3461 4.3: "FULL", "HDRS" or "" (not given)
	std::string envid;        // RFC 3461 4.4, decoded ("" = none)
	bool requiretls = false;  // RFC 8689: relay only over verified TLS
};

class OutboundQueue {
public:
	virtual ~OutboundQueue() = default;
	// Makes the message durable: one queue record per recipient plus the
	// message file, fsync'd and committed, on a worker thread. `done` runs on
	// the loop thread with "" on success or an error text; only then may the
	// session answer 250. The queue then delivers (local recipients straight
	// into their Maildir, others by MX or smarthost).
	virtual void enqueue(OutboundMessage msg, std::function<void(std::string error)> done) = 0;
};

}  // namespace tern::server
