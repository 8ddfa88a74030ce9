// Message history (doc/behaviour.md §9 "Reputation", "Delivery rates",
// "Rejects", "Learning from the mailbox"): one record per delivered or
// refused copy in an account's Maildir, in the Berkeley DB environment, with
// the indexes reputation(), the delivery-rate counts, the Rejects mailbox
// and the Maildir scanner look up.
//
// Like every store call these BLOCK on disk and locks: worker threads and
// ternctl only, never the event-loop thread.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "inbound/delivery_rate.h"
#include "inbound/junk_marks.h"
#include "inbound/rejects.h"
#include "inbound/reputation.h"
#include "store/db.h"

namespace tern::store {

constexpr int64_t default_history_max_age_s = config::default_history_max_age_days * 24 *
    3600;  // the longest reputation window

struct HistoryRecord {
	uint64_t id = 0;  // assigned by add_history
	std::string account;
	std::string mailbox;      // where the copy is now ("INBOX", "Junk", the Rejects mailbox)
	std::string unique_name;  // Maildir unique name (before ':')
	int64_t received = 0;     // unix seconds
	std::string remote_ip;
	inbound::MessageIdentity identity;  // From, DKIM, MAIL FROM, EHLO, the IP masks
	int64_t size = 0;
	std::string message_id;
	std::string sha256;  // of the received data, hex
	inbound::JunkMark junk = inbound::JunkMark::unknown;
	bool expunged = false;
	bool rejected = false;  // a refused message's copy in the Rejects mailbox
	std::string reason;     // the analysis's reason token
};

std::string serialize_history_record(const HistoryRecord& record);
std::optional<HistoryRecord> parse_history_record(std::string_view blob);

// The client address masked to the three network widths of reputation()
// and the delivery-rate limits: /32 /26 /21, IPv6 /64 /48 /32.
std::array<std::string, 3> ip_masks(const std::string& ip);

// The outgoing table's per-domain row of a recipient ("user@example.org" →
// a key on the account and "org.example"), so that "the account sent mail
// to this domain or a subdomain of it" is one range scan.
std::string sent_domain_key(const std::string& account, const std::string& recipient);

// All history operations on one Env.
class MessageHistory {
public:
	explicit MessageHistory(Env& env) : env_(env) {}

	// Adds records (ids assigned and written back), with their indexes and
	// the record count, in one transaction committed without a log flush:
	// losing the last records in a crash only makes a sender look a little
	// less known, and the 250 does not wait for them.
	void add(std::vector<HistoryRecord>& records);

	std::optional<HistoryRecord> get(uint64_t id);
	// How many records the history holds, every account: a count kept by
	// add() and prune() (a history from before it is walked once).
	uint64_t record_count();
	std::optional<HistoryRecord> find_by_unique_name(const std::string& account, const std::string& unique_name);

	// The scanner's update of one record (mark, folder, expunged): reads
	// the account's record of `unique_name` under a write lock and lets
	// `change` change it, in one transaction, so that what another writer
	// (the Rejects clean-up's expunge) did before is what `change` sees and
	// keeps. `change` returns false to leave the record as it is; it may be
	// called again on a fresh copy (a deadlock victim runs its transaction
	// again), so it changes nothing but the record. Returns the record
	// before and after, or nullopt when there is none or nothing changed.
	struct Changed {
		HistoryRecord before, after;
	};
	std::optional<Changed> update_by_unique_name(const std::string& account, const std::string& unique_name,
	                                             const std::function<bool(HistoryRecord&)>& change);

	// The non-expunged records in a mailbox of the account (one range scan).
	struct MailboxEntry {
		std::string unique_name;
		uint64_t id = 0;
		inbound::JunkMark junk = inbound::JunkMark::unknown;
	};
	std::vector<MailboxEntry> in_mailbox(const std::string& account, const std::string& mailbox);
	// The mailboxes of the account that hold non-expunged records, sorted,
	// in one read transaction: one cursor step per mailbox, however many
	// records each holds (the scanner's look for folders deleted on disk).
	std::vector<std::string> mailboxes_with_records(const std::string& account);

	// reputation() over the account's history, in one read transaction.
	inbound::ReputationAnswer reputation(const std::string& account, const inbound::MessageIdentity& message,
	                                     int64_t now);

	// Non-expunged messages and bytes from the three networks of `masks`,
	// within the minute and the day before `now`: read from counts kept in
	// memory beside the tables (the same cost however large the history;
	// built from the last day's records on first use, then kept in step by
	// every change made through this class in this process).
	std::array<inbound::NetworkHistoryCount, 3>
	delivery_counts(const std::string& account, const std::array<std::string, 3>& masks, int64_t now);

	// The copies present in the account's Rejects mailbox (not expunged).
	std::vector<inbound::RejectCopy> rejects(const std::string& account);

	// reputation() and rejects() for one incoming message, in one read
	// transaction instead of two.
	struct AccountLookups {
		inbound::ReputationAnswer reputation;
		std::vector<inbound::RejectCopy> rejects;
	};
	AccountLookups reputation_and_rejects(const std::string& account, const inbound::MessageIdentity& message,
	                                      int64_t now);
	// Marks records expunged by unique name (Rejects copies the server
	// removed, files the scanner found gone), in one transaction; returns
	// how many were not expunged before.
	size_t mark_expunged(const std::string& account, const std::vector<std::string>& unique_names);

	// Deletes records received before `cutoff`, at most `max` per call (one
	// transaction's locks stay within the environment's lock table);
	// returns how many went.
	size_t prune(int64_t cutoff, size_t max = 200);

	// Records of all accounts (for tests and the benchmark's check).
	size_t count();

private:
	Env& env_;
};

// inbound::History over one transaction of the tables (used by
// MessageHistory::reputation; public for tests).
class TxnHistory : public inbound::History {
public:
	TxnHistory(const Env::Tables& tables, std::string account) : t_(tables), account_(std::move(account)) {}
	std::vector<inbound::MarkedMessage> marked_messages(const inbound::HistoryQuery& query) override;
	bool sent_to_address(const std::string& localpart, const std::string& domain, int64_t since) override;
	bool sent_to_domain(const std::string& domain, int64_t since) override;
	bool sent_to_org_domain(const std::string& org_domain, int64_t since) override;

	// The first database error a method met, or none. inbound::reputation
	// turns every error into an answer with error set; a deadlock must
	// instead reach the transaction runner, which runs it again.
	const std::optional<DbError>& failure() const { return failure_; }

private:
	template <class Fn>
	auto noting_failure(Fn&& fn) -> decltype(fn());
	std::vector<inbound::MarkedMessage> marked_messages_in(const inbound::HistoryQuery& query);
	bool sent_to_address_in(const std::string& localpart, const std::string& domain, int64_t since);
	bool sent_to_domain_in(const std::string& domain, int64_t since);
	bool sent_to_org_domain_in(const std::string& org_domain, int64_t since);
	Env::Tables t_;
	std::string account_;
	std::optional<DbError> failure_;
};

}  // namespace tern::store
