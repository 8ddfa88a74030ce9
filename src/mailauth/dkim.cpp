// DKIM verification and signing (RFC 6376 5, 6; RFC 8463).
#include "util/time.h"
#include "util/hex.h"
#include "mailauth/dkim.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "mailauth/dkim_internal.h"
#include "mailauth/publicsuffix.h"
#include "util/base64.h"
#include "util/strings.h"

namespace tern::mailauth::dkim {

namespace {

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }


VerifyResult verdict(Status status, std::string error) { return VerifyResult{status, std::move(error)}; }

Result to_result(const Signature* sig, VerifyResult v) {
	Result r;
	r.status = v.status;
	r.error = std::move(v.error);
	if (sig) r.signature = *sig;
	return r;
}

}  // namespace

std::string Result::key_comment() const {
	if (key && key->key_type == "rsa" && key->rsa_bits > 0) return std::to_string(key->rsa_bits) + " bit rsa";
	return "";
}

std::optional<VerifyResult> check_signature(const Signature& sig, const VerifyOptions& options) {
	// RFC 6376 5.4 and 6.1.1: From must be signed.
	bool from = false;
	for (const std::string& h : sig.signed_headers) from = from || iequals(h, "from");
	if (!from) return verdict(Status::permerror, "dkim: bad from headers: required \"from\" header not signed");

	// RFC 6376 6.1.1: an expired signature is not valid.
	std::time_t now = options.now ? options.now : std::time(nullptr);
	if (sig.expire_time && *sig.expire_time < now)
		return verdict(Status::permerror,
		               "dkim: signature has expired: expiration time " + quoted(iso8601_utc(*sig.expire_time)));

	// RFC 6376 6.1.1 / 8.1: refuse signatures by a public suffix (a domain
	// signing "above" any organizational domain).
	if (is_public_suffix(sig.domain))
		return verdict(Status::permerror,
		               "dkim: signed domain is top-level domain, above organizational domain: " + sig.domain);

	if (!sig.hash())
		return verdict(Status::permerror, "dkim: unknown hash algorithm: " + quoted(sig.hash_algorithm));
	// RFC 8301 3.1: verifiers must not consider SHA-1 signatures valid. A
	// permanent error for this signature (RFC 6376 3.9 PERMFAIL), decided
	// before any key is looked up.
	if (*sig.hash() == HashAlg::sha1)
		return verdict(Status::permerror,
		               "dkim: hash algorithm not allowed: " + quoted(sig.algorithm()) +
		                   " uses sha1 (RFC 8301)");
	if (!sig.header_canon())
		return verdict(Status::permerror,
		               "dkim: unknown canonicalization: header canonicalization " +
		                   quoted(sig.canonicalization));
	if (!sig.body_canon())
		return verdict(Status::permerror,
		               "dkim: unknown canonicalization: body canonicalization " + quoted(sig.canonicalization));

	// RFC 6376 3.5 q=: only dns/txt is defined (and is the default).
	if (!sig.query_methods.empty()) {
		bool dns_txt = false;
		for (const std::string& q : sig.query_methods) dns_txt = dns_txt || iequals(q, "dns/txt");
		if (!dns_txt) return verdict(Status::permerror, "dkim: no recognized query method: need dns/txt");
	}

	// RFC 6376 6.3 leaves acceptance to the verifier. The model's default
	// policy: no l= (a partly signed body), and Subject must be signed.
	if (options.default_policy) {
		if (sig.length)
			return verdict(Status::policy,
			               "dkim: signature rejected by policy: l= for length not acceptable");
		bool subject = false;
		for (const std::string& h : sig.signed_headers) subject = subject || iequals(h, "subject");
		if (!subject)
			return verdict(
			    Status::policy,
			    "dkim: signature rejected by policy: required header fields missing from signature: subject");
	}
	return std::nullopt;
}

