// SCRAM-SHA-1 and SCRAM-SHA-256 server (RFC 5802, RFC 7677), without
// channel binding (no -PLUS variants), following the model's steps
// (doc/behaviour.md §11):
//
//   client-first  → lookup of the authentication identity
//   secrets       → server-first `r=<client nonce><server nonce>,s=<salt>,i=<n>`
//   client-final  → `v=<ServerSignature>`, or `e=invalid-proof` /
//                   `e=channel-bindings-dont-match` (RFC 5802 7 server-error)
//   one more line → success, or the failure the `e=` announced.
//
// Like the model, attribute names and the gs2 flag are matched ASCII
// case-insensitively. User names are prepared with SASLprep (RFC 5802 5.1,
// RFC 4013).
#include <string>

#include "smtp/parser.h"
#include "sasl/crypto.h"
#include "sasl/mechanisms_impl.h"
#include "sasl/saslprep.h"
#include "smtp/reply.h"
#include "util/base64.h"

namespace tern::sasl::detail {

namespace {

// A message the client sent cannot be used; `text` reads like the model's
// scram errors ("invalid-encoding: expected \",\"").
struct ScramError {
	std::string text;
};

ScramError invalid_encoding(std::string detail) { return ScramError{"invalid-encoding: " + detail}; }

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Go's %q for the few bytes we echo in error texts.

// Cursor over one SCRAM message (RFC 5802 7 grammar); throws ScramError.
class Cursor {
public:
	explicit Cursor(std::string_view text) : text_(text) {}

	std::size_t position() const { return pos_; }

	bool peek(std::string_view expected) const {
		if (text_.size() - pos_ < expected.size()) return false;
		for (std::size_t i = 0; i < expected.size(); ++i)
			if (ascii_lower(text_[pos_ + i]) != ascii_lower(expected[i])) return false;
		return true;
	}

	bool take(std::string_view expected) {
		if (!peek(expected)) return false;
		pos_ += expected.size();
		return true;
	}

	void expect(std::string_view expected) {
		if (!take(expected)) throw invalid_encoding("expected " + smtp::quote_go(expected));
	}

	char byte() {
		if (pos_ >= text_.size()) throw invalid_encoding("unexpected end");
		return text_[pos_++];
	}

	void expect_end() const {
		if (pos_ != text_.size()) throw invalid_encoding("leftover data");
	}

	// saslname: value chars with ',' and '=' escaped as =2C and =3D
	// (RFC 5802 5.1); any other '=' sequence fails the exchange.
	std::string saslname() {
		std::string name;
		std::size_t start = pos_;
		while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\0') {
			char c = text_[pos_];
			if (c != '=') {
				name += c;
				++pos_;
				continue;
			}
			if (text_.size() - pos_ < 3 || text_[pos_ + 1] == ',' || text_[pos_ + 1] == '\0' ||
			    text_[pos_ + 2] == ',' || text_[pos_ + 2] == '\0')
				throw invalid_encoding("saslname unexpected end");
			std::string escape(text_.substr(pos_ + 1, 2));
			if (escape == "2C" || escape == "2c")
				name += ',';
			else if (escape == "3D" || escape == "3d")
				name += '=';
			else
				throw invalid_encoding("bad escape " + smtp::quote_go(escape) + " in saslname");
			pos_ += 3;
		}
		if (pos_ == start) throw invalid_encoding("saslname cannot be empty");
		return name;
	}

	// "r=" printable characters except ',' (RFC 5802 7).
	std::string nonce() {
		expect("r=");
		std::size_t start = pos_;
		while (pos_ < text_.size()) {
			unsigned char c = static_cast<unsigned char>(text_[pos_]);
			if (c <= ' ' || c >= 0x7f || c == ',') break;
			++pos_;
		}
		if (pos_ == start) throw invalid_encoding("empty nonce");
		return std::string(text_.substr(start, pos_ - start));
	}

	// attr-val = ALPHA "=" value; the value is ignored (RFC 5802 7:
	// unknown optional extensions MUST be ignored).
	void attribute_value() {
		char c = byte();
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			throw invalid_encoding("expected alpha for attr-val");
		expect("=");
		std::size_t start = pos_;
		while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\0') ++pos_;
		if (pos_ == start) throw invalid_encoding("invalid empty value");
	}

