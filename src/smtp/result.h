// Errors as values: a Result holds either a value or the one reply that
// refuses it. Parsers and command handlers return them; nothing in the
// session throws a reply (doc/design.md "Handlers return outcomes").
#pragma once
#include <optional>
#include <utility>
#include <variant>

#include "smtp/reply.h"
#include "util/assert.h"

namespace tern::smtp {

template <class T>
class [[nodiscard]] Result {
public:
	Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
	Result(SmtpError error) : v_(std::in_place_index<1>, std::move(error)) {}

	bool ok() const { return v_.index() == 0; }
	explicit operator bool() const { return ok(); }
	T& operator*() {
		TERN_ASSERT(ok(), "a refused result has no value");
		return std::get<0>(v_);
	}
	const T& operator*() const {
		TERN_ASSERT(ok(), "a refused result has no value");
		return std::get<0>(v_);
	}
	T* operator->() { return &**this; }
	const T* operator->() const { return &**this; }
	const SmtpError& error() const {
		TERN_ASSERT(!ok(), "an accepted result has no error");
		return std::get<1>(v_);
	}

private:
	std::variant<T, SmtpError> v_;
};

// A Result without a value: accepted, or refused with one reply.
template <>
class [[nodiscard]] Result<void> {
public:
	Result() = default;
	Result(SmtpError error) : error_(std::move(error)) {}

	bool ok() const { return !error_; }
	explicit operator bool() const { return ok(); }
	const SmtpError& error() const {
		TERN_ASSERT(!ok(), "an accepted result has no error");
		return *error_;
	}

private:
	std::optional<SmtpError> error_;
};

using Status = Result<void>;

}  // namespace tern::smtp
