// The Authentication-Results header field (RFC 8601) as the model writes it:
// pure formatting, no knowledge of how the results were obtained (the
// mailauth layer turns its results into AuthMethod entries).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace tern::message {

// One "ptype.property=value" of a method (RFC 8601 2.2), e.g.
// "smtp.mailfrom=example.net".
struct AuthProp {
	std::string type;      // "smtp", "header", "policy"
	std::string property;  // "mailfrom", "d", "iprev"
	std::string value;
	// Address-like values (local-part@domain or a domain) are written as
	// they are; anything else is a RFC 2045 value and may need quoting
	// (RFC 8601 2.2).
	bool is_address_or_domain = false;
	std::string comment;  // written as " (comment)" after the value when set
};

// One "method=result" resinfo (RFC 8601 2.2), e.g. "spf=pass".
struct AuthMethod {
	std::string method;  // "iprev", "dkim", "spf", "dmarc", "auth"
	std::string result;  // "pass", "fail", "none", "temperror", ...
	// Written as "(comment)" after the result, but only when a reason or a
	// property follows (a comment alone says nothing to parse).
	std::string comment;
	std::string reason;  // "reason=<value>" when set
	std::vector<AuthProp> props;
};

// RFC 2045 value: written as-is when it is a non-empty token without
// quote, backslash, control or space characters, else as a quoted string
// with '"' and '\' escaped. UTF-8 stays unquoted (RFC 6532 3.2).
std::string auth_results_value(std::string_view text);

// "Authentication-Results: [(comment) ]<hostname>; m1=r1 p=v ...;\r\n\tm2=r2
// ...\r\n": methods separated by ";", every item (method=result, comment,
// reason, each property) added with single spaces and folded (CRLF TAB)
// before an item that would take the line past 78 columns (HeaderBuilder).
// No methods gives "<hostname>; none" (RFC 8601 2.2 no-result).
std::string build_authentication_results(const std::string& hostname, const std::string& comment,
                                         const std::vector<AuthMethod>& methods);

}  // namespace tern::message
