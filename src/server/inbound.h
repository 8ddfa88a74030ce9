// What the port-25 path learns about a received message before deciding
// (doc/behaviour.md §9): header facts, iprev, SPF, DKIM, DMARC, DNSBL.
// Shared by the steps of the analysis through a shared_ptr; it holds no
// connection, so a step that completes after the client left touches
// nothing but this.
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

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

namespace tern::server {

struct InboundAnalysis {
	std::string path;                     // the received message
	mailauth::SpfArgs spf_args;

	// Read from the message on a worker.
	bool header_ok = false;
	std::vector<message::HeaderField> fields;
	std::string from_domain;              // "" when From did not parse
	std::string from_localpart;
	std::string message_id;               // the Message-ID field's value, "" when none
	int64_t size = 0;                     // of the received data
	std::string sha256;                   // of the received data, hex
	size_t received_headers = 0;
	std::vector<mailauth::dkim::PendingSignature> pending;
	std::vector<std::optional<std::string>> body_hashes;  // per pending signature

	// DNS on the loop.
	mailauth::IprevResult iprev;
	mailauth::SpfReceived spf;
	std::string spf_explanation;
	std::vector<mailauth::DnsAnswer> key_answers;        // per pending signature
	int outstanding = 0;                                 // lookups still running
	std::vector<std::string> dnsbl_zones;                // the listener's zones that are healthy
	std::set<std::string> seen_recipients;               // a report was kept: copy stored Seen

	// Verified on a worker.
	std::vector<mailauth::dkim::Result> dkim;
	mailauth::DmarcResult dmarc;

	// The decision (server/deliver.cpp). `facts` and `identity` are built
	// once by gather_message_facts; each destination account adds its own
	// reputation and delivery-rate answer on a worker.
	inbound::MessageFacts facts;
	inbound::MessageIdentity identity;
	struct AccountDecision {
		inbound::Verdict verdict;
		std::vector<inbound::RejectCopy> rejects;  // the account's Rejects copies before this message
		bool history_error = false;
	};
	std::map<std::string, AccountDecision> decisions;  // by account name
	// Per Maildir copy, in the order written: whose it is and why.
	struct CopyNote {
		std::string account;
		std::string reason;
		bool rejects_copy = false;  // a refused message kept in the Rejects mailbox
	};
	std::vector<CopyNote> copy_notes;
	std::map<std::string, std::vector<std::string>> rejects_to_remove;  // account → unique names

	// The domain SPF evaluated (RFC 7489 6.6.2): MAIL FROM's, or the HELO
	// name's for a null sender; "" when SPF checked nothing.
	std::string spf_domain() const {
		switch (spf.identity) {
		case mailauth::SpfReceived::Identity::mailfrom: return spf_args.mailfrom_domain;
		case mailauth::SpfReceived::Identity::helo: return spf_args.helo_domain;
		case mailauth::SpfReceived::Identity::none: break;
		}
		return {};
	}
};

// The worker step: reads the header, counts Received fields, parses From,
// prepares DKIM verification and hashes each distinct body variant once.
void read_inbound_message(InboundAnalysis& an);
// The worker step after the key lookups: finishes each DKIM signature.
void finish_dkim(InboundAnalysis& an);
// Fills an.facts and an.identity from the session's results (server/deliver.cpp).
void gather_message_facts(InboundAnalysis& an, const IpAddr& remote_ip, const smtp::HelloArg& hello,
                          const std::optional<smtp::Address>& mail_from);
// Size and SHA-256 of the received data (a worker step: it reads the file).
void hash_inbound_message(InboundAnalysis& an);

}  // namespace tern::server
