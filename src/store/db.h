// The Berkeley DB store (doc/design.md "Storage", doc/behaviour.md "Files on disk"): one
// transactional environment under `data_dir/db` holding password secrets,
// the outgoing-recipient history behind the send limits, and queue records.
//
// Every method BLOCKS on disk I/O and locks (a commit waits for the log
// fsync, because a 250 depends on it): call them from worker threads or from
// ternctl, never from the event-loop thread. One Env is free-threaded
// (DB_THREAD) and meant to be shared by all worker threads of a process.
//
// While ternd runs, ternctl changes the database through ternd's control
// socket, so normally one process is inside. Processes that do join at the
// same time open with DB_REGISTER | DB_RECOVER | DB_FAILCHK: recovery runs
// when a registered process died, and failchk frees what a dead process
// held. A process that finds nobody else inside rebuilds the region files
// and recovers from the log first, so scribbled or stale regions cannot
// crash it. DB_REGISTER tracks processes, not handles: open at most ONE Env
// per directory per process at a time (a second handle in the same process
// would look like a dead process and trigger recovery under the live one).
//
// A panicked environment (DB_RUNRECOVERY from any call) is closed and
// reopened with recovery by the thread that sees it, while the others wait;
// the failing call still throws (code() == DB_RUNRECOVERY), so its caller
// answers with a temporary error, and the next call works again. When the
// reopening fails, every call fails as unusable (environment_unusable())
// and tries again; the first one that reopens it runs.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "inbound/delivery_rate.h"

// Berkeley DB's handle types (<db.h>), for the store's other files.
struct __db;
struct __db_txn;

namespace tern::store {

// A Berkeley DB failure; what() carries db_strerror's text (and the
// library's own message when it printed one). code() is the DB return code
// (e.g. DB_LOCK_DEADLOCK, DB_RUNRECOVERY) or 0 for errors found by tern.
class DbError : public std::runtime_error {
public:
	explicit DbError(const std::string& what, int code = 0) : std::runtime_error(what), code_(code) {}
	int code() const { return code_; }
	// A panicked environment could not be reopened (the open failed, or
	// another thread's reopening went on past the wait): every call fails
	// so until one reopens it (that call runs).
	bool environment_unusable() const { return environment_unusable_; }
	static DbError unusable_environment(const std::string& what);  // code DB_RUNRECOVERY

private:
	int code_;
	bool environment_unusable_ = false;
};

// One queued message copy for one recipient (doc/behaviour.md §12). The
// message file itself is written, renamed and fsync'd by the caller; only
// this record lives in the database. The file starts with its own copy of
// the envelope (src/queue/queue_file.h), so lost records can be rebuilt.
struct QueueRecord {
	uint64_t id = 0;               // assigned by queue_add / queue_add_many
	int64_t queued = 0;            // unix seconds
	std::string sender_account;    // "" for DSNs
	std::string from;              // reverse path ("" = null reverse path)
	std::string to;                // forward path
	std::string recipient_domain;  // for filtering and per-domain scheduling
	int attempts = 0;
	int64_t next_attempt = 0;  // unix seconds
	int64_t last_attempt = 0;  // unix seconds, 0 = never
	std::string last_error;
	bool has_8bit = false;
	bool smtputf8 = false;
	int64_t size = 0;  // prefix + file
	std::string message_id;
	std::string prefix;        // header bytes sent before the file
	std::string message_file;  // relative to data_dir/queue
	std::string dsn_utf8;      // optional UTF-8 variant of a DSN
	int64_t data_offset = 0;   // where the message starts in the file (after its envelope header)
	// DSN request (RFC 3461 4): RET ("FULL"/"HDRS"/""), ENVID (decoded),
	// NOTIFY bits (smtp::DsnNotify, 0 = not given), ORCPT "type;address".
	std::string dsn_ret;
	std::string envid;
	int notify = 0;
	std::string orcpt;
	bool requiretls = false;  // RFC 8689: relay only over verified TLS

	bool operator==(const QueueRecord&) const = default;
};

// Versioned, self-describing encoding of a queue record: a version byte,
// then tag/length/value fields. Unknown tags are skipped and missing ones
// keep their defaults, so fields can be added without a new version.
// parse returns nullopt on a malformed or unknown-version blob.
std::string serialize_queue_record(const QueueRecord& record);
std::optional<QueueRecord> parse_queue_record(std::string_view blob);

// Outgoing messages to remember together with their queue records (one row
// per recipient, doc/behaviour.md §8 step 7).
struct OutgoingLog {
	std::string account;
	std::vector<std::string> recipients;
	int64_t time = 0;  // unix seconds
};

// The answer of check_send_limits (doc/behaviour.md §8 step 5).
struct SendLimitVerdict {
	bool messages_reached = false;    // → 451 4.7.1 max number of messages …
	bool first_time_reached = false;  // → 451 4.7.1 max number of new/first-time recipients …
	int64_t messages = 0;             // rows logged in the window
	int64_t first_time = -1;          // -1 when not evaluated
};

class TableTxn;  // store/table.h

class Env {
public:
	// Opens (creating when missing, folder mode 0700) the environment at
	// `<data_dir>/db` and its tables. Throws DbError.
	explicit Env(const std::string& data_dir);
	~Env();
	Env(const Env&) = delete;
	Env& operator=(const Env&) = delete;

	// The environment folder (`<data_dir>/db`).
	const std::string& path() const;

