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
#include <optional>
#include <string>

#include "smtp/parser.h"
#include "sasl/crypto.h"
#include "sasl/mechanisms_impl.h"
#include "sasl/saslprep.h"
#include "smtp/reply.h"
#include "util/base64.h"
#include "util/failed.h"

namespace tern::sasl::detail {

namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Cursor over one SCRAM message (RFC 5802 7 grammar). A step that finds the
// message unusable records why (`error()`, read like the model's scram
// errors: "invalid-encoding: expected \",\"") and returns Failed (false or an
// empty optional); its caller stops there, so the reason kept is the first.
class Cursor {
public:
	explicit Cursor(std::string_view text) : text_(text) {}

	std::size_t position() const { return pos_; }

	// Records why the message cannot be used (util/failed.h).
	Failed fail(std::string why) {
		error_ = std::move(why);
		return {};
	}
	Failed invalid_encoding(std::string_view detail) { return fail("invalid-encoding: " + std::string(detail)); }
	const std::string& error() const { return error_; }

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

	bool expect(std::string_view expected) {
		if (!take(expected)) return invalid_encoding("expected " + smtp::quote_go(expected));
		return true;
	}

	std::optional<char> byte() {
		if (pos_ >= text_.size()) return invalid_encoding("unexpected end");
		return text_[pos_++];
	}

	bool expect_end() {
		if (pos_ != text_.size()) return invalid_encoding("leftover data");
		return true;
	}

	// saslname: value chars with ',' and '=' escaped as =2C and =3D
	// (RFC 5802 5.1); any other '=' sequence fails the exchange.
	std::optional<std::string> saslname() {
		std::string name;
		std::size_t start = pos_;
		while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\0') {
			char c = text_[pos_];
			if (c != '=') {
				name += c;
				++pos_;
				continue;
			}
			std::optional<char> unescaped = saslname_escape();
			if (!unescaped) return std::nullopt;
			name += *unescaped;
			pos_ += 3;
		}
		if (pos_ == start) return invalid_encoding("saslname cannot be empty");
		return name;
	}

	// "r=" printable characters except ',' (RFC 5802 7).
	std::optional<std::string> nonce() {
		if (!expect("r=")) return std::nullopt;
		std::size_t start = pos_;
		while (pos_ < text_.size()) {
			unsigned char c = static_cast<unsigned char>(text_[pos_]);
			if (c <= ' ' || c >= 0x7f || c == ',') break;
			++pos_;
		}
		if (pos_ == start) return invalid_encoding("empty nonce");
		return std::string(text_.substr(start, pos_ - start));
	}

	// attr-val = ALPHA "=" value; the value is ignored (RFC 5802 7:
	// unknown optional extensions MUST be ignored).
	bool attribute_value() {
		std::optional<char> c = byte();
		if (!c) return false;
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return invalid_encoding("expected alpha for attr-val");
		if (!expect("=")) return false;
		std::size_t start = pos_;
		while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '\0') ++pos_;
		if (pos_ == start) return invalid_encoding("invalid empty value");
		return true;
	}

	// Standard base64 with padding, decoded.
	std::optional<std::string> base64_value() {
		std::size_t start = pos_;
		while (pos_ < text_.size()) {
			char c = text_[pos_];
			bool alphabet = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '+' || c == '/' || c == '=';
			if (!alphabet) break;
			++pos_;
		}
		size_t offset = 0;
		auto decoded = base64_decode(text_.substr(start, pos_ - start), &offset);
		if (!decoded)
			return invalid_encoding("decoding base64: illegal base64 data at input byte " +
			                        std::to_string(offset));
		return decoded;
	}

