// DKIM signatures (RFC 6376) with RSA-SHA256, RSA-SHA1 (verify only) and
// Ed25519-SHA256 (RFC 8463).
//
// Three layers, so the session can split the work between threads:
//  1. pure parsing: parse_signature, parse_key_record;
//  2. canonicalization and hashing: BodyHasher (streaming, runs on a worker
//     thread over the message file), header_hash_input;
//  3. operations: prepare/finish_verification (DNS on the loop in between),
//     verify_one, sign, key loading and generation.
// verify_message ties them together for ternctl and tests.
#pragma once
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailauth/resolver.h"
#include "message/header_parse.h"

namespace tern::mailauth::dkim {

// RFC 8601 2.7.1 result words.
enum class Status { none, pass, fail, policy, neutral, temperror, permerror };
std::string_view status_name(Status);

enum class Canon { simple, relaxed };
enum class HashAlg { sha1, sha256 };
enum class KeyType { rsa, ed25519 };
// RFC 8301 3.2: signers use RSA keys of at least 1024 bits, and verifiers
// refuse smaller ones.
constexpr int min_rsa_bits = 1024;

// ---------------------------------------------------------------- parsing

// A parsed DKIM-Signature field (RFC 6376 3.5). Tag names are case
// sensitive; values compared case-insensitively are kept lower case.
struct Signature {
	int version = 1;                                 // v=
	std::string sign_algorithm;                      // a= first part: "rsa", "ed25519" (lower case)
	std::string hash_algorithm;                      // a= second part: "sha256", "sha1"
	std::string signature;                           // b=, decoded
	std::string signature_base64;                    // b= as written, whitespace removed
	std::string body_hash;                           // bh=, decoded
	std::string canonicalization = "simple/simple";  // c= as written (lower case)
	std::string domain;                              // d=, lower case, A-labels (RFC 8616 4)
	std::vector<std::string> signed_headers;         // h=, as written; repeats matter
	std::optional<std::string> identity;             // i=
	std::optional<int64_t> length;                   // l=
	std::vector<std::string> query_methods;          // q=
	std::string selector;                            // s=, lower case, A-labels
	std::optional<int64_t> sign_time;                // t=
	std::optional<int64_t> expire_time;              // x=
	std::vector<std::string> copied_headers;         // z=, still quoted-printable

	// The whole field as received with the b= value (and the FWS around it)
	// removed and without the final CRLF: the last input of the header hash
	// (RFC 6376 3.7).
	std::string header_without_b;

	std::string algorithm() const { return sign_algorithm + "-" + hash_algorithm; }
	// Parsed c= halves; nullopt when a half is not simple/relaxed.
	std::optional<Canon> header_canon() const;
	std::optional<Canon> body_canon() const;
	std::optional<HashAlg> hash() const;
	// First 12 characters of b= for Authentication-Results header.b (RFC 6008).
	std::string b_prefix() const { return signature_base64.substr(0, 12); }
};

enum class SigError {
	none,
	not_dkim_signature,  // field name is not DKIM-Signature
	syntax,              // tag-list or value syntax
	duplicate_tag,       // RFC 6376 3.2
	missing_tag,         // v a b bh d h s are required (RFC 6376 6.1.1)
	unknown_version,     // v= other than 1
	bad_body_hash_size,  // bh= length does not fit the hash
	timestamps,          // t= not before x= (RFC 6376 3.5)
	identity_domain,     // i= domain not d= or below it (RFC 6376 3.5)
};

struct SignatureParse {
	std::optional<Signature> signature;
	SigError code = SigError::none;
	std::string error;  // e.g. `missing required tag: "bh"`
};

// `field_raw` is the complete header field as in the message (name, colon,
// folded value; a final CRLF is optional).
SignatureParse parse_signature(std::string_view field_raw);
// The domain of a signature's i=, lower case, A-labels, to compare with d=.
std::string identity_domain(const Signature& sig);

// A DKIM key record (RFC 6376 3.6.1), served at <s>._domainkey.<d>.
struct Key {
	std::string version = "DKIM1";              // v=
	std::vector<std::string> hashes;            // h=, empty means all
	std::string key_type = "rsa";               // k=, lower case
	std::string notes;                          // n=
	std::string public_key;                     // p=, decoded; empty: revoked
	std::vector<std::string> services = {"*"};  // s=
	std::vector<std::string> flags;             // t=, e.g. "y", "s"
	int rsa_bits = 0;                           // modulus size of an RSA key

