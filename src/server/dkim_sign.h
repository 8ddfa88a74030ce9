// DKIM signing as a domain's configuration asks (its selectors listed in
// `dkim.sign`, RFC 6376 5): used for submitted mail and for the DSNs tern
// writes, with the keys loaded with the configuration.
#pragma once
#include <ctime>
#include <string>
#include <vector>

#include "config/config.h"
#include "mailauth/dkim.h"
#include "message/dsn.h"

namespace tern::server {

// One SignOptions per configured signing selector of `domain` whose key
// was loaded; one that was not is logged and skipped (mail still goes
// out, unsigned by that selector, as the model does). Empty when the domain signs nothing.
// i= names the From address, its localpart in the domain's canonical form
// (catch-all suffix removed, lower case), as the model signs.
std::vector<mailauth::dkim::SignOptions> dkim_sign_options(const config::Config& cfg, const std::string& domain,
                                                           const std::string& from_localpart, std::time_t now);

// The DKIM-Signature fields for an in-memory message (DSNs are small),
// signed as the domain of its From address `from` (localpart@domain, the
// form a DSN's From has) signs, with i= naming that address.
std::string dkim_sign_text(const config::Config& cfg, const std::string& from, const std::string& message,
                           std::time_t now);

// A DSN composed (RFC 3464; RFC 6533 in its UTF-8 form) and signed by
// dkim_sign_text as its From address's domain (doc/behaviour.md §13):
// each form a notice is sent in carries its own signature.
std::string signed_dsn_text(const config::Config& cfg, const message::DsnMessage& dsn, bool utf8, std::time_t now);

}  // namespace tern::server
