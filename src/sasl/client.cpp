// Client side of SCRAM-SHA-256, PLAIN and LOGIN; see client.h.
#include "sasl/client.h"

#include <algorithm>

#include "sasl/crypto.h"
#include "util/base64.h"
#include "util/strings.h"

namespace tern::sasl {

namespace {

ClientStep answer(std::string response) { return ClientStep{true, std::move(response), {}}; }

ClientStep refuse(std::string error) { return ClientStep{false, {}, std::move(error)}; }

// PLAIN (RFC 4616 2): everything in the initial response, no authzid.
class PlainClient final : public ClientMechanism {
public:
	PlainClient(std::string username, std::string password)
		: message_(std::string(1, '\0') + username + '\0' + password) {}
	~PlainClient() override { crypto::wipe(message_); }
	std::string_view name() const override { return "PLAIN"; }
	std::optional<std::string> initial_response() override { return message_; }
	ClientStep respond(std::string_view) override {
		// RFC 4954 4: with an initial response the server has nothing to ask.
		return refuse("unexpected PLAIN challenge");
	}
	std::string finished() const override { return {}; }

private:
	std::string message_;
};

// LOGIN: the first challenge gets the username, the second the password.
// The challenge texts ("Username:", "Password:") vary between servers, so
// only their order counts.
class LoginClient final : public ClientMechanism {
public:
	LoginClient(std::string username, std::string password)
		: username_(std::move(username)), password_(std::move(password)) {}
	~LoginClient() override { crypto::wipe(password_); }
	std::string_view name() const override { return "LOGIN"; }
	std::optional<std::string> initial_response() override { return std::nullopt; }
	ClientStep respond(std::string_view) override {
		switch (answered_++) {
		case 0: return answer(username_);
		case 1: return answer(password_);
		default: return refuse("unexpected third LOGIN challenge");
		}
	}
	std::string finished() const override { return answered_ == 2 ? std::string() : "LOGIN exchange ended early"; }

private:
	std::string username_;
	std::string password_;
	int answered_ = 0;
};

// The attributes of a server message (RFC 5802 7): "x=value" separated by
// ','. Values of r=, s=, i= and v= hold no ','.
std::optional<std::string> attribute(std::string_view message, char name, size_t index) {
	size_t start = 0;
	for (size_t i = 0;; i++) {
		size_t comma = message.find(',', start);
		std::string_view part = message.substr(start,
		                                       comma == std::string_view::npos ? message.npos : comma - start);
		if (i == index) {
			if (part.size() < 2 || part[0] != name || part[1] != '=') return std::nullopt;
			return std::string(part.substr(2));
		}
		if (comma == std::string_view::npos) return std::nullopt;
		start = comma + 1;
	}
}

// SCRAM-SHA-256 without channel binding (gs2 header "n,,"), RFC 5802 5.
class ScramSha256Client final : public ClientMechanism {
public:
	ScramSha256Client(const std::string& username, std::string password, std::string nonce)
		: password_(std::move(password)), nonce_(std::move(nonce)) {
		client_first_bare_ = "n=" + scram_escape_name(username) + ",r=" + nonce_;
	}
	~ScramSha256Client() override {
		crypto::wipe(password_);
		crypto::wipe(server_signature_);
	}
	std::string_view name() const override { return "SCRAM-SHA-256"; }
	std::optional<std::string> initial_response() override {
		state_ = State::want_server_first;
		return std::string(gs2_header) + client_first_bare_;
	}

	ClientStep respond(std::string_view challenge) override {
		switch (state_) {
		case State::want_server_first: return server_first(challenge);
		case State::want_server_final: return server_final(challenge);
		default: return refuse("unexpected SCRAM challenge");
		}
	}

	std::string finished() const override {
		if (state_ == State::verified) return {};
		// RFC 5802 5: the client must verify ServerSignature before it
		// considers the server authenticated.
		return "server accepted SCRAM-SHA-256 without proving that it knows the password";
	}

private:
	enum class State { initial, want_server_first, want_server_final, verified, failed };
	static constexpr std::string_view gs2_header = "n,,";

	ClientStep fail(std::string error) {
		state_ = State::failed;
		return refuse(std::move(error));
	}