VerifyResult verify_one(const Signature& sig, const Key& key, std::string_view header_data, std::string_view body_hash,
                        const VerifyOptions& options) {
	VerifyResult r = [&]() -> VerifyResult {
		// RFC 6376 3.6.1 h=: the record may restrict the hash algorithms.
		if (!key.hashes.empty()) {
			bool ok = false;
			std::string list;
			for (const std::string& h : key.hashes) {
				ok = ok || iequals(h, sig.hash_algorithm);
				list += (list.empty() ? "" : ",") + h;
			}
			if (!ok)
				return verdict(
				    Status::permerror,
				    "dkim: hash algorithm not allowed by dns record: dkim dns record expects one of " +
					quoted(list) + ", message uses " + quoted(sig.hash_algorithm));
		}
		// RFC 6376 6.1.2 step 6: k= must match the signature algorithm.
		if (!iequals(key.key_type, sig.sign_algorithm))
			return verdict(
			    Status::permerror,
			    "dkim: signature algorithm mismatch with dns record: dkim dns record requires algorithm " +
				quoted(key.key_type) + ", message has " + quoted(sig.sign_algorithm));
		// RFC 6376 3.6.1 p=: an empty value means the key was revoked.
		if (key.revoked()) return verdict(Status::permerror, "dkim: key has been revoked");
		// RFC 8301 3.2: verifiers must not accept RSA keys below 1024 bits.
		if (key.key_type == "rsa" && key.rsa_bits < min_rsa_bits)
			return verdict(Status::permerror, "dkim: key is too weak, need at least 1024 bits for rsa");
		// RFC 6376 3.6.1 s=: the key must be usable for email.
		if (!key.service_allowed("email"))
			return verdict(Status::permerror, "dkim: dns record not allowed for use with email");
		// RFC 6376 3.6.1 t=s: i= domain must be exactly d=.
		if (key.strict_identity() && sig.identity) {
			std::string idom = identity_domain(sig);
			if (idom != sig.domain)
				return verdict(
				    Status::permerror,
				    "dkim: dns record disallows mismatch of domain (d=) and identity (i=): i= identity domain " +
					quoted(idom) + " must match d= domain " + quoted(sig.domain));
		}
		auto hash = sig.hash();
		if (!hash)
			return verdict(Status::permerror,
			               "dkim: unknown hash algorithm: " + quoted(sig.hash_algorithm));

		// RFC 6376 6.1.3: check the signature over the header data first,
		// then the body hash.
		if (sig.sign_algorithm == "rsa") {
			std::string why;
			if (!detail::rsa_verify(key.public_key, *hash, header_data, sig.signature, &why))
				return verdict(Status::fail,
				               "dkim: signature verification failed: rsa verification: " + why);
		} else if (sig.sign_algorithm == "ed25519") {
			if (*hash != HashAlg::sha256)
				return verdict(Status::permerror,
				               "dkim: unknown signature algorithm: " + quoted(sig.algorithm()));
			if (!detail::ed25519_verify(key.public_key, header_data, sig.signature))
				return verdict(Status::fail,
				               "dkim: signature verification failed: ed25519 verification");
		} else {
			return verdict(Status::permerror,
			               "dkim: unknown signature algorithm: " + quoted(sig.sign_algorithm));
		}
		if (body_hash != sig.body_hash)
			return verdict(Status::fail,
			               "dkim: body hash does not match: signature bodyhash " +
			                   hex_lower(sig.body_hash) + " != calculated bodyhash " +
			                   hex_lower(body_hash));
		return verdict(Status::pass, "");
	}();
	// RFC 6376 3.6.1 t=y: the domain is testing DKIM; failures are not
	// held against the message.
	if (key.testing() && !options.ignore_test_mode && r.status != Status::pass) r.status = Status::none;
	return r;
}

std::vector<PendingSignature> prepare_verification(const std::vector<message::HeaderField>& headers,
                                                   const VerifyOptions& options) {
	std::vector<PendingSignature> out;
	for (size_t i = 0; i < headers.size(); i++) {
		if (headers[i].lower_name != "dkim-signature") continue;
		if (options.max_signatures > 0 && static_cast<int>(out.size()) >= options.max_signatures) break;
		PendingSignature p;
		p.field_index = i;
		SignatureParse parsed = parse_signature(headers[i].raw);
		if (!parsed.signature) {
			// RFC 6376 6.1.1: a signature that does not parse is PERMFAIL.
			p.early = to_result(
			    nullptr, verdict(Status::permerror, "parsing DKIM-Signature header: " + parsed.error));
			out.push_back(std::move(p));
			continue;
		}
		p.signature = std::move(*parsed.signature);
		if (auto early = check_signature(p.signature, options)) {
			p.early = to_result(&p.signature, std::move(*early));
			p.early->refused_before_lookup = true;
			out.push_back(std::move(p));
			continue;
		}
		p.dns_name = p.signature.selector + "._domainkey." + p.signature.domain;
		p.body_canon = *p.signature.body_canon();
		p.hash = *p.signature.hash();
		p.length = p.signature.length;
		out.push_back(std::move(p));
	}
	return out;
}

