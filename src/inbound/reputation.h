// reputation(): what the destination mailbox's history says about the
// sender of a new message (doc/behaviour.md §9 "Reputation"). Only earlier
// messages the user marked junk or not-junk count, newest first; the first
// identity that has history decides, conclusively or not.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "inbound/analyze.h"

namespace tern::inbound {

// The identities of the new message, as stored in its history record.
struct MessageIdentity {
	std::string from_localpart, from_domain, from_org_domain;
	bool from_validated = false;            // From aligned with a passing SPF or DKIM identity
	std::vector<std::string> dkim_domains;  // passing signatures, de-duplicated
	std::string mailfrom_localpart, mailfrom_domain;
	bool mailfrom_validated = false;  // SPF pass
	std::string ehlo_domain;
	bool ehlo_validated = false;
	// The client address masked to /32, /26, /21 (IPv6 /64, /48, /32).
	std::string ip1, ip2, ip3;
};

// One marked, non-expunged message of the destination mailbox.
struct MarkedMessage {
	int64_t received = 0;
	bool junk = false;  // false: marked not-junk
	std::string from_localpart;
};

// Which identity a history query matches on.
enum class HistoryKey {
	from_address,  // value: localpart@domain
	from_domain,
	from_org_domain,
	dkim_domain,
	mailfrom_address,  // value: localpart@domain
	mailfrom_domain,
	ehlo_domain,
	ip1,
	ip2,
	ip3,
};

struct HistoryQuery {
	HistoryKey key;
	std::string value;
	std::optional<bool> from_validated;  // when set, only messages with this flag
	int64_t since = 0;                   // received at or after
	size_t limit = 0;                    // newest first, at most this many
};

// The account's history as reputation() reads it. Implementations throw
// std::runtime_error when the history cannot be read.
class History {
public:
	virtual ~History() = default;
	virtual std::vector<MarkedMessage> marked_messages(const HistoryQuery& query) = 0;
	// Whether the account sent mail, at or after `since`, to this address, to
	// any address of this domain, or of this organizational domain.
	virtual bool sent_to_address(const std::string& localpart, const std::string& domain, int64_t since) = 0;
	virtual bool sent_to_domain(const std::string& domain, int64_t since) = 0;
	virtual bool sent_to_org_domain(const std::string& org_domain, int64_t since) = 0;
};

// The model's steps in order; a History error gives an answer with error set.
ReputationAnswer reputation(const MessageIdentity& message, History& history, int64_t now);

}  // namespace tern::inbound
