// ECDHE group choice (RFC 8422 5.1.1): ternd prefers X25519, then
// secp256r1, then secp384r1, whatever order the client lists them in.
#include "bb.h"

#include "helpers/tls_tools.h"

namespace {

// "Server Temp Key: X25519, 253 bits" → "X25519";
// "Server Temp Key: ECDH, prime256v1, 256 bits" → "ECDH, prime256v1".
std::string server_temp_key(const TlsProbe& probe) {
	const std::string marker = "Server Temp Key: ";
	size_t at = probe.output.find(marker);
	if (at == std::string::npos) return "";
	at += marker.size();
	size_t end = probe.output.find('\n', at);
	std::string key = probe.output.substr(at, end - at);
	// Drop the trailing ", N bits".
	size_t bits = key.rfind(", ");
	return bits == std::string::npos ? key : key.substr(0, bits);
}

}  // namespace

TEST_CASE("tls curves: the server picks X25519, then P-256, not the client's first") {
	TestCert cert;
	TernDaemon d(daemon_options(true, true, cert.config_patch()));
	REQUIRE_RUNNING(d);
	// The test certificate is ECDSA P-256, and a TLS 1.2 server may only
	// use it when the client lists P-256 (RFC 8422 5.1), so every offer
	// includes it.
	struct Offer {
		std::string groups;  // the client's order
		std::string chosen;  // s_client's "Server Temp Key: …" without the bit count
	};
	std::vector<Offer> offers = {
	    {"P-521:P-256:X25519", "X25519"},
	    {"X25519:P-521:P-256", "X25519"},
	    {"P-521:P-384:P-256", "ECDH, prime256v1"},
	    {"P-256:P-521", "ECDH, prime256v1"},
	};
	for (const auto& offer : offers) {
		INFO("client groups ", offer.groups);
		TlsProbe p = openssl_probe(d.smtp_port(), true, {"-tls1_2", "-groups", offer.groups});
		INFO(p.output);
		REQUIRE(p.handshake_ok);
		CHECK(server_temp_key(p) == offer.chosen);
	}
}