std::optional<Result> select_key(const PendingSignature& p, const DnsAnswer& answer, Key& key) {
	auto result = [&](Status status, std::string error) {
		return to_result(&p.signature, verdict(status, std::move(error)));
	};
	std::string name = quoted(p.dns_name + ".");
	// RFC 6376 6.1.2: no key record is PERMFAIL; a DNS failure TEMPFAIL.
	if (answer.not_found())
		return result(Status::permerror, "dkim: no dkim dns record for selector and domain: dns name " + name);
	if (!answer.found())
		return result(
		    Status::temperror,
		    "dkim: lookup of dkim dns record: dns name " + name + ": " +
			(answer.status == DnsStatus::permerror ? "permanent dns error" : "temporary dns error"));
	std::optional<Key> found;
	std::string last_error = "dkim: no dkim dns record for selector and domain: dns name " + name;
	for (const std::string& txt : answer.records) {
		KeyParse parsed = parse_key_record(txt);
		if (!parsed.key) {
			// A record claiming to be DKIM but broken is a permanent error;
			// other TXT records (wildcards, mistakes) are skipped.
			if (parsed.is_dkim)
				return result(Status::permerror,
				              "dkim: syntax error in dkim dns record: " + parsed.error);
			last_error = "dkim: syntax error in dkim dns record: not a dkim record: " + parsed.error;
			continue;
		}
		// RFC 6376 3.6.2.2: several records give undefined results; a
		// temporary error gives the domain a chance to fix it.
		if (found)
			return result(Status::temperror,
			              "dkim: multiple dkim dns record for selector and domain: dns name " + name);
		found = std::move(parsed.key);
	}
	if (!found) return result(Status::temperror, last_error);
	key = std::move(*found);
	return std::nullopt;
}

Result finish_verification(const PendingSignature& p, const DnsAnswer& answer,
                           const std::vector<message::HeaderField>& headers, std::string_view body_hash,
                           const VerifyOptions& options) {
	if (p.early) return *p.early;
	Key key;
	if (auto r = select_key(p, answer, key)) return *r;
	std::string data = header_hash_input(headers, p.signature);
	Result r = to_result(&p.signature, verify_one(p.signature, key, data, body_hash, options));
	r.testing = key.testing();
	r.key = std::move(key);
	return r;
}

std::vector<std::string> verified_domains(const std::vector<Result>& results) {
	std::vector<std::string> out;
	for (const Result& r : results) {
		if (r.status != Status::pass || !r.signature) continue;
		if (std::find(out.begin(), out.end(), r.signature->domain) == out.end())
			out.push_back(r.signature->domain);
	}
	return out;
}

std::string malformed_header_error(const std::string& why) { return "dkim: mail message header is malformed: " + why; }

void verify_message(Resolver& resolver, uint64_t owner, const std::string& message,
                    std::function<void(std::vector<Result>)> done, VerifyOptions options) {
	std::string error;
	auto section = message::parse_header_section(message, &error);
	if (!section) {
		Result r;
		r.status = Status::permerror;
		r.error = malformed_header_error(error);
		done({r});
		return;
	}
	if (options.now == 0) options.now = std::time(nullptr);

	struct State {
		std::vector<message::HeaderField> headers;
		std::vector<PendingSignature> pending;
		std::vector<std::string> body_hashes;
		std::vector<std::optional<Result>> results;
		size_t outstanding = 0;
		VerifyOptions options;
		std::function<void(std::vector<Result>)> done;
	};
	auto state = std::make_shared<State>();
	state->headers = std::move(section->fields);
	state->options = options;
	state->done = std::move(done);
	state->pending = prepare_verification(state->headers, options);
	state->results.resize(state->pending.size());
	state->body_hashes.resize(state->pending.size());

	// Hash the body once per (canonicalization, hash, length), before any
	// lookup, so `message` need not outlive this call.
	std::string_view body = std::string_view(message).substr(section->body_offset);
	std::map<std::tuple<int, int, int64_t>, std::string> cache;
	for (size_t i = 0; i < state->pending.size(); i++) {
		const PendingSignature& p = state->pending[i];
		if (p.early) {
			state->results[i] = *p.early;
			continue;
		}
		auto k = std::make_tuple(static_cast<int>(p.body_canon), static_cast<int>(p.hash),
		                         p.length.value_or(-1));
		auto it = cache.find(k);
		if (it == cache.end()) {
			BodyHasher hasher(p.body_canon, p.hash, p.length);
			hasher.update(body);
			it = cache.emplace(k, hasher.finish()).first;
		}
		state->body_hashes[i] = it->second;
		state->outstanding++;
	}

	auto finish_all = [state]() {
		std::vector<Result> out;
		for (auto& r : state->results) out.push_back(std::move(*r));
		auto cb = std::move(state->done);
		cb(std::move(out));
	};
	if (state->outstanding == 0) {
		finish_all();
		return;
	}
	// Count all queries as outstanding before starting any: a canned
	// resolver answers inside query().
	for (size_t i = 0; i < state->pending.size(); i++) {
		if (state->pending[i].early) continue;
		resolver.query(
		    owner, state->pending[i].dns_name, RrType::TXT, [state, i, finish_all](const DnsAnswer& answer) {
			    state->results[i] = finish_verification(state->pending[i], answer, state->headers,
			                                            state->body_hashes[i], state->options);
			    if (--state->outstanding == 0) finish_all();
		    });
	}
}