	// Standard base64 with padding, decoded.
	std::string base64_value() {
		std::size_t start = pos_;
		while (pos_ < text_.size()) {
			char c = text_[pos_];
			bool alphabet = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '+' || c == '/' || c == '=';
			if (!alphabet) break;
			++pos_;
		}
		auto decoded = base64_decode(text_.substr(start, pos_ - start));
		if (!decoded) throw invalid_encoding("decoding base64: illegal base64 data");
		return *decoded;
	}

private:
	std::string_view text_;
	std::size_t pos_ = 0;
};

class Scram final : public Mechanism {
public:
	Scram(ScramHash hash, Entropy entropy) : hash_(hash), entropy_(std::move(entropy)) {}

	std::string_view name() const override { return hash_ == ScramHash::sha1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256"; }

	Step start(std::optional<std::string> initial_response) override {
		if (state_ != State::initial) return out_of_sequence();
		if (!initial_response) {
			state_ = State::want_client_first;
			return Step::make_challenge("");
		}
		return handle_client_first(*initial_response);
	}

	Step next(std::string client_data) override {
		switch (state_) {
		case State::want_client_first: return handle_client_first(client_data);
		case State::want_client_final: return handle_client_final(client_data);
		case State::want_final_ack:
			// RFC 5802 5 / RFC 4954 4: the client answers the server-final
			// message with an empty line; its content is not checked.
			state_ = State::done;
			return Step::make_success(authcid_);
		case State::want_error_ack:
			// The client saw `e=...` and should have sent `*`; whatever
			// the line, the announced failure follows (the session passes
			// it raw, see Step::next_line_raw).
			state_ = State::done;
			return pending_failure_;
		default: return out_of_sequence();
		}
	}

	Step provide_secrets(std::optional<StoredSecrets> secrets) override {
		if (state_ != State::want_secrets) return out_of_sequence();
		state_ = State::done;
		// The model's order: unknown account first, then the authzid, then
		// missing secrets.
		if (!secrets) return scram_not_possible();
		if (!authzid_.empty() && authzid_ != authcid_)
			return Step::make_failure(535, smtp::se::pol_bad_credentials8,
			                          "authentication with authorization for different user not supported");
		const ScramSecret* stored = secrets->scram(hash_);
		if (stored == nullptr || !stored->usable_for(hash_)) return scram_not_possible();
		secret_ = *stored;

		// RFC 5802 5.1 / 7: server-first-message = nonce "," salt "," iteration-count.
		nonce_ = client_nonce_ + entropy_.scram_server_nonce();
		server_first_ = "r=" + nonce_ + ",s=" + base64_encode(secret_.salt) +
		    ",i=" + std::to_string(secret_.iterations);
		state_ = State::want_client_final;
		return Step::make_challenge(server_first_);
	}

private:
	enum class State {
		initial,
		want_client_first,
		want_secrets,
		want_client_final,
		want_final_ack,
		want_error_ack,
		done,
	};

	// A user name that SASLprep rejects or prepares to nothing.
	struct BadUsername {};

	// RFC 5802 5.1: the server prepares the user name with SASLprep as a
	// query string (RFC 4013); the authorization identity likewise, so the
	// two compare in the same form. The password side needs nothing here:
	// the client applies Normalize() (SASLprep) to it and the stored keys
	// come from the prepared password (ternctl passwd).
	void prepare_usernames() {
		auto authcid = saslprep(authcid_, SaslprepUse::query);
		if (!authcid || authcid->empty()) throw BadUsername{};
		authcid_ = std::move(*authcid);
		if (!authzid_.empty()) {
			auto authzid = saslprep(authzid_, SaslprepUse::query);
			if (!authzid || authzid->empty()) throw BadUsername{};
			authzid_ = std::move(*authzid);
		}
	}

	static Step scram_not_possible() { return Step::make_failure(454, smtp::se::sys_other0, "scram not possible"); }

	// client-first-message = gs2-header client-first-message-bare
	// (RFC 5802 7).
	Step handle_client_first(std::string_view message) {
		state_ = State::done;
		try {
			Cursor cursor(message);
			char flag = ascii_lower(cursor.byte());
			// 'n': client does not support channel binding; 'y': it does
			// but thinks we do not — true, there is no -PLUS here.
			if (flag == 'p')
				throw ScramError{"channel binding not supported: channel-binding-not-supported"};
			if (flag != 'n' && flag != 'y') throw invalid_encoding("unrecognized gs2 channel bind flag");
			cursor.expect(",");
			if (!cursor.take(",")) {
				cursor.expect("a=");
				authzid_ = cursor.saslname();
				cursor.expect(",");
			}
			gs2_header_ = std::string(message.substr(0, cursor.position()));
			client_first_bare_ = std::string(message.substr(cursor.position()));
			if (cursor.take("m="))  // RFC 5802 5.1: fail on an unknown mandatory extension.
				throw ScramError{"unexpected mandatory extension: extensions-not-supported"};
			cursor.expect("n=");
			authcid_ = cursor.saslname();
			username_sent_ = authcid_;
			prepare_usernames();
			cursor.expect(",");
			client_nonce_ = cursor.nonce();
			if (client_nonce_.size() < 8) throw ScramError{"unsafe parameter: client nonce too short"};
			while (cursor.take(",")) cursor.attribute_value();
			cursor.expect_end();
		} catch (const BadUsername&) {
			// RFC 5802 5.1: the server SHOULD abort; the exchange has not
			// reached the server-final message that could carry
			// e=invalid-username-encoding (RFC 5802 7), so the failure is
			// the reply, as for bad credentials.
			return Step::make_failure(535, smtp::se::pol_bad_credentials8, "invalid-username-encoding");
		} catch (const ScramError& error) {
			// The model reports these on its server-error path.
			return Step::make_failure(451, smtp::se::sys_other0, "starting scram: " + error.text);
		}
		state_ = State::want_secrets;
		return Step::make_lookup(authcid_);
	}

	// client-final-message = channel-binding "," nonce ["," extensions]
	// "," proof (RFC 5802 7).
	Step handle_client_final(std::string_view message) {
		state_ = State::done;
		std::string client_final_without_proof;
		std::string proof;
		try {
			Cursor cursor(message);
			cursor.expect("c=");
			// Without channel binding, c= carries the gs2 header verbatim.
			if (cursor.base64_value() != gs2_header_)
				return announce_failure(
				    "e=channel-bindings-dont-match",
				    Step::make_failure(451, smtp::se::sys_other0,
				                       "server final: channel-bindings-dont-match"));
			cursor.expect(",");
			if (cursor.nonce() != nonce_) return announce_failure("e=invalid-proof", bad_credentials());
			while (!cursor.peek(",p=")) {
				cursor.expect(",");
				cursor.attribute_value();
			}
			client_final_without_proof = std::string(message.substr(0, cursor.position()));
			cursor.expect(",");
			cursor.expect("p=");
			proof = cursor.base64_value();
			cursor.expect_end();
		} catch (const ScramError& error) {
			// Unlike the model (which silently waits for one more line
			// first), a malformed client-final fails at once.
			return Step::make_failure(451, smtp::se::sys_other0, "server final: " + error.text);
		}

		// RFC 5802 3: AuthMessage = client-first-message-bare + "," +
		// server-first-message + "," + client-final-message-without-proof;
		// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and the
		// proof is good when H(ClientKey) equals StoredKey.
		std::string auth_message = client_first_bare_ + "," + server_first_ + "," + client_final_without_proof;
		std::string client_signature = crypto::hmac(hash_, secret_.stored_key, auth_message);
		if (proof.size() != client_signature.size())
			return announce_failure("e=invalid-proof", bad_credentials());
		std::string client_key(client_signature.size(), '\0');
		for (std::size_t i = 0; i < client_key.size(); ++i)
			client_key[i] = static_cast<char>(client_signature[i] ^ proof[i]);
		bool good = crypto::constant_time_equal(crypto::digest(hash_, client_key), secret_.stored_key);
		crypto::wipe(client_key);
		if (!good) return announce_failure("e=invalid-proof", bad_credentials());

		std::string server_signature = crypto::hmac(hash_, secret_.server_key, auth_message);
		state_ = State::want_final_ack;
		return Step::make_challenge("v=" + base64_encode(server_signature));
	}

	static Step bad_credentials() {
		return Step::make_failure(535, smtp::se::pol_bad_credentials8, "bad credentials");
	}

	// Sends the server-error message; the failure follows the client's next line.
	Step announce_failure(std::string server_error, Step failure) {
		Step step = Step::make_challenge(std::move(server_error));
		step.next_line_raw = true;
		// The login has failed already: the session counts it now.
		step.code = failure.code;
		step.secode = failure.secode;
		step.text = failure.text;
		pending_failure_ = std::move(failure);
		state_ = State::want_error_ack;
		return step;
	}

	ScramHash hash_;
	Entropy entropy_;
	State state_ = State::initial;
	std::string authzid_;
	std::string authcid_;
	std::string gs2_header_;
	std::string client_first_bare_;
	std::string client_nonce_;
	std::string nonce_;
	std::string server_first_;
	ScramSecret secret_;
	Step pending_failure_;
};

}  // namespace

std::unique_ptr<Mechanism> make_scram(ScramHash hash, Entropy entropy) {
	return std::make_unique<Scram>(hash, std::move(entropy));
}

}  // namespace tern::sasl::detail