	bool revoked() const { return public_key.empty(); }
	bool testing() const;          // t=y (RFC 6376 3.6.1)
	bool strict_identity() const;  // t=s: i= domain must equal d=
	bool service_allowed(std::string_view service) const;
};

struct KeyParse {
	std::optional<Key> key;
	// Whether the text claims to be a DKIM record (has v=DKIM1 or parsed
	// as a tag list): a broken DKIM record is a permerror, other TXT
	// records at the name are ignored.
	bool is_dkim = false;
	std::string error;
};
KeyParse parse_key_record(std::string_view txt);

// ------------------------------------------- canonicalization and hashing

// Streaming body canonicalization and hash (RFC 6376 3.4.3, 3.4.4, 3.7).
// Feed the body (the bytes after the header's empty line) in chunks of any
// size; CRLFs split across chunks and trailing empty lines are handled.
// `length_limit` is the l= tag: only that many canonicalized bytes count.
class BodyHasher {
public:
	BodyHasher(Canon body_canon, HashAlg hash, std::optional<int64_t> length_limit = std::nullopt);
	~BodyHasher();
	BodyHasher(const BodyHasher&) = delete;
	BodyHasher& operator=(const BodyHasher&) = delete;
	BodyHasher(BodyHasher&&) noexcept;
	BodyHasher& operator=(BodyHasher&&) noexcept;

	void update(std::string_view chunk);
	// The raw digest (20 or 32 bytes). Call once.
	std::string finish();
	// Canonicalized bytes produced so far (before the l= cut).
	int64_t canonical_length() const { return produced_; }

private:
	void emit(std::string_view bytes);
	void content(std::string_view bytes);
	void flush_line_ends();

	struct Digest;
	std::unique_ptr<Digest> digest_;
	Canon canon_;
	std::optional<int64_t> limit_;
	int64_t produced_ = 0;
	int64_t pending_crlf_ = 0;  // line ends not yet known to be inside the body
	bool pending_cr_ = false;   // a CR whose LF may arrive in the next chunk
	bool pending_wsp_ = false;  // relaxed: a WSP run not yet known to be inside a line
	bool any_content_ = false;
	std::string out_;                 // batched output for the digest
	std::string* capture_ = nullptr;  // canonicalize_body: keeps the canonical bytes

	friend std::string canonicalize_body(Canon, std::string_view);
};

// Canonicalized body (whole, ignoring l=), for tests and small messages.
std::string canonicalize_body(Canon, std::string_view body);

// One header field in relaxed canonical form (RFC 6376 3.4.2), without the
// final CRLF: "name:value".
std::string relaxed_header(std::string_view field_raw);

// The data the signature covers (RFC 6376 3.7): the h= fields, each taken
// from the bottom-most not yet used instance (5.4.2), absent ones skipped,
// in the signature's header canonicalization, then `sig_header_without_b`
// canonicalized the same way without its final CRLF.
std::string header_hash_input(const std::vector<message::HeaderField>& headers,
                              const std::vector<std::string>& signed_headers, Canon header_canon,
                              std::string_view sig_header_without_b);
std::string header_hash_input(const std::vector<message::HeaderField>& headers, const Signature&);

// Digest of `data` with `hash` (raw bytes).
std::string digest(HashAlg hash, std::string_view data);

// ---------------------------------------------------------------- keys

struct PrivateKeyImpl;

// A loaded signing key. Copies share the key; sign is thread-safe.
class PrivateKey {
public:
	PrivateKey() = default;
	bool valid() const { return impl_ != nullptr; }
	KeyType type() const;
	int bits() const;  // RSA modulus size; 256 for Ed25519
	// The TXT record value to publish: "v=DKIM1; k=rsa; p=..." (RFC 6376 3.6.1).
	std::string txt_record() const;
	// Signs the header hash input: RSA PKCS#1 v1.5 over SHA-256 of `data`;
	// Ed25519 (RFC 8463 3) over the SHA-256 digest of `data`.
	std::string sign_data(std::string_view data) const;

