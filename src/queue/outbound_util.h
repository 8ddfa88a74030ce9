// Pure helpers of the outbound queue: the retry schedule, MX ordering and
// time formatting. No I/O here, so each piece has doctest unit tests (test_queue_util.cpp).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/client_reply.h"
#include "util/time.h"
#include "mailauth/resolver.h"

namespace tern::queue {

// Reply reading and dot-stuffing are shared with the LMTP client
// (smtp/client_reply.h).
using smtp::DotStuffer;
using smtp::Reply;
using smtp::ReplyParser;

// Seconds until the next attempt after `attempts_so_far` attempts:
// base × 2^attempts_so_far (doc/behaviour.md §12), plus `jitter_seconds`
// (the caller draws it, ± base/90, i.e. the model's ±5 s on 7.5 min).
int64_t retry_delay_seconds(int64_t base_s, int attempts_so_far, int64_t jitter_seconds = 0);

// Hosts to try for a domain from its MX answer, lowest preference first
// (RFC 5321 5.1), duplicates removed. Returns nullopt for a null MX
// (RFC 7505: the single record "."), which means the domain accepts no mail.
std::optional<std::vector<std::string>> mx_hosts_in_order(std::vector<mailauth::MxRecord> mx);

// Whether a host's addresses (in text) include both IPv4 and IPv6 ones.
bool dual_stack(const std::vector<std::string>& addresses);

// The order in which attempt `attempt` (1 for the first, as counted in the
// queue record) dials a host's addresses, as the model does
// (doc/behaviour.md §12): the first attempt in the order of the lookup
// (IPv4, then IPv6), each later one starting with the family the one
// before did not start with; the order within a family is kept.
std::vector<std::string> addresses_for_attempt(std::vector<std::string> addresses, int attempt);

// A permanent refusal with an enhanced code of class 5.7 (security or
// policy, RFC 3463) from a dual-stack host on the message's first attempt
// is retried instead of bounced, as the model does: such refusals often
// concern the address family the connection came from (no reverse name
// or SPF for the IPv6 address), and the next attempt starts with the
// other family.
bool retry_policy_refusal(std::string_view enhanced, int attempt, bool host_dual_stack);

// RFC 9422 4: the parameters of an EHLO "LIMITS" line ("RCPTMAX=50
// MAILMAX=1000", the keyword itself excluded). 0 for a limit not given or
// malformed (each is "NAME=" 1*DIGIT; unknown names are ignored).
struct ServerLimits {
	size_t rcpt_max = 0;
	size_t mail_max = 0;
};
ServerLimits parse_limits(std::string_view params);

// RFC 8689 3: whether a header section holds "TLS-Required: No" (field
// name and value case-insensitive, white space around the value ignored).
bool has_tls_required_no(std::string_view headers);

// ISO 8601 times: iso8601_utc() from util/time.h.

// An IP literal domain ("[1.2.3.4]", "[IPv6:::1]") → the address text; nullopt otherwise.
std::optional<std::string> address_literal(std::string_view domain);

// The message a queue file belongs to: file names are "<base>.<n>" (one hard
// link per recipient record); returns "<base>".
std::string message_base(std::string_view message_file);

}  // namespace tern::queue
