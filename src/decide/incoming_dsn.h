// The DSN for an incoming port-25 message (doc/behaviour.md §13): the
// recipients that failed while others were delivered, and the delivered
// ones whose NOTIFY asked for SUCCESS (RFC 3461 4.1). Facts in, the DSN
// message out; the session signs, writes and queues it.
#pragma once
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "decide/recipient.h"
#include "message/dsn.h"
#include "message/header_parse.h"

namespace tern::decide {

struct IncomingDsnFacts {
	std::vector<Recipient> recipients;  // the transaction's
	std::vector<DeliverError> errors;   // every failed recipient
	// Recipients (display form) whose copy the queue retries (an LMTP copy,
	// doc/behaviour.md §9): not delivered yet, so no success notice; the
	// queue reports them.
	std::vector<std::string> queued;
	std::string mail_from;  // the reverse path, as written in headers (never null here)
	bool smtputf8 = false;
	std::string envid;                         // RFC 3461 4.4 ENVID, decoded ("" = none)
	std::string hostname;                      // the global hostname: Reporting-MTA, Message-Id
	std::string hello;                         // the EHLO name, or the address of its literal, bare
	std::string remote_ip_literal;             // "[192.0.2.1]"
	std::vector<message::HeaderField> fields;  // the original header section
	std::time_t now = 0;
};

// nullopt when the sender's NOTIFY asks for no notice at all (RFC 3461
// 4.1: by default only failures are reported). The Message-Id is new.
std::optional<message::DsnMessage> incoming_dsn(const IncomingDsnFacts& facts);

}  // namespace tern::decide
