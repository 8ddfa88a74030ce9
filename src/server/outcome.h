// What a command handler's call leads to (doc/design.md "Handlers return
// outcomes"): the handler has written its reply or entered the state that
// answers later (DATA's 354, AUTH's 334); or it started a job or a timer
// and the session waits for its completion; or it is refused with one
// error reply, which the session sends. Handlers never throw replies.
#pragma once
#include <cstdint>
#include <optional>
#include <utility>

#include "smtp/reply.h"
#include "smtp/result.h"

namespace tern::server {

class [[nodiscard]] Outcome {
public:
	enum class Kind : uint8_t { replied, suspended, refused };

	static Outcome replied() { return Outcome(Kind::replied); }
	static Outcome suspended() { return Outcome(Kind::suspended); }
	Outcome(smtp::SmtpError refusal) : kind_(Kind::refused), refusal_(std::move(refusal)) {}
	// A refused Result is a refusal; an accepted one carries no reply.
	template <class T>
	static Outcome refusal_of(const smtp::Result<T>& r) {
		return r.ok() ? replied() : Outcome(r.error());
	}

	Kind kind() const { return kind_; }
	bool refused() const { return kind_ == Kind::refused; }
	const smtp::SmtpError& refusal() const { return *refusal_; }

private:
	explicit Outcome(Kind k) : kind_(k) {}
	Kind kind_;
	std::optional<smtp::SmtpError> refusal_;
};

}  // namespace tern::server
