// The outbound queue (doc/behaviour.md §12, doc/behaviour.md "Durability and safety promises",
// "Smarthost"): durable enqueue, a scheduler on the loop thread, delivery to
// local Maildirs, to MX hosts or to the smarthost, retries with exponential
// backoff and DSNs into the sender's INBOX.
//
// Threads: every public method runs on the loop thread. Disk and database
// work runs on the worker pool; those jobs capture only values (config
// snapshot, paths, records, the Env reference), never the Queue, and their
// completions find their delivery again by its generation-checked handle in
// a core::ConnTable, as the server's do its connection (doc/design.md
// lifetime rule). A delivery that ends is erased only once no callback of it
// is on the stack. The owner drains the worker pool (and runs the loop no
// more) before it destroys the Queue.
//
// Files: one queue file per recipient record, data_dir/queue/<base>.<n>,
// hard links of one message written once; a record and its link are
// removed together, so the message disappears with its last record. Each
// file starts with the message's envelope and per-recipient state
// (queue_file.h), so the files alone can stand in for lost records: start()
// and resync() rebuild the records the database lacks (rebuild_queue) and
// delete only links of finished copies, of files that never got their 250,
// and temp files of an interrupted enqueue.
//
// Crash safety: before an attempt, its record is updated (attempts + 1,
// next attempt after the backoff) and committed. The remote's reply to the
// end of data is recorded at once (the copy marked in its file, the record
// removed and committed on a worker) while the SMTP client waits; only then
// does it send QUIT. A crash thus never loses a record, and repeats only a
// delivery whose 250 arrived but was not yet committed (RFC 5321 6.1
// prefers that to losing it): at most the transactions in flight.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/conn_table.h"
#include "core/watchers.h"
#include "core/worker_pool.h"
#include "mailauth/mta_sts.h"
#include "mailauth/resolver.h"
#include "net/https_get.h"
#include "smtp/lmtp_client_protocol.h"
#include "queue/smtp_client.h"
#include "queue/sts_cache.h"
#include "server/outbound.h"
#include "store/db.h"
#include "store/mta_sts_policies.h"
#include "util/latest_wins.h"
#include "util/sha256.h"

namespace tern::queue {

// Makes data_dir/queue/ (mode 0700) when it is missing; false with errno
// set when it cannot. ternd makes it at start, and each enqueue again in
// case it was removed since.
bool make_queue_dir(const config::Config& cfg);

struct QueueOptions {
	// TEST HOOK, not a config key: the TCP port used for MX (and address
	// literal) delivery. Always 25 in ternd; tests point MX hosts at a sink
	// on a random loopback port.
	int mx_port = config::default_smtp_port;
	// TEST HOOK, not a config key: the port of MTA-STS policy hosts (RFC
	// 8461 3.3: HTTPS, 443 in ternd).
	int mta_sts_port = 443;
	// TEST HOOK, not a config key: the trust store for MX hosts (REQUIRETLS,
	// an enforced MTA-STS policy) and MTA-STS policy hosts; ternd uses
	// Debian's ca-certificates bundle.
	std::string system_ca_file = "/etc/ssl/certs/ca-certificates.crt";
	// RFC 5321 4.5.3.2 defaults; tests may shorten them.
	ClientTimeouts timeouts;
	// Attempts after which a "delayed" DSN is sent (doc/behaviour.md §12).
	int delayed_dsn_after = 5;
	// Rebuild records for queue files without one at start() (rebuild_queue).
	bool rebuild_at_start = true;
};

// Messages being enqueued on a worker right now, by file base name: their
// records may commit at any moment, so a rebuild leaves their files alone.
// Shared by the enqueue and rebuild jobs (any thread).
class EnqueuesInProgress {
public:
	void add(const std::string& base);
	void remove(const std::string& base);
	bool contains(const std::string& base) const;

private:
	mutable std::mutex mutex_;
	std::set<std::string> bases_;
};

// The records an attempt has settled: removed from the queue (delivered,
// failed for good, dropped), or rescheduled to their next attempt.
struct Settled {
	std::vector<uint64_t> removed;
	std::map<uint64_t, int64_t> rescheduled;
	std::vector<server::OutboundMessage>
	    lmtp_dsns;  // written, to be queued (deliver_dsn): LMTP accounts', outside senders
};
struct PreparedAttempt;

class Queue : public server::OutboundQueue {
public:
	Queue(struct ev_loop* loop, core::WorkerPool& pool, mailauth::Resolver& resolver, store::Env& env,
	      std::shared_ptr<const config::Config> config, QueueOptions options = {});
	~Queue() override;
	Queue(const Queue&) = delete;
	Queue& operator=(const Queue&) = delete;

	// Loads the schedule from the database on a worker (and sweeps orphan
	// files), then starts delivering. Call once after construction.
	void start();

	void enqueue(server::OutboundMessage msg, std::function<void(std::string error)> done) override;

