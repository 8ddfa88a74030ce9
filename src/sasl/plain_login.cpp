// PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login-00): the client
// sends the password in clear; it is checked against the stored SCRAM key.
#include <cstddef>
#include <string>

#include "sasl/crypto.h"
#include "sasl/mechanisms_impl.h"
#include "sasl/saslprep.h"
#include "smtp/reply.h"

namespace tern::sasl::detail {

namespace {

// Shared tail of PLAIN and LOGIN: wait for the account's secrets, then check
// the cleartext password once.
class PasswordCheck {
public:
	~PasswordCheck() { crypto::wipe(password_); }

	// RFC 4616 2 (PLAIN; LOGIN does likewise): the authentication identity
	// and the password are prepared with SASLprep as query strings
	// (RFC 4013), so a password set in one Unicode form matches when typed
	// in another. Text that SASLprep rejects is a failed login (535), as a
	// wrong password would be.
	Step request(std::string username, std::string password) {
		auto prepared_user = saslprep(username, SaslprepUse::query);
		auto prepared_password = saslprep(password, SaslprepUse::query);
		crypto::wipe(password);
		if (!prepared_user || !prepared_password) {
			if (prepared_password) crypto::wipe(*prepared_password);
			return bad_user_pass();
		}
		username_ = std::move(*prepared_user);
		password_ = std::move(*prepared_password);
		return Step::make_lookup(username_);
	}

	Step finish(const std::optional<StoredSecrets>& secrets) {
		bool good = secrets && secrets->check_password(password_);
		crypto::wipe(password_);
		if (!good) return bad_user_pass();
		return Step::make_success(username_);
	}

private:
	std::string username_;
	std::string password_;
};

class Plain final : public Mechanism {
public:
	std::string_view name() const override { return "PLAIN"; }

	Step start(std::optional<std::string> initial_response) override {
		if (state_ != State::initial) return out_of_sequence();
		if (!initial_response) {
			// RFC 4954 4: empty server challenge, the client sends its message.
			state_ = State::want_message;
			return Step::make_challenge("");
		}
		return handle_message(std::move(*initial_response));
	}

	Step next(std::string client_data) override {
		if (state_ != State::want_message) return out_of_sequence();
		return handle_message(std::move(client_data));
	}

	Step provide_secrets(std::optional<StoredSecrets> secrets) override {
		if (state_ != State::want_secrets) return out_of_sequence();
		state_ = State::done;
		return check_.finish(secrets);
	}

private:
	enum class State { initial, want_message, want_secrets, done };

	// RFC 4616 2: message = [authzid] NUL authcid NUL passwd.
	Step handle_message(std::string message) {
		state_ = State::done;
		std::size_t parts = 1;
		for (char c : message)
			if (c == '\0') ++parts;
		if (parts != 3) {
			crypto::wipe(message);
			return Step::make_failure(501, smtp::se::proto_param_invalid4,
			                          "auth data should have 3 nul-separated tokens, got " +
			                              std::to_string(parts));
		}
		std::size_t first = message.find('\0');
		std::size_t second = message.find('\0', first + 1);
		std::string authzid = message.substr(0, first);
		std::string authcid = message.substr(first + 1, second - first - 1);
		username_sent_ = authcid;
		std::string password = message.substr(second + 1);
		crypto::wipe(message);
		// Acting as another user is not supported (RFC 4616 2 lets the
		// server refuse an authzid it does not authorize).
		if (!authzid.empty() && authzid != authcid) {
			crypto::wipe(password);
			return Step::make_failure(535, smtp::se::pol_bad_credentials8, "cannot assume other role");
		}
		return request_secrets(std::move(authcid), std::move(password));
	}

	Step request_secrets(std::string username, std::string password) {
		Step step = check_.request(std::move(username), std::move(password));
		state_ = step.kind == Step::Kind::lookup ? State::want_secrets : State::done;
		return step;
	}

	State state_ = State::initial;
	PasswordCheck check_;
};

// LOGIN: challenges "Username:" and "Password:", each answered by one line.
// An initial response is taken as the username (what Outlook and others
// send with `AUTH LOGIN <b64 username>`).
class Login final : public Mechanism {
public:
	std::string_view name() const override { return "LOGIN"; }

	Step start(std::optional<std::string> initial_response) override {
		if (state_ != State::initial) return out_of_sequence();
		if (!initial_response) {
			state_ = State::want_username;
			return Step::make_challenge("Username:");
		}
		username_ = std::move(*initial_response);
		username_sent_ = username_;
		state_ = State::want_password;
		return Step::make_challenge("Password:");
	}

	Step next(std::string client_data) override {
		switch (state_) {
		case State::want_username:
			username_ = std::move(client_data);
			username_sent_ = username_;
			state_ = State::want_password;
			return Step::make_challenge("Password:");
		case State::want_password: {
			Step step = check_.request(std::move(username_), std::move(client_data));
			state_ = step.kind == Step::Kind::lookup ? State::want_secrets : State::done;
			return step;
		}
		default: crypto::wipe(client_data); return out_of_sequence();
		}
	}

	Step provide_secrets(std::optional<StoredSecrets> secrets) override {
		if (state_ != State::want_secrets) return out_of_sequence();
		state_ = State::done;
		return check_.finish(secrets);
	}

private:
	enum class State { initial, want_username, want_password, want_secrets, done };

	State state_ = State::initial;
	std::string username_;
	PasswordCheck check_;
};

}  // namespace

std::unique_ptr<Mechanism> make_plain() { return std::make_unique<Plain>(); }

std::unique_ptr<Mechanism> make_login() { return std::make_unique<Login>(); }

}  // namespace tern::sasl::detail