private:
	// The character of the saslname escape at pos_ ("=2C" or "=3D").
	std::optional<char> saslname_escape() {
		if (text_.size() - pos_ < 3 || text_[pos_ + 1] == ',' || text_[pos_ + 1] == '\0' ||
		    text_[pos_ + 2] == ',' || text_[pos_ + 2] == '\0')
			return invalid_encoding("saslname unexpected end");
		std::string_view escape = text_.substr(pos_ + 1, 2);
		if (escape == "2C" || escape == "2c") return ',';
		if (escape == "3D" || escape == "3d") return '=';
		return invalid_encoding("bad escape " + smtp::quote_go(escape) + " in saslname");
	}

	std::string_view text_;
	std::size_t pos_ = 0;
	std::string error_;
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

	// RFC 5802 5.1: the server prepares the user name with SASLprep as a
	// query string (RFC 4013); the authorization identity likewise, so the
	// two compare in the same form. The password side needs nothing here:
	// the client applies Normalize() (SASLprep) to it and the stored keys
	// come from the prepared password (ternctl passwd). False when SASLprep
	// rejects a name or prepares it to nothing.
	bool prepare_usernames() {
		auto authcid = saslprep(authcid_, SaslprepUse::query);
		if (!authcid || authcid->empty()) return false;
		authcid_ = std::move(*authcid);
		if (!authzid_.empty()) {
			auto authzid = saslprep(authzid_, SaslprepUse::query);
			if (!authzid || authzid->empty()) return false;
			authzid_ = std::move(*authzid);
		}
		return true;
	}

	static Step scram_not_possible() { return Step::make_failure(454, smtp::se::sys_other0, "scram not possible"); }

	// client-first-message = gs2-header client-first-message-bare
	// (RFC 5802 7).
	Step handle_client_first(std::string_view message) {
		state_ = State::done;
		Cursor cursor(message);
		bool usable_username = true;
		if (!read_client_first(message, cursor, usable_username)) {
			if (!usable_username)
				// RFC 5802 5.1: the server SHOULD abort; the exchange has not
				// reached the server-final message that could carry
				// e=invalid-username-encoding (RFC 5802 7), so the failure is
				// the reply, as for bad credentials.
				return Step::make_failure(535, smtp::se::pol_bad_credentials8,
				                          "invalid-username-encoding");
			// The model reports these on its server-error path.
			return Step::make_failure(451, smtp::se::sys_other0, "starting scram: " + cursor.error());
		}
		state_ = State::want_secrets;
		return Step::make_lookup(authcid_);
	}

	// Reads the client-first `message` into the members; false when it is
	// malformed (the cursor says why) or its user names do not prepare
	// (`usable_username` false).
	bool read_client_first(std::string_view message, Cursor& cursor, bool& usable_username) {
		std::optional<char> flag = cursor.byte();
		if (!flag) return false;
		// 'n': client does not support channel binding; 'y': it does
		// but thinks we do not — true, there is no -PLUS here.
		if (ascii_lower(*flag) == 'p')
			return cursor.fail("channel binding not supported: channel-binding-not-supported");
		if (ascii_lower(*flag) != 'n' && ascii_lower(*flag) != 'y')
			return cursor.invalid_encoding("unrecognized gs2 channel bind flag");
		if (!cursor.expect(",")) return false;
		if (!cursor.take(",")) {
			if (!cursor.expect("a=")) return false;
			std::optional<std::string> authzid = cursor.saslname();
			if (!authzid || !cursor.expect(",")) return false;
			authzid_ = std::move(*authzid);
		}
		gs2_header_ = std::string(message.substr(0, cursor.position()));
		client_first_bare_ = std::string(message.substr(cursor.position()));
		if (cursor.take("m="))  // RFC 5802 5.1: fail on an unknown mandatory extension.
			return cursor.fail("unexpected mandatory extension: extensions-not-supported");
		if (!cursor.expect("n=")) return false;
		std::optional<std::string> authcid = cursor.saslname();
		if (!authcid) return false;
		authcid_ = std::move(*authcid);
		username_sent_ = authcid_;
		usable_username = prepare_usernames();
		if (!usable_username || !cursor.expect(",")) return false;
		std::optional<std::string> client_nonce = cursor.nonce();
		if (!client_nonce) return false;
		client_nonce_ = std::move(*client_nonce);
		if (client_nonce_.size() < 8) return cursor.fail("unsafe parameter: client nonce too short");
		while (cursor.take(","))
			if (!cursor.attribute_value()) return false;
		return cursor.expect_end();
	}

	// client-final-message = channel-binding "," nonce ["," extensions]
	// "," proof (RFC 5802 7).
	Step handle_client_final(std::string_view message) {
		state_ = State::done;
		Cursor cursor(message);
		// Unlike the model (which silently waits for one more line first), a
		// malformed client-final fails at once (doc/behaviour.md D33).
		auto malformed = [&cursor] {
			return Step::make_failure(451, smtp::se::sys_other0, "server final: " + cursor.error());
		};
		if (!cursor.expect("c=")) return malformed();
		// Without channel binding, c= carries the gs2 header verbatim.
		std::optional<std::string> binding = cursor.base64_value();
		if (!binding) return malformed();
		if (*binding != gs2_header_)
			return announce_failure(
			    "e=channel-bindings-dont-match",
			    Step::make_failure(451, smtp::se::sys_other0, "server final: channel-bindings-dont-match"));
		if (!cursor.expect(",")) return malformed();
		std::optional<std::string> nonce = cursor.nonce();
		if (!nonce) return malformed();
		if (*nonce != nonce_) return announce_failure("e=invalid-proof", bad_credentials());
		while (!cursor.peek(",p="))
			if (!cursor.expect(",") || !cursor.attribute_value()) return malformed();
		std::string_view client_final_without_proof = message.substr(0, cursor.position());
		if (!cursor.expect(",") || !cursor.expect("p=")) return malformed();
		std::optional<std::string> proof = cursor.base64_value();
		if (!proof || !cursor.expect_end()) return malformed();
		return check_proof(client_final_without_proof, *proof);
	}

	// RFC 5802 3: AuthMessage = client-first-message-bare + "," +
	// server-first-message + "," + client-final-message-without-proof;
	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage), and the
	// proof is good when H(ClientKey) equals StoredKey.
	Step check_proof(std::string_view client_final_without_proof, const std::string& proof) {
		std::string auth_message = client_first_bare_ + "," + server_first_ + "," +
		    std::string(client_final_without_proof);
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
