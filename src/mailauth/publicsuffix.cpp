// Public suffix look-ups via libpsl, see publicsuffix.h.
#include "mailauth/publicsuffix.h"

#include <libpsl.h>

namespace tern::mailauth {

namespace {

// Loaded once. psl_latest picks the newer of the library's built-in list and
// the distribution's file (Debian's publicsuffix package); the built-in list
// may be empty depending on how libpsl was built, so it is only the fallback.
const psl_ctx_t* context() {
	static const psl_ctx_t* ctx = [] {
		const psl_ctx_t* latest = psl_latest(nullptr);
		return latest ? latest : psl_builtin();
	}();
	return ctx;
}

}  // namespace

// Only the list's ICANN section counts, as in the model: its private
// section (github.io, blogspot.com: names a company hands out to its
// customers) would make each customer an organization of its own, so that
// DMARC's relaxed alignment no longer joins a company's own names, and a
// signature by d=github.io would be refused as one by a top-level domain
// (RFC 7489 3.2 leaves the list's choice to the receiver).
bool is_public_suffix(const std::string& domain) {
	const psl_ctx_t* ctx = context();
	return ctx && !domain.empty() && psl_is_public_suffix2(ctx, domain.c_str(), PSL_TYPE_ICANN);
}

std::string organizational_domain(const std::string& domain) {
	if (!context() || domain.empty()) return domain;
	// Its suffixes, longest first: the first that is a public suffix, with
	// the label before it. A domain that is a public suffix itself has no
	// organizational domain below it and stands for itself (as the model's
	// publicsuffix.Lookup does).
	size_t previous = std::string::npos;
	size_t label = 0;
	for (;;) {
		if (is_public_suffix(domain.substr(label)))
			return previous == std::string::npos ? domain : domain.substr(previous);
		size_t dot = domain.find('.', label);
		if (dot == std::string::npos) return domain;
		previous = label;
		label = dot + 1;
	}
}

}  // namespace tern::mailauth
