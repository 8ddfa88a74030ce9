// What the port-25 path learns about a received message before deciding
// (doc/behaviour.md §9): header facts, iprev, SPF, DKIM, DMARC, DNSBL.
// Shared by the steps of the analysis through a shared_ptr; it holds no
// connection, so a step that completes after the client left touches
// nothing but this.
#pragma once
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "decide/inbound_verdict.h"
#include "inbound/analyze.h"
#include "inbound/rejects.h"
#include "inbound/reputation.h"
#include "mailauth/dkim.h"
#include "mailauth/dmarc.h"
#include "mailauth/iprev.h"
#include "mailauth/resolver.h"
#include "mailauth/spf.h"
#include "message/header_parse.h"
#include "smtp/parser.h"
#include "util/unique_fd.h"

namespace tern::server {

// The checks' results (from, iprev, SPF, DKIM, DMARC) and the decision's
// pure parts live in decide/inbound_verdict.h; this adds what the steps
// between them carry.
struct HistoryBesideSync;  // server/deliver.cpp

struct InboundAnalysis : decide::MessageChecks {
	std::string path;  // the received message
	// A duplicate of the session's spool descriptor (none when the file
	// must be opened by path). A spool file is reused after ftruncate(2)
	// to 0, and ext4 writes such a file back to the disk when the last
	// descriptor of one open of it is closed (its auto_da_alloc rule):
	// the worker reads through this duplicate, so its close is never the
	// last one and the bytes the Maildir copy makes durable are not also
	// written to the spool's own blocks.
	UniqueFd spool_fd;

	// From the header section: parsed on the loop while DATA streamed in,
	// or read from the file on a worker (take_header_facts).
	bool header_ok = false;
	std::vector<message::HeaderField> fields;
	size_t body_offset = 0;
	std::string message_id;  // the Message-ID field's value, "" when none
	// Recipients (display form) whose LMTP copy the queue retries.
	std::vector<std::string> retried_recipients;
	int64_t size = 0;    // of the received data
	std::string sha256;  // of the received data, hex
	size_t received_headers = 0;
	std::vector<mailauth::dkim::PendingSignature> pending;
	std::vector<std::optional<std::string>> body_hashes;  // per pending signature

	// DNS on the loop.
	std::vector<mailauth::DnsAnswer> key_answers;  // per pending signature
	int outstanding = 0;                           // lookups still running
	std::vector<std::string> dnsbl_zones;          // the listener's zones that are healthy
	std::set<std::string> seen_recipients;         // a report was kept: copy stored Seen

	// The decision (server/deliver.cpp). `facts` and `identity` are built
	// once by decide::gather_sender_facts; each destination account adds its
	// own reputation and delivery-rate answer on a worker.
	inbound::MessageFacts facts;
	inbound::MessageIdentity identity;
	decide::AccountDecisions decisions;
	// Per copy, in the order written: whose it is and why.
	std::vector<decide::PlannedCopy> copy_notes;
	// The plan's Rejects removals (decide::InboundCopyPlan); what of them
	// goes is decided once the copies are written (decide::rejects_to_remove).
	decide::RejectsRemovals rejects_expired, rejects_superseded;
	// The history records, added while the Maildir directories are synced
	// (server/deliver.cpp); none without a message history.
	std::shared_ptr<HistoryBesideSync> history_beside_sync;
};

// The header section's facts: Received fields counted, From, Message-ID,
// the DKIM signatures to verify. No I/O: the loop calls it.
void take_header_facts(InboundAnalysis& an, message::HeaderSection section);
// Whether a signature waits for its body hash: a worker step that reads the
// file (hash_inbound_bodies). Without one, the analysis needs no worker
// before its DNS lookups.
bool needs_body_hashes(const InboundAnalysis& an);
// The worker step when the header section is not known yet: reads it from
// the file, takes its facts, and hashes the message and each distinct
// body variant once.
void read_inbound_message(InboundAnalysis& an);
// The worker step when the header's facts are known: hashes the message and
// each distinct body variant once.
void hash_inbound_bodies(InboundAnalysis& an);
// The worker step after the key lookups: finishes each DKIM signature.
void finish_dkim(InboundAnalysis& an);
// Size and SHA-256 of the received data (a worker step: it reads the file).
void hash_inbound_message(InboundAnalysis& an);

}  // namespace tern::server