	// SIGHUP: later deliveries use the new snapshot; running ones keep theirs.
	void reload(std::shared_ptr<const config::Config> config);
	// Next attempt now for one record (id) or all (id 0).
	void kick(uint64_t id = 0);
	// SIGUSR2 (after ternctl queue kick/drop/rebuild): rebuilds records for
	// queue files without one, then re-reads the schedule from the
	// database, on a worker.
	void resync();
	// Whether the queue file base name belongs to an enqueue not yet
	// committed: a rebuild on another thread must leave such files alone.
	std::function<bool(const std::string& base)> enqueues_in_progress() const {
		return [in_progress = in_progress_](const std::string& base) { return in_progress->contains(base); };
	}
	// Stops starting deliveries and aborts running SMTP sessions; records
	// stay for the next start. Pending worker jobs still complete harmlessly.
	void shutdown();

	// Records (recipients) in the queue: the tern_queue_messages gauge.
	size_t size() const { return entries_.size(); }
	// Deliveries running now.
	size_t active() const { return deliveries_.size() - ended_.size(); }
	// Counters for tern_queue_deliveries_total{result}.
	struct Counters {
		uint64_t delivered = 0, local = 0, failed = 0, retried = 0;
	};
	const Counters& counters() const { return counters_; }

	// Per-recipient result of an attempt (internal, public for the worker jobs).
	// Who answered an attempt and, when a reply of theirs failed the host
	// before the transaction, that reply (the error then says more, e.g.
	// "EHLO to mx: 451 ..."): a notice's Remote-MTA, Status and
	// Diagnostic-Code (RFC 3464 2.3.4-2.3.6).
	struct RemoteReport {
		std::string mta;  // "host ([ip])", "" when no host was reached
		std::string reply;
	};
	struct Outcome {
		uint64_t id = 0;
		bool delivered = false;
		bool permanent = false;
		bool not_attempted = false;  // past the next hop's RCPTMAX: sent in another transaction
		bool relayed = false;        // delivered to a next hop that does not offer DSN
		std::string error;
		RemoteReport remote;
	};

private:
	// What the schedule keeps of a queued recipient; the rest of its record
	// stays in the database until a delivery reads it.
	struct Entry {
		int64_t next_attempt = 0;
		std::string domain;
		// Recipients that may share one transaction have the same message,
		// sender and prefix (Received, DKIM-Signature). Their digest, not
		// the text: the prefix is a kilobyte or more, for every recipient.
		Sha256::Digest group{};
		bool in_flight = false;
		uint64_t added_seq = 0;  // enqueue_seq_ when enqueue added it (resync keeps newer ones)
	};
	static Entry entry_of(const store::QueueRecord& record);
	struct Delivery;
	friend struct PreparedAttempt;
	// A local account's LMTP server and the recipient it is given.
	struct LmtpDestination {
		config::LmtpTarget target;
		std::string rcpt;
	};

	void load(bool rebuild);
	// The records a load read, in place of entries_ but for those in flight
	// or enqueued since the load began (`seq_at_start`).
	void take_loaded_entries(std::vector<std::pair<uint64_t, Entry>>& loaded, uint64_t seq_at_start);
	void add_loaded_sts_policies(std::vector<store::StoredStsPolicy> loaded);
	// Every change to entries_ goes through these, so that
	// queued_per_domain_ follows it.
	void put_entry(uint64_t id, Entry entry);
	void erase_entry(uint64_t id);
	void replace_entries(std::map<uint64_t, Entry> entries);
	void uncount_queued(const std::string& domain);
	// For the MTA-STS cache, which keeps these domains' policies (D44).
	StsCache::HasQueuedMail has_queued_mail() const;
	void add_enqueued(const std::vector<store::QueueRecord>& records);
	void schedule();
	void arm_timer();
	// Runs f on the delivery if it is still there; the one way back into a
	// delivery from a completion (doc/design.md lifetime rule).
	template <class F>
	void with_delivery(core::ConnHandle h, F&& f);
	void erase_ended();
	void begin(core::ConnHandle h, std::vector<uint64_t> ids);
	void on_prepared(Delivery& d, PreparedAttempt& prepared);
	void apply_settled(const std::vector<uint64_t>& removed, const std::map<uint64_t, int64_t>& rescheduled);
	void route(Delivery& d);
	// MTA-STS (RFC 8461): the destination's policy, from the cache or
	// fetched, before its MX hosts are looked up (doc/behaviour.md §12).
	const store::StoredStsPolicy* cached_sts(const std::string& domain);
	void write_sts_policies(const store::StoredStsPolicy* stored, std::vector<std::string> dropped);
	void find_sts_policy(Delivery& d);
	void on_sts_record(Delivery& d, const mailauth::DnsAnswer& answer);
	void fetch_sts_policy(Delivery& d, const std::string& id);
	void on_sts_host(Delivery& d, const std::string& id, const mailauth::IpLookup& r);
	void fetch_sts_from(Delivery& d, const std::string& id, std::vector<std::string> addresses, size_t index);
	void on_sts_fetched(Delivery& d, const std::string& id, const net::HttpsGetResult& result);
	void use_sts_policy(Delivery& d, const store::StoredStsPolicy* policy);
	bool apply_sts_to_hosts(Delivery& d);
	static bool sts_enforced(const Delivery& d);
	void on_mx_answer(Delivery& d, const mailauth::DnsAnswer& answer);
	void deliver_lmtp(Delivery& d);
	static Outcome lmtp_outcome(const smtp::LmtpRecipientResult& r, uint64_t id, const std::string& to,
	                            const std::string& server);
	void next_host(Delivery& d);
	void on_host_addresses(Delivery& d, const std::string& host, const mailauth::IpLookup& r);
	std::string apply_tls_policy(const Delivery& d, ClientOptions& o) const;
	void fill_envelope(const Delivery& d, ClientOptions& o) const;
	void connect_next_address(Delivery& d);
	void on_client_done(Delivery& d, ClientResult result);
	void on_data_result(Delivery& d, const ClientResult& result);
	std::vector<Outcome> outcomes_of(const Delivery& d, const ClientResult& result) const;
	void read_chunk(core::ConnHandle h, const std::string& path, int64_t offset);
	// `local`: the records went to a hosted account's LMTP server.
	void count_outcomes(const std::vector<store::QueueRecord>& records, const std::vector<Outcome>& outcomes,
	                    int max_attempts, bool local);
	void finish(Delivery& d, std::vector<Outcome> outcomes);
	// Queues the DSNs written for accounts delivered over LMTP.
	void enqueue_dsns(std::vector<server::OutboundMessage>& dsns);
	// `remote`: who answered with the reply that failed the last host.
	void finish_all(Delivery& d, const std::string& error, bool permanent, const RemoteReport& remote = {});
	void on_settled(Delivery& d, Settled& settled);
	void release(Delivery& d, const std::vector<uint64_t>& removed, const std::map<uint64_t, int64_t>& rescheduled);
	// The delivery's records settled and its destination free for the next
	// delivery; the session itself may still be saying QUIT.
	void free_slot(Delivery& d, const std::vector<uint64_t>& removed,
	               const std::map<uint64_t, int64_t>& rescheduled);
	void log_gauge();
	uint64_t dns_owner(core::ConnHandle h) const;

