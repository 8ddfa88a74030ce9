// SASLprep (RFC 4013) through libidn's stringprep, see saslprep.h.
#include "sasl/saslprep.h"

#include <cstdlib>
#include <cstring>
#include <stringprep.h>

namespace tern::sasl {

std::optional<std::string> saslprep(std::string_view in, SaslprepUse use) {
	// stringprep works on NUL-terminated text: an embedded NUL (a control
	// character, prohibited by RFC 4013 2.3 anyway) would cut the input.
	if (in.find('\0') != std::string_view::npos) return std::nullopt;
	std::string text(in);
	Stringprep_profile_flags flags = use == SaslprepUse::stored ? STRINGPREP_NO_UNASSIGNED
								    : static_cast<Stringprep_profile_flags>(0);
	char* out = nullptr;
	int rc = stringprep_profile(text.c_str(), &out, "SASLprep", flags);
	// The input may be a password: do not leave a copy behind.
	std::memset(text.data(), 0, text.size());
	if (rc != STRINGPREP_OK) {
		std::free(out);
		return std::nullopt;
	}
	std::string prepared(out);
	std::memset(out, 0, prepared.size());
	std::free(out);
	return prepared;
}

}  // namespace tern::sasl
