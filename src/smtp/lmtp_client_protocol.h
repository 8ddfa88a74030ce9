// The client side of LMTP (RFC 2033) as a pure state machine: it is fed the
// server's bytes and produces the commands to send; the socket glue
// (net/lmtp_client.h) only moves bytes, streams the body and keeps the
// deadlines. One connection carries one transaction: LHLO, MAIL FROM, one
// RCPT TO per recipient, DATA, the dot-stuffed body, and after the final dot
// one reply per accepted recipient (RFC 2033 4.2), then QUIT.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client_reply.h"

namespace tern::smtp {

// What became of one recipient.
struct LmtpRecipientResult {
	enum class Status { pending, delivered, temporary, permanent };
	Status status = Status::pending;
	int code = 0;          // the server's reply code, or 451 for a local failure
	std::string enhanced;  // "x.y.z" (RFC 3463); a default for the class when the server sent none
	std::string text;      // the reply's first line without the enhanced code, or the local reason
	// No recipient-level answer: the connection, a deadline, garbage, or a
	// session-level refusal (greeting, LHLO). Its text names our setup.
	bool local = false;
};

struct LmtpTransaction {
	std::string lhlo_name;                // our host name
	std::string mail_from;                // reverse path without <>, "" for the null sender
	std::vector<std::string> recipients;  // forward paths without <>
	bool body_8bit = false;               // BODY=8BITMIME when offered (RFC 6152)
	bool smtputf8 = false;                // SMTPUTF8 required (RFC 6531 3.4)
};

class LmtpClientProtocol {
public:
	enum class Step { greeting, lhlo, mail, rcpt, data, body, data_end, done };

	explicit LmtpClientProtocol(LmtpTransaction tx);

	// Bytes from the server. Complete replies move the machine on; what to
	// send next is appended to output().
	void receive(std::string_view bytes);
	// Bytes to send; the caller removes what it wrote.
	std::string& output() { return output_; }

	// In Step::body the caller streams the message: each chunk is appended
	// to output() dot-stuffed (RFC 5321 4.5.2); body_end() adds the final
	// dot and waits for the per-recipient replies.
	void body_chunk(std::string_view chunk);
	void body_end();

	// The connection failed, closed early or a deadline passed: every
	// recipient without a final reply gets 451 4.3.0 with `reason`. A
	// recipient whose reply already came keeps it (RFC 2033 4.2: what was
	// answered 250 after the dot is delivered).
	void connection_failed(const std::string& reason);

	Step step() const { return step_; }
	// Done: every recipient has its result and nothing more is awaited
	// (output() may still hold the QUIT).
	bool done() const { return step_ == Step::done; }
	const std::vector<LmtpRecipientResult>& results() const { return results_; }
	const LmtpTransaction& transaction() const { return tx_; }

private:
	void handle_reply(const Reply& reply);
	void on_greeting_or_lhlo(const Reply& reply);
	void send(std::string line);
	void send_next_rcpt_or_data();
	// Every recipient still pending gets `result` (the transaction ended).
	void settle_pending(const LmtpRecipientResult& result);
	void finish_with_quit();

	LmtpTransaction tx_;
	std::vector<LmtpRecipientResult> results_;
	std::vector<size_t> accepted_;  // recipients with a 2xx to RCPT, in order
	size_t next_rcpt_ = 0;
	size_t next_data_reply_ = 0;  // index into accepted_
	bool offers_8bitmime_ = false;
	bool offers_smtputf8_ = false;
	Step step_ = Step::greeting;
	ReplyParser parser_;
	DotStuffer stuffer_;
	std::string input_;
	std::string output_;
};

// A reply as a recipient's result: 2xx delivered, 5xx permanent, anything
// else temporary. The enhanced code defaults to "C.0.0" for class C.
LmtpRecipientResult lmtp_result_of(const Reply& reply);

}  // namespace tern::smtp
