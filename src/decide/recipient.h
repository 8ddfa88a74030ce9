// Recipient resolution for RCPT TO (doc/behaviour.md §4 RCPT), as a pure
// function of the address, the listener and the config: the session only
// applies the answer. Also the transaction's recipient and its failure
// record, which the other decisions of this layer read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "smtp/parser.h"
#include "smtp/reply.h"

namespace tern::decide {

struct Recipient {
	smtp::Address address;
	bool postmaster = false;  // the bare <POSTMASTER> form
	bool local = false;       // resolves to an account
	std::string account;      // account name when local
	std::string mailbox;      // destination mailbox when local
	// The address as the transaction writes it (the domain's Unicode form
	// under SMTPUTF8): replies, logs, a DSN's status part (which the DSN
	// writer puts in the forms of RFC 6533), the queue's RCPT TO.
	std::string display;
	uint8_t notify = 0;  // RFC 3461 4.1 NOTIFY bits (smtp::DsnNotify), 0 = not given
	std::string orcpt;   // RFC 3461 4.2 ORCPT, stored form "type;address" ("" = none)
	// The address with its domain always in the ASCII form, as the model
	// writes it in Received's "for" clause (doc/behaviour.md §7) and in the
	// text of a DSN (§13).
	std::string ascii_address() const { return postmaster ? display : address.to_ascii_string(); }
};

// A recipient that could not be delivered (doc/behaviour.md §4 DATA).
struct DeliverError {
	std::string rcpt;
	int code;
	std::string secode;
	bool user_error;
	std::string text;
};

// The combined reply to the message when every recipient failed
// (doc/behaviour.md §4 DATA step 10): one code if all agree, else one line
// per recipient under 554 (any permanent) or 451.
smtp::SmtpError all_failed_reply(const std::vector<DeliverError>& errors);

// What RCPT TO does with one address: refuse it with a reply, or put
// `recipient` on the list (local, or not: a relay on submission, an unknown
// user on port 25 whose failure shows only after DATA).
struct RecipientDecision {
	bool refused = false;
	int code = 0;  // for a refusal
	std::string secode;
	std::string text;
	Recipient recipient;
};

// What the session knows about where the address arrived.
struct RecipientContext {
	std::string listener_hostname;  // renders the bare <POSTMASTER> form (doc/behaviour.md D9)
	bool submission = false;        // the listener's kind
	bool smtputf8 = false;          // the transaction's MAIL FROM asked for SMTPUTF8 (RFC 6531)
};

// Where the address of `rcpt` goes. Localserve delivers every address to
// its one account's INBOX.
RecipientDecision resolve_recipient(const config::Config& cfg, const smtp::RcptArgs& rcpt, const RecipientContext& ctx);

}  // namespace tern::decide
