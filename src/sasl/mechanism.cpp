// Mechanism factory, Step constructors and the system entropy source.
#include "sasl/mechanism.h"

#include <chrono>
#include <cstdint>

#include "sasl/crypto.h"
#include "sasl/mechanisms_impl.h"
#include "smtp/reply.h"
#include "util/base64.h"

namespace tern::sasl {

Step Step::make_challenge(std::string bytes) {
	Step step;
	step.kind = Kind::challenge;
	step.challenge = std::move(bytes);
	return step;
}

Step Step::make_lookup(std::string username) {
	Step step;
	step.kind = Kind::lookup;
	step.username = std::move(username);
	return step;
}

Step Step::make_success(std::string username) {
	Step step;
	step.kind = Kind::success;
	step.username = std::move(username);
	return step;
}

Step Step::make_failure(int code, std::string_view secode, std::string text) {
	Step step;
	step.kind = Kind::failure;
	step.code = code;
	step.secode = std::string(secode);
	step.text = std::move(text);
	return step;
}

Entropy system_entropy() {
	Entropy entropy;
	entropy.scram_server_nonce = [] {
		// RFC 5802 5.1 "r=": the server appends its own random part.
		return base64_encode(crypto::random_bytes(12));
	};
	entropy.cram_md5_challenge = [](std::string_view hostname) {
		std::string raw = crypto::random_bytes(8);
		uint64_t random = 0;
		for (unsigned char c : raw) random = (random << 8) | c;
		auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(
				       std::chrono::system_clock::now().time_since_epoch())
				       .count();
		return "<" + std::to_string(random) + "." + std::to_string(nanoseconds) + "@" + std::string(hostname) +
		    ">";
	};
	return entropy;
}

std::unique_ptr<Mechanism> make_mechanism(std::string_view name_upper, const std::string& hostname, Entropy entropy) {
	// A test may replace only one of the two sources.
	Entropy system = system_entropy();
	if (!entropy.scram_server_nonce) entropy.scram_server_nonce = system.scram_server_nonce;
	if (!entropy.cram_md5_challenge) entropy.cram_md5_challenge = system.cram_md5_challenge;

	std::string name(name_upper);
	for (char& c : name)
		if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
	if (name == "PLAIN") return detail::make_plain();
	if (name == "LOGIN") return detail::make_login();
	if (name == "CRAM-MD5") return detail::make_cram_md5(hostname, std::move(entropy));
	if (name == "SCRAM-SHA-1") return detail::make_scram(ScramHash::sha1, std::move(entropy));
	if (name == "SCRAM-SHA-256") return detail::make_scram(ScramHash::sha256, std::move(entropy));
	return nullptr;
}

namespace detail {

Step bad_user_pass() { return Step::make_failure(535, smtp::se::pol_bad_credentials8, "bad user/pass"); }

Step out_of_sequence() { return Step::make_failure(451, smtp::se::sys_other0, "sasl exchange out of sequence"); }

}  // namespace detail

}  // namespace tern::sasl
