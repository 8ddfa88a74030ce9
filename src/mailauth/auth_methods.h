// The Authentication-Results entries (RFC 8601) the model writes for each
// check, in its order: iprev, dkim (one per signature), spf, dmarc on
// delivery; "auth" on submission (doc/behaviour.md §7). The header itself
// is built by message/auth_results.
#pragma once
#include <string>
#include <vector>

#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/iprev.h"
#include "mailauth/spf.h"
#include "message/auth_results.h"
#include "util/ipaddr.h"

namespace tern::mailauth {

// "iprev=pass policy.iprev=1.2.3.4" (RFC 8601 3).
message::AuthMethod iprev_auth_method(IprevStatus status, const IpAddr& remote_ip);

// One "dkim=..." per signature: "dkim=pass (2048 bit rsa) header.d=example.org
// header.s=sel header.a=rsa-sha256 header.b=<first 12 of b=> [header.i=...]",
// with "reason=<error>" for a failing one (RFC 8601 2.7.1, RFC 6008 for
// header.b). No signatures: "dkim=none reason="no dkim signatures"", or
// with `error` as reason when the header section could not be read.
std::vector<message::AuthMethod> dkim_auth_methods(const std::vector<dkim::Result>& results,
                                                   const std::string& error = "");

// "spf=pass smtp.mailfrom=example.org" or "smtp.helo=<name>" (RFC 8601
// 2.7.2); no property when `identity_domain` is empty (an address-literal
// HELO with a null reverse path).
message::AuthMethod spf_auth_method(SpfStatus status, SpfReceived::Identity identity,
                                    const std::string& identity_domain);

// "dmarc=pass header.from=example.org" (RFC 7489 11.2); without the
// property when the From domain is unknown (the From header did not parse:
// pass a default DmarcResult, status none).
message::AuthMethod dmarc_auth_method(const DmarcResult& result);

// Submission: "auth=pass smtp.mailfrom=alice@example.org" (RFC 8601 2.7.4).
message::AuthMethod submission_auth_method(const std::string& mailfrom);

}  // namespace tern::mailauth