	std::shared_ptr<PrivateKeyImpl> impl_;  // internal: set by the loaders
};

// PEM text: "RSA PRIVATE KEY" (PKCS#1) or "PRIVATE KEY" (PKCS#8, RSA or
// Ed25519). nullopt with a reason on failure.
std::optional<PrivateKey> parse_private_key(std::string_view pem, std::string* error = nullptr);
std::optional<PrivateKey> load_private_key(const std::string& path, std::string* error = nullptr);

struct GeneratedKey {
	std::string pem;         // PKCS#8 "PRIVATE KEY"
	std::string txt_record;  // "v=DKIM1; k=rsa; p=..."
};
// `rsa_bits` is used for RSA only (at least 1024).
std::optional<GeneratedKey> generate_key(KeyType type, int rsa_bits = 2048, std::string* error = nullptr);

// ---------------------------------------------------------------- signing

struct SignOptions {
	std::string domain;    // d=
	std::string selector;  // s=
	PrivateKey key;
	Canon header_canon = Canon::relaxed;
	Canon body_canon = Canon::relaxed;
	// Header fields to sign (SPEC example: From To Subject Date Message-Id).
	std::vector<std::string> headers = {"From", "To", "Subject", "Date", "Message-Id"};
	// RFC 6376 5.4.2 oversigning: each name is listed once more per
	// instance in the message, so no further instance can be added
	// without breaking the signature.
	bool oversign = true;
	std::optional<std::string> identity;  // i=, e.g. "alice@example.org"
	int64_t expiration_s = 0;             // 0: no x= tag
	std::time_t timestamp = 0;            // t=
};

// The body hash the signature needs (SHA-256 in the given canonicalization).
// Use a BodyHasher(options.body_canon, HashAlg::sha256) on a worker thread.
//
// Returns the complete "DKIM-Signature: ...\r\n" field, folded at 78
// columns, with b= last. Fails (nullopt, `error`) when the key is not
// loaded or the message does not have exactly one From field (RFC 6376 5.4).
std::optional<std::string> sign(const SignOptions&, const std::vector<message::HeaderField>& headers,
                                std::string_view body_hash, std::string* error = nullptr);

// Convenience for ternctl/tests: hashes the body of `message` and signs.
std::optional<std::string> sign_message(const SignOptions&, std::string_view message, std::string* error = nullptr);

// ---------------------------------------------------------------- verifying

struct VerifyResult {
	Status status = Status::permerror;
	std::string error;  // empty on pass; the model's error text, e.g. "dkim: body hash does not match: ..."
};

struct VerifyOptions {
	std::time_t now = 0;  // 0: time(nullptr)
	// Seed default (RFC 6376 6.3 leaves policy to the verifier): signatures
	// with l= and signatures not covering Subject get status policy.
	bool default_policy = true;
	// With false (the model's setting), a non-passing signature whose key
	// has t=y gets status none (RFC 6376 3.6.1 "testing").
	bool ignore_test_mode = false;
	int max_signatures = 0;  // 0: no limit
};

// Checks the signature against the key record and the computed hashes
// (RFC 6376 6.1.3). `header_data` is header_hash_input for this
// signature; `body_hash` comes from a BodyHasher set up with the
// signature's body canon, hash and l=.
VerifyResult verify_one(const Signature&, const Key&, std::string_view header_data, std::string_view body_hash,
                        const VerifyOptions& = {});

// Checks done before any DNS lookup (RFC 6376 6.1.1): From signed, not
// expired, d= not a public suffix, known hash, canonicalization and query
// method, then the default policy. nullopt when the signature may go on.
std::optional<VerifyResult> check_signature(const Signature&, const VerifyOptions&);

// The result of one DKIM-Signature field.
struct Result {
	Status status = Status::permerror;
	std::optional<Signature> signature;  // nullopt when the field did not parse
	std::optional<Key> key;              // the record, when one was found
	std::string error;
	bool testing = false;  // key has t=y
	// Refused for its tags or the local policy before its key was looked
	// up: Authentication-Results then names no header.* properties, as the
	// model's does (ternctl still shows d=, s= and a=).
	bool refused_before_lookup = false;

	// Fields for output lines and Authentication-Results (empty when unparsed).
	std::string domain() const { return signature ? signature->domain : ""; }
	std::string selector() const { return signature ? signature->selector : ""; }
	std::string algorithm() const { return signature ? signature->algorithm() : ""; }
	std::string b_prefix() const { return signature ? signature->b_prefix() : ""; }
	// "2048 bit rsa" for Authentication-Results comments, else empty.
	std::string key_comment() const;
};

// The steps of verifying a message, for the session layer:
//  prepare_verification (pure) → for each pending signature: a TXT lookup of
//  `dns_name` on the loop and a BodyHasher(body spec) over the body on a
//  worker → finish_verification.
struct PendingSignature {
	size_t field_index = 0;  // index into the header fields
	Signature signature;
	std::string dns_name;  // "<s>._domainkey.<d>"
	Canon body_canon = Canon::simple;
	HashAlg hash = HashAlg::sha256;
	std::optional<int64_t> length;
	std::optional<Result> early;  // set: decided without DNS or hashing
};
std::vector<PendingSignature> prepare_verification(const std::vector<message::HeaderField>& headers,
                                                   const VerifyOptions& = {});

// Lookup status and key selection (RFC 6376 6.1.2): not found → permerror,
// DNS failure → temperror, several DKIM records → temperror, a broken DKIM
// record → permerror. On success returns nullopt and sets `key`.
std::optional<Result> select_key(const PendingSignature&, const DnsAnswer&, Key& key);

Result finish_verification(const PendingSignature&, const DnsAnswer&, const std::vector<message::HeaderField>& headers,
                           std::string_view body_hash, const VerifyOptions& = {});

// The d= domains of passing signatures, each once, in order (doc/behaviour.md
// doc/behaviour.md D14: de-duplicated across all results, unlike the model).
std::vector<std::string> verified_domains(const std::vector<Result>&);

// The error for a message whose header section does not parse (`why` is
// the parser's complaint): no signature of it can be checked.
std::string malformed_header_error(const std::string& why);

// Verifies every DKIM-Signature of `message` (CRLF line ends): one Result
// per signature field, in header order; empty when there is none. A header
// section that does not parse gives a single permerror result without a
// signature. The callback runs once, on the resolver's thread.
void verify_message(Resolver&, uint64_t owner, const std::string& message,
                    std::function<void(std::vector<Result>)> done, VerifyOptions = {});

}  // namespace tern::mailauth::dkim
