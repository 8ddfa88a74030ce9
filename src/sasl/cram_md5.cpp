// CRAM-MD5 (RFC 2195): the server sends a unique challenge, the client
// answers `username SP hex(HMAC-MD5(password, challenge))`. The server keeps
// only the HMAC inner/outer MD5 states, never the password.
#include <string>

#include "util/hex.h"
#include "sasl/crypto.h"
#include "sasl/mechanisms_impl.h"
#include "sasl/saslprep.h"
#include "smtp/reply.h"
#include "util/base64.h"

namespace tern::sasl::detail {

namespace {

constexpr std::size_t md5_hex_length = 32;

class CramMd5 final : public Mechanism {
public:
	CramMd5(std::string hostname, Entropy entropy) : hostname_(std::move(hostname)), entropy_(std::move(entropy)) {}

	std::string_view name() const override { return "CRAM-MD5"; }

	Step start(std::optional<std::string> initial_response) override {
		if (state_ != State::initial) return out_of_sequence();
		if (initial_response) {
			// RFC 2195 has the server speak first; the session refuses the
			// initial response before it gets here (takes_initial_response).
			// Before login the model shows no unparsed rest.
			state_ = State::done;
			return Step::make_failure(501, smtp::se::proto_syntax2, "bad syntax: expected end of line");
		}
		challenge_ = entropy_.cram_md5_challenge(hostname_);
		state_ = State::want_response;
		return Step::make_challenge(challenge_);
	}

	Step next(std::string client_data) override {
		if (state_ != State::want_response) return out_of_sequence();
		state_ = State::done;
		// RFC 2195 2: response = user SP digest, digest 32 lower-case hex.
		std::size_t space = client_data.find(' ');
		username_sent_ = client_data.substr(0, space);
		if (space == std::string::npos || client_data.find(' ', space + 1) != std::string::npos ||
		    client_data.size() - space - 1 != md5_hex_length)
			return Step::make_failure(501, smtp::se::proto_param_invalid4, "malformed cram-md5 response");
		// The user name is prepared like PLAIN's (RFC 4013); the digest
		// already covers the password the client prepared, and the stored
		// states come from the prepared password (ternctl passwd).
		auto username = saslprep(client_data.substr(0, space), SaslprepUse::query);
		if (!username) return bad_user_pass();
		username_ = std::move(*username);
		response_digest_ = client_data.substr(space + 1);
		state_ = State::want_secrets;
		return Step::make_lookup(username_);
	}

	Step provide_secrets(std::optional<StoredSecrets> secrets) override {
		if (state_ != State::want_secrets) return out_of_sequence();
		state_ = State::done;
		if (!secrets || !secrets->cram_md5 || !secrets->cram_md5->usable()) return bad_user_pass();
		std::string expected = hex_lower(secrets->cram_md5->hmac(challenge_));
		if (!crypto::constant_time_equal(expected, response_digest_)) return bad_user_pass();
		return Step::make_success(username_);
	}

private:
	enum class State { initial, want_response, want_secrets, done };

	std::string hostname_;
	Entropy entropy_;
	State state_ = State::initial;
	std::string challenge_;
	std::string username_;
	std::string response_digest_;
};

}  // namespace

std::unique_ptr<Mechanism> make_cram_md5(std::string hostname, Entropy entropy) {
	return std::make_unique<CramMd5>(std::move(hostname), std::move(entropy));
}

}  // namespace tern::sasl::detail
