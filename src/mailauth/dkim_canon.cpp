// DKIM canonicalization and hashing (RFC 6376 3.4, 3.7).
#include "mailauth/dkim.h"

#include <mbedtls/md.h>

#include <unordered_map>
#include <stdexcept>
#include <vector>

#include "util/sha256.h"
#include "util/strings.h"

namespace tern::mailauth::dkim {

namespace {

// SHA-1 (verification of old signatures only) goes through mbedTLS.
const mbedtls_md_info_t* sha1_info() { return mbedtls_md_info_from_type(MBEDTLS_MD_SHA1); }


}  // namespace

struct BodyHasher::Digest {
	HashAlg hash;
	Sha256 sha256;
	mbedtls_md_context_t sha1;
	explicit Digest(HashAlg alg) : hash(alg) {
		mbedtls_md_init(&sha1);
		if (hash == HashAlg::sha1 &&
		    (mbedtls_md_setup(&sha1, sha1_info(), 0) != 0 || mbedtls_md_starts(&sha1) != 0))
			throw std::runtime_error("dkim: cannot set up hash");
	}
	~Digest() { mbedtls_md_free(&sha1); }
	void update(std::string_view bytes) {
		if (hash == HashAlg::sha256)
			sha256.update(bytes);
		else
			mbedtls_md_update(&sha1, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
	}
	std::string finish() {
		if (hash == HashAlg::sha256) return std::string(Sha256::view(sha256.finish()));
		unsigned char out[MBEDTLS_MD_MAX_SIZE];
		mbedtls_md_finish(&sha1, out);
		return std::string(reinterpret_cast<char*>(out), mbedtls_md_get_size(sha1_info()));
	}
};

std::string digest(HashAlg hash, std::string_view data) {
	if (hash == HashAlg::sha256) return std::string(Sha256::view(Sha256::of(data)));
	unsigned char out[MBEDTLS_MD_MAX_SIZE];
	mbedtls_md(sha1_info(), reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
	return std::string(reinterpret_cast<char*>(out), mbedtls_md_get_size(sha1_info()));
}

BodyHasher::BodyHasher(Canon body_canon, HashAlg hash, std::optional<int64_t> length_limit)
	: digest_(std::make_unique<Digest>(hash)), canon_(body_canon), limit_(length_limit) {}

BodyHasher::~BodyHasher() = default;
BodyHasher::BodyHasher(BodyHasher&&) noexcept = default;
BodyHasher& BodyHasher::operator=(BodyHasher&&) noexcept = default;

// Canonical output goes to the digest, cut at l= (RFC 6376 3.4.5: the
// length counts canonicalized body octets).
void BodyHasher::emit(std::string_view bytes) {
	int64_t n = static_cast<int64_t>(bytes.size());
	int64_t take = n;
	if (limit_) {
		int64_t room = *limit_ - produced_;
		take = room <= 0 ? 0 : std::min(room, n);
	}
	produced_ += n;
	if (capture_) capture_->append(bytes);
	if (take > 0) {
		out_.append(bytes.substr(0, static_cast<size_t>(take)));
		if (out_.size() >= 65536) {
			digest_->update(out_);
			out_.clear();
		}
	}
}

// Line ends are held back until non-empty content follows them, because
// both canonicalizations drop empty lines at the end of the body
// (RFC 6376 3.4.3, 3.4.4).
void BodyHasher::flush_line_ends() {
	for (; pending_crlf_ > 0; pending_crlf_--) emit("\r\n");
}

// Bytes that are neither CRLF nor (in relaxed mode) WSP.
void BodyHasher::content(std::string_view bytes) {
	if (bytes.empty()) return;
	flush_line_ends();
	if (pending_wsp_) {
		// RFC 6376 3.4.4: a WSP run inside a line becomes one SP.
		emit(" ");
		pending_wsp_ = false;
	}
	emit(bytes);
	any_content_ = true;
}

void BodyHasher::update(std::string_view chunk) {
	size_t i = 0;
	if (pending_cr_ && !chunk.empty()) {
		pending_cr_ = false;
		if (chunk[0] == '\n') {
			pending_crlf_++;
			pending_wsp_ = false;  // RFC 6376 3.4.4: WSP at line end is ignored
			i = 1;
		} else {
			content("\r");
		}
	}
	size_t run_start = i;  // start of plain content not yet passed on
	auto flush_run = [&](size_t upto) {
		if (upto > run_start) content(chunk.substr(run_start, upto - run_start));
	};
	for (; i < chunk.size(); i++) {
		char c = chunk[i];
		if (c == '\r') {
			flush_run(i);
			if (i + 1 == chunk.size()) {
				pending_cr_ = true;
				run_start = i + 1;
				break;
			}
			if (chunk[i + 1] == '\n') {
				pending_crlf_++;
				pending_wsp_ = false;
				i++;
				run_start = i + 1;
			} else {
				run_start = i;  // a bare CR is ordinary content
			}
		} else if (canon_ == Canon::relaxed && is_wsp(c)) {
			flush_run(i);
			pending_wsp_ = true;
			run_start = i + 1;
		}
	}
	if (!pending_cr_) flush_run(chunk.size());
}

std::string BodyHasher::finish() {
	if (pending_cr_) {
		pending_cr_ = false;
		content("\r");
	}
	pending_wsp_ = false;  // trailing WSP of an unterminated last line
	// RFC 6376 3.4.3: simple ends with exactly one CRLF, an empty body
	// becomes CRLF. 3.4.4: relaxed ends with one CRLF unless the body is
	// empty after canonicalization.
	if (canon_ == Canon::simple || any_content_) emit("\r\n");
	pending_crlf_ = 0;
	if (!out_.empty()) digest_->update(out_);
	out_.clear();
	return digest_->finish();
}

std::string canonicalize_body(Canon canon, std::string_view body) {
	std::string out;
	BodyHasher hasher(canon, HashAlg::sha256);
	hasher.capture_ = &out;
	hasher.update(body);
	hasher.finish();
	return out;
}

std::string relaxed_header(std::string_view field_raw) {
	// RFC 6376 3.4.2: lower-case name, unfold, WSP runs to one SP, no WSP
	// at the end of the value or around the colon.
	size_t colon = field_raw.find(':');
	std::string_view name = field_raw.substr(0, colon);
	while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
	std::string out = ascii_lower(name);
	out += ':';
	if (colon == std::string_view::npos) return out;
	std::string_view value = field_raw.substr(colon + 1);
	bool wsp = false;
	bool started = false;
	for (char c : value) {
		if (c == '\r' || c == '\n') continue;  // unfolding
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (wsp && started) out += ' ';
		wsp = false;
		started = true;
		out += c;
	}
	return out;
}

std::string header_hash_input(const std::vector<message::HeaderField>& headers,
                              const std::vector<std::string>& signed_headers, Canon header_canon,
                              std::string_view sig_header_without_b) {
	// RFC 6376 5.4.2: repeated names take instances from the bottom up;
	// names without an (unused) instance contribute nothing. The fields
	// are grouped by name once: looking each h= name up among all fields
	// cost h= names times fields, which a crafted signature makes large.
	struct Instances {
		std::vector<const message::HeaderField*> bottom_up;
		size_t used = 0;
	};
	std::unordered_map<std::string, Instances> by_name;
	std::vector<Instances*> in_order;  // each h= name's entry in by_name
	in_order.reserve(signed_headers.size());
	for (const std::string& name : signed_headers)
		in_order.push_back(&by_name.try_emplace(ascii_lower(trim(name))).first->second);
	for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
		auto found = by_name.find(it->lower_name);
		if (found != by_name.end()) found->second.bottom_up.push_back(&*it);
	}
	std::string out;
	for (Instances* entry : in_order) {
		Instances& instances = *entry;
		if (instances.used >= instances.bottom_up.size()) continue;
		const message::HeaderField* pick = instances.bottom_up[instances.used++];
		if (header_canon == Canon::simple) {
			out += pick->raw;
		} else {
			out += relaxed_header(pick->raw);
			out += "\r\n";
		}
	}
	// RFC 6376 3.7: the signature field itself last, without final CRLF.
	if (header_canon == Canon::simple)
		out.append(sig_header_without_b);
	else
		out += relaxed_header(sig_header_without_b);
	return out;
}

std::string header_hash_input(const std::vector<message::HeaderField>& headers, const Signature& sig) {
	return header_hash_input(headers, sig.signed_headers, sig.header_canon().value_or(Canon::simple),
	                         sig.header_without_b);
}

}  // namespace tern::mailauth::dkim