	struct ev_loop* loop_;
	core::WorkerPool& pool_;
	mailauth::Resolver& resolver_;
	store::Env& env_;
	std::shared_ptr<const config::Config> config_;
	QueueOptions options_;
	std::shared_ptr<const net::TlsClientContext> tls_context_;
	// For smarthost_tls "required"/"implicit": trusts smarthost_ca_file. Built
	// before the loop runs and again on a worker after each reload (the CA
	// file may have changed); deliveries use the latest one that loaded.
	// Without such a smarthost it serves REQUIRETLS messages only, and is
	// parsed on a worker when the first of them is routed: the system's
	// trust store is some 250 kB of heap an idle server does not need.
	std::shared_ptr<const net::TlsClientContext> verified_context_;
	std::string verified_context_error_;
	LatestWins verified_context_loads_;  // only the latest load is used
	bool verified_context_loading_ = false;
	std::vector<core::ConnHandle> waiting_for_trust_;  // deliveries routed once it is loaded
	// MTA-STS policies by domain, kept for their max_age, also in the
	// database (doc/behaviour.md §12), for at most so many domains (D44).
	StsCache sts_cache_;
	// Changes to the policies' table not written yet, by domain: the
	// policy to save, or none to delete its row. One job writes at a time
	// and takes all gathered meanwhile, so the table follows the cache in
	// order (two jobs on the pool's threads could commit in either order:
	// an older save over a newer one, a drop after the domain came back).
	std::map<std::string, std::optional<store::StoredStsPolicy>> sts_writes_;
	bool sts_write_running_ = false;
	bool sts_table_read_ = false;  // by a load (the first that succeeds)
	// Read by a load whose records failed before any load succeeded: they
	// join the cache with the records of the first that does (a resync
	// started meanwhile does not read the table again).
	std::vector<store::StoredStsPolicy> sts_policies_read_unjoined_;
	void write_next_sts_batch();
	void load_verified_context(const config::Config& config, bool on_worker);
	bool waits_for_trust(Delivery& d, bool needed = false);
	core::TimerWatcher timer_;
	std::map<uint64_t, Entry> entries_;
	// How many records of entries_ go to each domain (lower case, as
	// records keep it): the domains with queued mail, whose MTA-STS
	// policies the cache does not drop to make room (D44).
	std::map<std::string, size_t> queued_per_domain_;
	std::set<std::string> busy_domains_;
	core::ConnTable<Delivery> deliveries_;
	std::vector<core::ConnHandle> ended_;  // released, erased when no callback of theirs runs
	int callback_depth_ = 0;               // with_delivery calls on the stack
	uint64_t next_delivery_id_ = 1;
	uint64_t enqueue_seq_ = 0;
	bool loaded_ = false;
	bool stopping_ = false;
	size_t last_logged_size_ = SIZE_MAX;
	Counters counters_;
	std::shared_ptr<EnqueuesInProgress> in_progress_ = std::make_shared<EnqueuesInProgress>();
};

}  // namespace tern::queue
