#include "server/inbound.h"

#include <unistd.h>

#include <cerrno>
#include <map>
#include <tuple>

#include "message/submission.h"
#include "server/message_file.h"
#include "util/hex.h"
#include "util/sha256.h"

namespace tern::server {

namespace {

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

}  // namespace

void read_inbound_message(InboundAnalysis& an) {
	MessageFile file = an.spool_fd ? MessageFile(std::move(an.spool_fd)) : MessageFile(an.path);
	if (!file.ok()) return;
	// Hashed while the file is open (hash_inbound_message then has nothing
	// left to do): one open and one read of the file per message on the
	// workers, the header section taken on the way.
	auto header = hash_message_file(file, an);
	if (!header) return;
	auto section = message::parse_header_section(*header);
	if (!section) return;
	an.header_ok = true;
	an.received_headers = message::find_fields(*section, "Received").size();
	message::FromResult from = message::parse_single_from(*section);
	if (from.ok) {
		an.from_domain = from.address.domain.ascii;
		an.from_localpart = from.address.localpart;
	}
	for (const auto& f : section->fields)
		if (f.lower_name == "message-id") an.message_id = f.unfolded_value();
	an.pending = mailauth::dkim::prepare_verification(section->fields);
	an.body_hashes.resize(an.pending.size());
	// Signatures with the same body canonicalization, hash and length share
	// one pass over the body.
	std::map<std::tuple<int, int, int64_t>, std::optional<std::string>> done;
	for (size_t i = 0; i < an.pending.size(); ++i) {
		const auto& p = an.pending[i];
		if (p.early) continue;
		auto key = std::make_tuple(static_cast<int>(p.body_canon), static_cast<int>(p.hash),
		                           p.length.value_or(-1));
		auto it = done.find(key);
		if (it == done.end())
			it = done.emplace(key, file.body_hash(section->body_offset, p.body_canon, p.hash, p.length))
				 .first;
		an.body_hashes[i] = it->second;
	}
	an.fields = std::move(section->fields);
}

void hash_inbound_message(InboundAnalysis& an) {
	if (!an.sha256.empty()) return;  // done by read_inbound_message
	hash_message_file(MessageFile(an.path), an);
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