	ClientStep server_first(std::string_view message) {
		if (message.rfind("m=", 0) == 0)  // RFC 5802 5.1: unknown mandatory extension
			return fail("SCRAM server-first has a mandatory extension");
		auto nonce = attribute(message, 'r', 0);
		auto salt_b64 = attribute(message, 's', 1);
		auto iterations_text = attribute(message, 'i', 2);
		if (!nonce || !salt_b64 || !iterations_text) return fail("malformed SCRAM server-first message");
		// RFC 5802 5.1: the server's nonce starts with ours and adds to it.
		if (nonce->size() <= nonce_.size() || nonce->compare(0, nonce_.size(), nonce_) != 0)
			return fail("SCRAM server nonce does not extend the client nonce");
		auto salt = base64_decode(*salt_b64);
		if (!salt || salt->empty()) return fail("malformed SCRAM salt");
		int iterations = 0;
		if (iterations_text->empty() || iterations_text->size() > 9 ||
		    !std::all_of(iterations_text->begin(), iterations_text->end(),
		                 [](char c) { return c >= '0' && c <= '9'; }))
			return fail("malformed SCRAM iteration count");
		iterations = std::stoi(*iterations_text);
		if (iterations < 1 || iterations > scram_client_max_iterations)
			return fail("SCRAM iteration count " + *iterations_text + " out of range (1.." +
			            std::to_string(scram_client_max_iterations) + ")");

		// RFC 5802 3: the keys and proofs.
		const ScramHash h = ScramHash::sha256;
		std::string salted = crypto::pbkdf2(h, password_, *salt, iterations);
		std::string client_key = crypto::hmac(h, salted, "Client Key");
		std::string stored_key = crypto::digest(h, client_key);
		std::string server_key = crypto::hmac(h, salted, "Server Key");
		std::string without_proof = "c=" + base64_encode(gs2_header) + ",r=" + *nonce;
		std::string auth_message = client_first_bare_ + "," + std::string(message) + "," + without_proof;
		std::string proof = crypto::hmac(h, stored_key, auth_message);  // ClientSignature
		for (size_t i = 0; i < proof.size(); i++) proof[i] = static_cast<char>(proof[i] ^ client_key[i]);
		server_signature_ = crypto::hmac(h, server_key, auth_message);
		crypto::wipe(salted);
		crypto::wipe(client_key);
		crypto::wipe(password_);
		state_ = State::want_server_final;
		return answer(without_proof + ",p=" + base64_encode(proof));
	}

	ClientStep server_final(std::string_view message) {
		if (auto error = attribute(message, 'e', 0)) return fail("SCRAM server error: " + *error);
		auto verifier = attribute(message, 'v', 0);
		if (!verifier) return fail("malformed SCRAM server-final message");
		auto signature = base64_decode(*verifier);
		if (!signature || !crypto::constant_time_equal(*signature, server_signature_))
			return fail("wrong SCRAM server signature: the server does not know the password");
		state_ = State::verified;
		// RFC 4954 4: SMTP has no "additional data with success", so the
		// server sent its final message as a challenge; the answer is empty.
		return answer("");
	}

	std::string password_;
	std::string nonce_;
	std::string client_first_bare_;
	std::string server_signature_;
	State state_ = State::initial;
};

std::string random_nonce() { return base64_encode(crypto::random_bytes(18)); }

}  // namespace

std::string scram_escape_name(std::string_view name) {
	std::string out;
	for (char c : name) {
		if (c == ',')
			out += "=2C";
		else if (c == '=')
			out += "=3D";
		else
			out += c;
	}
	return out;
}

std::string choose_client_mechanism(const std::vector<std::string>& offered) {
	for (std::string_view wanted : {"SCRAM-SHA-256", "PLAIN", "LOGIN"})
		for (const auto& name : offered)
			if (iequals(name, wanted)) return std::string(wanted);
	return {};
}

std::unique_ptr<ClientMechanism> make_client_mechanism(std::string_view name, const std::string& username,
                                                       const std::string& password, NonceSource nonce) {
	if (iequals(name, "SCRAM-SHA-256"))
		return std::make_unique<ScramSha256Client>(username, password, nonce ? nonce() : random_nonce());
	if (iequals(name, "PLAIN")) return std::make_unique<PlainClient>(username, password);
	if (iequals(name, "LOGIN")) return std::make_unique<LoginClient>(username, password);
	return nullptr;
}

}  // namespace tern::sasl
