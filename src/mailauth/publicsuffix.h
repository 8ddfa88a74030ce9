// Public suffix list (https://publicsuffix.org) look-ups, shared by DKIM
// (d= must not be a public suffix, RFC 6376 6.1.1) and DMARC (organizational
// domain, RFC 7489 3.2). Backed by libpsl with the system list.
#pragma once
#include <string>

namespace tern::mailauth {

// Whether `domain` (lower-case ASCII, no trailing dot) is itself a public
// suffix of the list's ICANN section, e.g. "com", "co.uk", not "github.io".
// An unlisted TLD counts as one (the list's implicit "*" rule).
bool is_public_suffix(const std::string& domain);

// RFC 7489 3.2 organizational domain: the public suffix plus one label,
// e.g. "a.b.example.co.uk" → "example.co.uk". Returns `domain` itself when
// it has no registrable part (it is a public suffix, or is empty).
std::string organizational_domain(const std::string& domain);

}  // namespace tern::mailauth
