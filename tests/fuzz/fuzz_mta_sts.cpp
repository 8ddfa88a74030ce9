// Fuzzes the MTA-STS text work (mailauth/mta_sts.h, RFC 8461): the TXT
// records, the policy file and the HTTP response that carries it all come
// from the destination domain, so from anyone. The first byte picks the
// reader. Checks that none crashes and that what they return keeps the
// RFC's limits.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_common.h"
#include "mailauth/mta_sts.h"

using namespace tern;
namespace sts = tern::mailauth::mta_sts;

namespace {

void check_policy(const sts::Policy& p) {
	// RFC 8461 3.2: max_age at most 31557600; mx needed unless mode none.
	FUZZ_CHECK(p.max_age >= 0 && p.max_age <= 31557600);
	FUZZ_CHECK(p.mode == sts::Mode::none || !p.mx.empty());
	for (const std::string& pattern : p.mx) FUZZ_CHECK(!pattern.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 1) return 0;
	std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
	switch (data[0] % 3) {
	case 0: {
		// TXT records split at NUL bytes.
		std::vector<std::string> records;
		size_t start = 0;
		for (size_t nul; (nul = input.find('\0', start)) != std::string_view::npos; start = nul + 1)
			records.emplace_back(input.substr(start, nul - start));
		records.emplace_back(input.substr(start));
		if (auto r = sts::pick_record(records)) {
			// RFC 8461 3.1: sts-id = 1*32(ALPHA / DIGIT).
			FUZZ_CHECK(!r->id.empty() && r->id.size() <= 32);
			for (char c : r->id) FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)));
		}
		break;
	}
	case 1:
		if (auto p = sts::parse_policy(input)) {
			check_policy(*p);
			(void)sts::mx_matches(*p, "mx.example.com");
		}
		break;
	default: {
		(void)sts::http_response_complete(input);
		std::string error;
		if (auto body = sts::policy_body_from_http(input, &error)) {
			FUZZ_CHECK(body->size() <= input.size());
			if (auto p = sts::parse_policy(*body)) check_policy(*p);
		} else {
			FUZZ_CHECK(!error.empty());
		}
		break;
	}
	}
	return 0;
}