// ---------------------------------------------------------------- signing

namespace {

// Folds tag=value items onto lines of at most 78 characters (RFC 5322
// 2.1.1), continuation lines starting with a TAB.
class SigFolder {
public:
	explicit SigFolder(std::string start) : out_(std::move(start)), line_(out_.size()) {}
	void add(std::string_view item, bool space = true) {
		size_t need = item.size() + (space ? 1 : 0);
		if (line_ + need > 78 && line_ > 1) {
			out_ += "\r\n\t";
			line_ = 1;
		} else if (space) {
			out_ += ' ';
			line_++;
		}
		out_.append(item);
		line_ += item.size();
	}
	// Long base64 text, split wherever the line is full.
	void add_wrapped(std::string_view text) {
		while (!text.empty()) {
			if (line_ >= 78) {
				out_ += "\r\n\t";
				line_ = 1;
			}
			size_t take = std::min(text.size(), 78 - line_);
			out_.append(text.substr(0, take));
			line_ += take;
			text.remove_prefix(take);
		}
	}
	const std::string& text() const { return out_; }

private:
	std::string out_;
	size_t line_;
};

}  // namespace

std::optional<std::string> sign(const SignOptions& options, const std::vector<message::HeaderField>& headers,
                                std::string_view body_hash, std::string* error) {
	auto fail = [&](std::string why) -> std::optional<std::string> {
		if (error) *error = std::move(why);
		return std::nullopt;
	};
	if (!options.key.valid()) return fail("dkim: no private key loaded");
	if (options.domain.empty() || options.selector.empty()) return fail("dkim: domain and selector are required");
	int nfrom = 0;
	for (const message::HeaderField& h : headers) nfrom += h.lower_name == "from";
	// RFC 6376 5.4: From must be signed, so there must be one.
	if (nfrom != 1)
		return fail("dkim: bad from headers: message has " + std::to_string(nfrom) +
		            " from headers, need exactly 1");

	std::vector<std::string> signed_headers = options.headers;
	if (options.oversign) {
		// RFC 6376 8.15: list each present field once more than it occurs,
		// so an added instance breaks the signature.
		for (const std::string& name : options.headers) {
			std::string lname = ascii_lower(name);
			for (const message::HeaderField& h : headers)
				if (h.lower_name == lname) signed_headers.push_back(name);
		}
	}

	const char* algorithm = options.key.type() == KeyType::ed25519 ? "ed25519-sha256" : "rsa-sha256";
	auto canon_word = [](Canon c) { return c == Canon::simple ? "simple" : "relaxed"; };

	// The tags in the model's order; c= left out for simple/simple, its
	// default (RFC 6376 3.5).
	SigFolder f("DKIM-Signature: v=1;");
	f.add("d=" + options.domain + ";");
	f.add("s=" + options.selector + ";");
	if (options.identity) f.add("i=" + *options.identity + ";");
	f.add("a=" + std::string(algorithm) + ";");
	if (options.header_canon != Canon::simple || options.body_canon != Canon::simple)
		f.add("c=" + std::string(canon_word(options.header_canon)) + "/" + canon_word(options.body_canon) +
		      ";");
	f.add("t=" + std::to_string(static_cast<int64_t>(options.timestamp)) + ";");
	if (options.expiration_s > 0)
		f.add("x=" + std::to_string(static_cast<int64_t>(options.timestamp) + options.expiration_s) + ";");
	for (size_t i = 0; i < signed_headers.size(); i++) {
		std::string item = (i == 0 ? "h=" : "") + signed_headers[i] +
		    (i + 1 == signed_headers.size() ? ";" : ":");
		f.add(item, i == 0);
	}
	f.add("bh=" + base64_encode(body_hash) + ";");
	f.add("b=");

	// RFC 6376 3.7: the header data ends with this field, b= still empty.
	std::string data = header_hash_input(headers, signed_headers, options.header_canon, f.text());
	std::string signature = options.key.sign_data(data);
	if (signature.empty()) return fail("dkim: signing failed");
	f.add_wrapped(base64_encode(signature));
	return f.text() + "\r\n";
}

std::optional<std::string> sign_message(const SignOptions& options, std::string_view message, std::string* error) {
	std::string why;
	auto section = message::parse_header_section(message, &why);
	if (!section) {
		if (error) *error = malformed_header_error(why);
		return std::nullopt;
	}
	BodyHasher hasher(options.body_canon, HashAlg::sha256);
	hasher.update(message.substr(section->body_offset));
	return sign(options, section->fields, hasher.finish(), error);
}

}  // namespace tern::mailauth::dkim