	// ---- passwords: account name → opaque secrets blob
	// (sasl::StoredSecrets::serialize(); the store does not interpret it).
	void set_password_secrets(const std::string& account, const std::string& blob);
	std::optional<std::string> password_secrets(const std::string& account);
	bool remove_password_secrets(const std::string& account);

	// ---- outgoing history (send limits). One row per recipient; recipient
	// strings are compared byte for byte, so pass them normalized the same
	// way every time. Rows older than 30 days are pruned as new ones come in;
	// the per-recipient first/last-use index is kept, so "never sent to
	// before" stays true to the whole history.
	void record_outgoing(const std::string& account, const std::vector<std::string>& recipients, int64_t unix_time);
	// Rows (recipients) logged strictly after `since`.
	int64_t count_outgoing_since(const std::string& account, int64_t since);
	// The model's first-time count: each entry of `recipients` that was
	// never sent to before, plus each distinct recipient logged after
	// `since` that had not been sent to before its first row in that window.
	int64_t count_first_time_recipients(const std::string& account, const std::vector<std::string>& recipients,
	                                    int64_t since);
	// Both checks of §8 step 5 over the 24 h before `now` in one read
	// transaction, with the model's order: the message limit first
	// (logged + recipients > max_messages), then the first-time count only
	// when logged + recipients >= max_first_time, reached when it is
	// > max_first_time.
	SendLimitVerdict check_send_limits(const std::string& account, const std::vector<std::string>& recipients,
	                                   int64_t now, int64_t max_messages, int64_t max_first_time);

	// ---- queue records, keyed and ordered by id. Ids come from a counter
	// in `meta` incremented in the same transaction: unique, increasing,
	// never reused.
	uint64_t queue_add(QueueRecord& record);
	// All records in ONE transaction (all recipients of a message commit
	// together, or none); with `outgoing`, its rows commit in it too. Ids
	// are assigned in order and written back only after the commit.
	void queue_add_many(std::vector<QueueRecord>& records, const OutgoingLog* outgoing = nullptr);
	std::optional<QueueRecord> queue_get(uint64_t id);
	// Visits every record in id order, in one read transaction. A
	// transaction the database runs again (a deadlock victim) starts over:
	// `restart` is called before each try's first record, so the caller
	// drops what the last try gathered. Callers keep what they need of each
	// record, not the records: a queue of many thousand recipients is read
	// without holding them all at once.
	// A record that does not decode (disk damage, a newer format) is
	// logged and passed over: one record cannot stop the queue.
	void queue_scan(const std::function<void()>& restart, const std::function<void(const QueueRecord&)>& visit);
	// Deletes the records that do not decode; how many. The queue's
	// rebuild runs it first, then makes new records from their files.
	size_t queue_remove_undecodable();
	// All records, in id order.
	std::vector<QueueRecord> queue_list();
	// Rewrites an existing record; false when it is gone (e.g. dropped by
	// `ternctl queue drop` meanwhile), in which case nothing is written.
	bool queue_update(const QueueRecord& record);
	bool queue_remove(uint64_t id);

	// Flushes the cache and writes a checkpoint so that old log files can be
	// removed (DB_LOG_AUTO_REMOVE): when 1 MiB of log or a minute has passed
	// since the last one, or always with `force`. No write waits for it:
	// ternd runs it on a worker every few seconds while transactions that
	// wrote commit (`writes_committed`), and close runs a last one (a ternctl
	// run while ternd is down).
	void checkpoint(bool force = false);
	// Transactions committed through this handle so far that put or deleted
	// a record: only those write the log. (Read-only ones, as the message
	// scanner's passes over an idle server, do not count, so that the idle
	// daemon leaves the library alone.)
	uint64_t writes_committed() const;

	// DB_ENV->failchk: releases the locks and aborts the transactions of
	// processes that died inside the environment; reopens it when that
	// finds it panicked. ternd runs it periodically on a worker.
	void check_dead_processes();

	// Tables kept by other store files (store/table.h): runs fn in one
	// transaction over the table file `file`, opened on first use; a
	// deadlock victim runs fn again, so fn starts its results afresh.
	void in_table(const std::string& file, const std::function<void(TableTxn&)>& fn);

	// ---- tables of the store's other files (store/history.cpp): one
	// transaction with their handles, under the same panic guard and
	// deadlock retries as every method here. `durable` false commits without
	// waiting for the log flush (for records whose loss in a crash costs
	// nothing but a little history). Records go through store/records.h.
	struct Tables {
		struct __db_txn* txn;
		struct __db* history;
		struct __db* history_index;
		struct __db* outgoing;
	};
	void with_tables(const char* what, bool durable, const std::function<void(const Tables&)>& fn);

	// The message history's delivery-rate counts, kept in memory by the
	// process that writes the history (store/history.cpp builds them from
	// the tables on first use and keeps them in step with every change).
	struct HistoryRates {
		std::mutex mu;  // taken before, and held across, each writing transaction of the history
		bool built = false;
		int64_t expired_at = 0;
		inbound::DeliveryRateWindows windows;
	};
	HistoryRates& history_rates() { return history_rates_; }

	// Tests only (fault injection): `fault` is called with each
	// transaction's `what` ("updating message history") before it begins,
	// and what it throws (a DbError) fails that call as the database would.
	// Set while no other thread uses the Env; nullptr takes it away.
	void set_fault_for_testing(std::function<void(const char* what)> fault);

	struct Impl;

private:
	std::unique_ptr<Impl> impl_;
	HistoryRates history_rates_;
};

}  // namespace tern::store
