// MTA-STS (RFC 8461) as pure text work for the sending side: choosing the
// _mta-sts TXT record, parsing the policy file, matching MX host names
// against its patterns, and reading the HTTPS response that carries the
// policy. No DNS or sockets here; the caller fetches and hands in the text.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::mailauth::mta_sts {

// RFC 8461 3.1: the TXT record at _mta-sts.<domain>.
struct Record {
	std::string id;
};

// From all TXT records of the name (each record's strings already joined
// into one string): records that do not begin with "v=STSv1;" (optional WSP
// around '=' and ';') are discarded; if not exactly one remains, or it is
// syntactically invalid (id missing or not 1*32 ALPHA/DIGIT, a malformed
// extension field), std::nullopt. Unknown extension fields are allowed; when
// id= repeats, the first one counts.
std::optional<Record> pick_record(const std::vector<std::string>& txt_records);

enum class Mode { enforce, testing, none };
const char* mode_name(Mode);  // "enforce", "testing", "none", as in the policy file
// The mode a name stands for (RFC 8461 3.2: case-sensitive), or nullopt.
std::optional<Mode> mode_from_name(std::string_view name);

// RFC 8461 3.2: the policy file.
struct Policy {
	Mode mode = Mode::none;
	std::vector<std::string> mx;  // patterns as written, lower-cased, trailing dot removed
	int64_t max_age = 0;          // seconds
};

// Parses the body of https://mta-sts.<domain>/.well-known/mta-sts.txt.
// D43: the most mx lines a policy may have.
constexpr size_t max_mx_patterns = 100;

// Lines end in LF or CRLF (the last may lack it); each is "key: value" with
// the value trimmed; blank lines are skipped, any other line without a colon
// is an error. Keys and the version and mode values are case-sensitive (the
// RFC 8461 3.2 ABNF uses %s). version must be "STSv1"; mode one of
// enforce/testing/none; max_age 1*10 DIGIT, capped to 31557600; mx may
// repeat (all kept) and each must be a host name, optionally "*." first;
// for other keys the first occurrence counts; unknown keys are ignored.
// Required: version, mode, max_age, and at least one mx unless mode is none;
// at most max_mx_patterns mx lines (D43).
// On error returns std::nullopt and sets *error (if non-null) to a short
// English reason.
std::optional<Policy> parse_policy(std::string_view body, std::string* error = nullptr);

// RFC 8461 4.1: whether MX host name `host` (any case, trailing dot allowed)
// matches one of the policy's mx patterns: an exact match, or a pattern
// "*.example.com" matching exactly one extra leftmost label.
bool mx_matches(const Policy& policy, std::string_view host);

// A minimal HTTP/1.x response reader for the policy fetch (RFC 8461 3.3:
// only status 200 is a policy, redirects are not followed; RFC 9112 for
// framing). `raw` is everything read from the connection up to its close (or
// the caller's size cap). Returns the body when the status is 200 and the
// media type of Content-Type is text/plain; handles Content-Length and
// "Transfer-Encoding: chunked" (chunk extensions and trailers ignored); with
// neither, the body is the rest of `raw`. Interim 1xx responses are skipped.
// Other transfer codings and a Content-Encoding other than identity are
// refused, as the body could not be read as text. Errors give std::nullopt
// and *error (if non-null), e.g. "HTTP status 404".
std::optional<std::string> policy_body_from_http(std::string_view raw, std::string* error = nullptr);

// True when `raw` already holds a complete response (headers plus, by
// Content-Length or the final zero-size chunk and the end of the trailers,
// the whole body), so the caller may stop reading before the peer closes.
// False with neither framing (the body ends at close) and for a response
// whose framing cannot be read (the caller reads on to the close or its cap,
// then policy_body_from_http says what is wrong).
bool http_response_complete(std::string_view raw);

}  // namespace tern::mailauth::mta_sts
