// Fuzzes the SMTP command-argument parser (smtp/parser.h) with every
// ParseMode combination. The parser's contract is to return a Result: a value,
// or the refusal as its error; any exception, crash or sanitizer report is a
// bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "smtp/parser.h"
#include "smtp/reply.h"

using namespace tern;

namespace {

void use_address(const smtp::Address& address) {
	// Rendering must work for anything the parser accepted.
	std::string text = address.to_string();
	std::string ascii = address.to_ascii_string();
	FUZZ_CHECK(!text.empty());
	FUZZ_CHECK(!ascii.empty());
	FUZZ_CHECK(address.ip.has_value() || !address.domain.ascii.empty());
}

// A refusal is one reply: a 5xx code and text.
template <class T>
void check_refusal(const smtp::Result<T>& r) {
	if (!r.ok()) FUZZ_CHECK(r.error().code >= 500 && r.error().code < 600 && !r.error().text.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	if (size < 1) return 0;
	// First byte: the ParseMode flags (low 4 bits) and which command (high 4).
	uint8_t control = data[0];
	smtp::ParseMode mode;
	mode.submission = control & 1;
	mode.pedantic = control & 2;
	mode.smtputf8 = control & 4;
	mode.authenticated = control & 8;
	std::string_view args(reinterpret_cast<const char*>(data + 1), size - 1);

	switch ((control >> 4) % 10) {
	case 0:
		if (auto mail = smtp::parse_mail(args, mode)) {
			if (mail->from) use_address(*mail->from);
			if (mail->size) FUZZ_CHECK(*mail->size >= 0);
		}
		break;
	case 1:
		if (auto rcpt = smtp::parse_rcpt(args, mode); rcpt && !rcpt->postmaster) use_address(rcpt->to);
		break;
	case 2:
	case 3:
		if (auto hello = smtp::parse_hello(args, control & 0x10, mode))
			FUZZ_CHECK(hello->ip.has_value() || !hello->domain.ascii.empty());
		break;
	case 4:
		if (auto auth = smtp::parse_auth(args, mode)) FUZZ_CHECK(!auth->mechanism.empty());
		break;
	case 5: check_refusal(smtp::parse_no_args(args, mode)); break;
	case 6: check_refusal(smtp::parse_vrfy(args, mode)); break;
	case 7: check_refusal(smtp::parse_noop(args, mode)); break;
	case 8:
		if (auto domain = smtp::parse_domain(args)) {
			FUZZ_CHECK(!domain->ascii.empty());
			// The A-label form is a valid domain itself.
			FUZZ_CHECK(smtp::parse_domain(domain->ascii).has_value());
		}
		break;
	case 9:
		if (auto address = smtp::parse_address(args)) use_address(*address);
		break;
	}
	// quote_go must handle any bytes (invalid UTF-8 included).
	std::string quoted = smtp::quote_go(args);
	FUZZ_CHECK(quoted.size() >= 2 && quoted.front() == '"' && quoted.back() == '"');
	return 0;
}
