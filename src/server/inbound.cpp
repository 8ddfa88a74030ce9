#include "server/inbound.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <tuple>

#include "message/submission.h"
#include "server/message_file.h"
#include "util/hex.h"
#include "util/sha256.h"

namespace tern::server {

namespace {

// DKIM-Signature fields checked per message (see take_header_facts).
constexpr int max_verified_dkim_signatures = 10;

// The received file: through the duplicate of the session's descriptor
// (InboundAnalysis::spool_fd), which the first worker step that reads the
// file takes; by its path when there is none.
MessageFile open_received(InboundAnalysis& an) {
	return an.spool_fd ? MessageFile(std::move(an.spool_fd)) : MessageFile(an.path);
}

// The message's SHA-256 and size (for the history), and its header
// section, in one pass of positional reads from the descriptor; a file that
// cannot be read counts as what could be read of it (nothing when it did
// not open).
std::optional<std::string> hash_message_file(const MessageFile& file, InboundAnalysis& an) {
	Sha256 hasher;
	int64_t size = 0;
	std::optional<std::string> header = file.read_whole([&](std::string_view chunk) { hasher.update(chunk); },
	                                                    size);
	an.sha256 = hex_lower(Sha256::view(hasher.finish()));
	an.size = size;
	return header;
}

// Signatures with the same body canonicalization, hash and length share
// one pass over the body.
void hash_dkim_bodies(const MessageFile& file, InboundAnalysis& an) {
	std::map<std::tuple<int, int, int64_t>, std::optional<std::string>> done;
	for (size_t i = 0; i < an.pending.size(); ++i) {
		const auto& p = an.pending[i];
		if (p.early) continue;
		auto key = std::make_tuple(static_cast<int>(p.body_canon), static_cast<int>(p.hash),
		                           p.length.value_or(-1));
		auto it = done.find(key);
		if (it == done.end())
			it = done.emplace(key, file.body_hash(an.body_offset, p.body_canon, p.hash, p.length)).first;
		an.body_hashes[i] = it->second;
	}
}

}  // namespace

void take_header_facts(InboundAnalysis& an, message::HeaderSection section) {
	an.header_ok = true;
	an.received_headers = message::find_fields(section, "Received").size();
	message::FromResult from = message::parse_first_from(section);
	if (from.ok) {
		an.from_domain = from.address.domain.ascii;
		an.from_localpart = from.address.localpart;
	}
	for (const auto& f : section.fields)
		if (f.lower_name == "message-id") an.message_id = f.unfolded_value();
	// Each signature costs a DNS query and a hash of its own header data;
	// a stranger's message could carry thousands. The topmost ten (the
	// last hops' signatures) are checked, the rest ignored, as verifiers
	// commonly bound this (doc/behaviour.md §9).
	mailauth::dkim::VerifyOptions options;
	options.max_signatures = max_verified_dkim_signatures;
	an.pending = mailauth::dkim::prepare_verification(section.fields, options);
	an.body_hashes.assign(an.pending.size(), std::nullopt);
	an.body_offset = section.body_offset;
	an.fields = std::move(section.fields);
}

bool needs_body_hashes(const InboundAnalysis& an) {
	return std::any_of(an.pending.begin(), an.pending.end(), [](const auto& p) { return !p.early; });
}

void read_inbound_message(InboundAnalysis& an) {
	MessageFile file = open_received(an);
	if (!file.ok()) return;
	// Hashed while the file is open (hash_inbound_message then has nothing
	// left to do): one open and one read of the file per message on the
	// workers, the header section taken on the way.
	auto header = hash_message_file(file, an);
	if (!header) return;
	std::string why;
	auto section = message::parse_header_section(*header, &why);
	if (!section) {
		an.dkim_error = mailauth::dkim::malformed_header_error(why);
		return;
	}
	take_header_facts(an, std::move(*section));
	hash_dkim_bodies(file, an);
}

void hash_inbound_bodies(InboundAnalysis& an) {
	MessageFile file = open_received(an);
	// A file that cannot be read leaves the signatures without a body hash:
	// finish_dkim makes them temperrors.
	if (!file.ok()) return;
	hash_message_file(file, an);
	hash_dkim_bodies(file, an);
}

void hash_inbound_message(InboundAnalysis& an) {
	if (!an.sha256.empty()) return;  // done by an earlier worker step
	hash_message_file(open_received(an), an);
}

void finish_dkim(InboundAnalysis& an) {
	an.dkim.clear();
	for (size_t i = 0; i < an.pending.size(); ++i) {
		const auto& p = an.pending[i];
		if (p.early) {
			an.dkim.push_back(*p.early);
			continue;
		}
		if (!an.body_hashes[i]) {
			mailauth::dkim::Result r;
			r.status = mailauth::dkim::Status::temperror;
			r.signature = p.signature;
			r.error = "reading message";
			an.dkim.push_back(std::move(r));
			continue;
		}
		an.dkim.push_back(
		    mailauth::dkim::finish_verification(p, an.key_answers[i], an.fields, *an.body_hashes[i]));
	}
}

}  // namespace tern::server
