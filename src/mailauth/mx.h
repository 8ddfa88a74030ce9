// Whether a MAIL FROM domain can receive mail at all (RFC 7505 null MX,
// RFC 5321 5.1 implicit MX), as the model checks a sender domain
// (doc/behaviour.md §6). A sender whose domain cannot take replies gets
// 550 5.7.27 at MAIL; a lookup failure gets 451 4.4.0.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "mailauth/resolver.h"

namespace tern::mailauth {

enum class MxVerdict { accepts_mail, no_mail, temporary_error };

void check_mx_records(Resolver& r, uint64_t owner, const std::string& domain, std::function<void(MxVerdict)> done);

}  // namespace tern::mailauth
