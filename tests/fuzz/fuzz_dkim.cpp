// Fuzzes DKIM-Signature field parsing and DKIM key record parsing
// (mailauth/dkim.h). Both are pure; they report errors in their result and
// must never throw or crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "mailauth/dkim.h"

using namespace tern::mailauth;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 1) return 0;
	uint8_t control = data[0];
	std::string text(reinterpret_cast<const char*>(data + 1), size - 1);

	switch (control % 3) {
	case 0:
	case 1: {
		// Case 1 supplies the field name, so the fuzzer spends its time on
		// the tag list.
		if (control % 3 == 1) text = "DKIM-Signature: " + text;
		dkim::SignatureParse parsed = dkim::parse_signature(text);
		if (parsed.signature) {
			FUZZ_CHECK(parsed.code == dkim::SigError::none);
			const dkim::Signature& sig = *parsed.signature;
			// Required tags (RFC 6376 6.1.1) are present in a parsed signature.
			FUZZ_CHECK(!sig.domain.empty() && !sig.selector.empty() && !sig.signed_headers.empty());
			(void)sig.header_canon();
			(void)sig.body_canon();
			(void)sig.hash();
			(void)sig.algorithm();
			(void)sig.b_prefix();
			// b= is removed, so the rest is no longer than the field.
			FUZZ_CHECK(sig.header_without_b.size() <= text.size());
		} else {
			FUZZ_CHECK(parsed.code != dkim::SigError::none);
			FUZZ_CHECK(!parsed.error.empty());
		}
		break;
	}
	case 2: {
		dkim::KeyParse parsed = dkim::parse_key_record(text);
		if (parsed.key) {
			const dkim::Key& key = *parsed.key;
			(void)key.revoked();
			(void)key.testing();
			(void)key.strict_identity();
			(void)key.service_allowed("email");
			FUZZ_CHECK(key.rsa_bits >= 0);
		}
		break;
	}
	}
	return 0;
}
