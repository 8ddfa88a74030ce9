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

bool is_public_suffix(const std::string& domain) {
	const psl_ctx_t* ctx = context();
	return ctx && psl_is_public_suffix(ctx, domain.c_str());
}

std::string organizational_domain(const std::string& domain) {
	const psl_ctx_t* ctx = context();
	if (!ctx || domain.empty()) return domain;
	// NULL when the domain is a public suffix itself: no organizational
	// domain below it, so the domain stands for itself (as the model's
	// publicsuffix.Lookup does).
	const char* registrable = psl_registrable_domain(ctx, domain.c_str());
	return registrable ? std::string(registrable) : domain;
}

}  // namespace tern::mailauth
