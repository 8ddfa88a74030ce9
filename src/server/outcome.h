// What a command handler's call leads to (doc/design.md "Handlers return
// outcomes"): a reply for the session to write, and the state the session
// enters once it is written (DATA's 354, STARTTLS's 220, AUTH's 334,
// QUIT's 221); or a refusal with one error reply; or the command is
// suspended on a job or timer whose completion answers. The session's
// apply() is the one place that writes a reply and enters the next state.
// Handlers never write replies themselves, and never throw them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtp/reply.h"

namespace tern::server {

enum class SessionState : uint8_t;  // server/session.h

class [[nodiscard]] Outcome {
public:
	enum class Kind : uint8_t {
		replied,    // a reply to write, perhaps a state to enter after it
		refused,    // one error reply, perhaps a state to enter after it
		suspended,  // a job or timer was started; its completion answers
		entered,    // no reply yet: a state to enter, whose input brings the reply (a BDAT chunk)
		delegated,  // the message pipeline the command handed over to answers through apply() itself
	};

	// A reply that is not a refusal (no received-id appended). Text with
	// '\n' is a multi-line reply (RFC 5321 4.2.1); see smtp::format_reply.
	static Outcome reply(int code, std::string_view secode, std::string text) {
		return Outcome(Kind::replied, smtp::SmtpError{code, std::string(secode), std::move(text), false});
	}
	// A positive reply of smtp/replies.h.
	static Outcome reply(smtp::SmtpError positive) { return Outcome(Kind::replied, std::move(positive)); }
	// A multi-line reply (EHLO's keywords), one line per element.
	static Outcome reply_lines(int code, std::string_view secode, const std::vector<std::string>& lines);
	// RFC 4954 4: "334 " and the base64 challenge on one line however long
	// it is (never wrapped), then the client's answer line.
	static Outcome sasl_challenge(std::string base64);
	static Outcome suspended() { return Outcome(Kind::suspended); }
	// No reply now: the session enters `next`, and what it reads there answers.
	static Outcome enter(SessionState next) {
		Outcome o(Kind::entered);
		o.next_ = next;
		return o;
	}
	static Outcome delegated() { return Outcome(Kind::delegated); }
	Outcome(smtp::SmtpError refusal) : kind_(Kind::refused), reply_(std::move(refusal)) {}

	// The state the session enters once the reply is written.
	Outcome then(SessionState next) && {
		next_ = next;
		return std::move(*this);
	}

	Kind kind() const { return kind_; }
	bool refused() const { return kind_ == Kind::refused; }
	const smtp::SmtpError& refusal() const { return *reply_; }
	// The reply to write (a refusal's too); nullptr when there is none.
	const smtp::SmtpError* reply() const { return reply_ ? &*reply_ : nullptr; }
	// Written as given, without wrapping long lines (SASL challenges).
	bool verbatim() const { return verbatim_; }
	std::optional<SessionState> next_state() const { return next_; }

private:
	explicit Outcome(Kind k) : kind_(k) {}
	Outcome(Kind k, smtp::SmtpError r) : kind_(k), reply_(std::move(r)) {}
	Kind kind_;
	bool verbatim_ = false;
	std::optional<smtp::SmtpError> reply_;
	std::optional<SessionState> next_;
};

inline Outcome Outcome::reply_lines(int code, std::string_view secode, const std::vector<std::string>& lines) {
	std::string text;
	for (const auto& line : lines) {
		if (!text.empty()) text += '\n';
		text += line;
	}
	return reply(code, secode, std::move(text));
}

inline Outcome Outcome::sasl_challenge(std::string base64) {
	Outcome o = reply(334, "", std::move(base64));
	o.verbatim_ = true;
	return o;
}

}  // namespace tern::server
